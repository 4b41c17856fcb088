#!/usr/bin/env python3
"""Move chalicelib's flat modules into packages and rewrite every reference to them (issue #25).

Run from the root of ANY checkout of the Backdrop repository (a worktree, or main after a merge):

    python tools/repackage/rewrite.py                # every package in map.json
    python tools/repackage/rewrite.py --only core    # one package (one commit per package)
    python tools/repackage/rewrite.py --dry-run      # say what would change, change nothing

It is idempotent: a second run changes nothing. What it does:

1. `git mv` each module of the map still at its old path (chalicelib/X.py) to its new one, and each
   data file of `files`; a new package gets an __init__.py carrying its sign from `packages`.
2. Rewrites every reference in tracked text files (and untracked ones not ignored):
   `from chalicelib import a, b as c`, `from chalicelib.X import ...`, `import chalicelib.X`, dotted
   strings such as "chalicelib.X.name" (mock.patch targets, docs), and paths "chalicelib/X.py".
3. Adds the new packages to pyproject.toml's setuptools `packages`.
4. Sorts and formats the Python files it changed with ruff when ruff is found ($RUFF, the
   checkout's .venv, /work/main/.venv, or PATH): a moved import must land in isort's order.
5. Prints every flat module chalicelib/*.py that the map does not know (a branch merged since
   added it): place it in map.json and run again.

The map (map.json, next to this file unless --map is given) names old -> new dotted modules.
An old module whose new package has its name (chalicelib.store -> chalicelib.store.jobs) is told
apart from the package by what follows: "chalicelib.store.jobs" and
"from chalicelib.store import jobs" are already new, "chalicelib.store.JobStore" is old.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = {".py", ".md", ".toml", ".json", ".yaml", ".yml", ".cfg", ".ini", ".txt", ".sh", ".asl", ".j2"}
TEXT_NAMES = {"Makefile", "Dockerfile"}
SKIP_PARTS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis"}


def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], check=check, capture_output=True, text=True).stdout


class Map:
    def __init__(self, data: dict[str, Any], only: str | None) -> None:
        self.order: list[str] = data["order"]
        self.signs: dict[str, str] = data["packages"]
        everything: dict[str, str] = data["modules"]
        self.all_new = set(everything.values())
        self.modules = {old: new for old, new in everything.items() if only is None or new.split(".")[1] == only}
        self.files = {
            old: new for old, new in data.get("files", {}).items() if only is None or new.split("/")[1] == only
        }
        self.known_old = set(everything)
        # the leaf modules of each new package, to tell "chalicelib.store.jobs" (new) from
        # "chalicelib.store.JobStore" (old) where an old module has its package's name
        self.children: dict[str, set[str]] = {}
        for new in self.all_new:
            pkg, leaf = new.rsplit(".", 1)
            self.children.setdefault(pkg, set()).add(leaf)
        # ... and the modules a package has gained since the move (chalicelib/store/items.py):
        # "chalicelib.store.items" is new, not the old chalicelib.store's attribute `items`
        for folder in sorted(Path("chalicelib").glob("*/")):
            if (folder / "__init__.py").is_file():
                leaves = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
                self.children.setdefault(f"chalicelib.{folder.name}", set()).update(leaves)

    def old_leaf(self, old: str) -> str:
        return old.split(".", 1)[1]


def path_of(dotted: str) -> Path:
    return Path(*dotted.split(".")).with_suffix(".py")


def sign_text(sign: str) -> str:
    words, lines, line = sign.split(), [], ""
    for word in words:  # wrapped at 100 columns inside the docstring
        if line and len(line) + 1 + len(word) > 100:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return '"""' + "\n".join(lines) + '\n"""\n'


def move(m: Map, dry: bool) -> list[str]:
    said: list[str] = []
    for old, new in sorted(m.modules.items()):
        src, dst = path_of(old), path_of(new)
        if not src.is_file() or dst.is_file():
            continue
        ensure_package(m, dst.parent, dry, said)
        said.append(f"git mv {src} {dst}")
        if not dry:
            git("mv", str(src), str(dst))
    for old_path, new_path in sorted(m.files.items()):
        src, dst = Path(old_path), Path(new_path)
        if src.is_file() and not dst.exists():
            ensure_package(m, dst.parent, dry, said)
            said.append(f"git mv {src} {dst}")
            if not dry:
                git("mv", str(src), str(dst))
    return said


def ensure_package(m: Map, folder: Path, dry: bool, said: list[str]) -> None:
    init = folder / "__init__.py"
    if init.exists() or f"create {init}" in said:
        return
    said.append(f"create {init}")
    if dry:
        return
    folder.mkdir(parents=True, exist_ok=True)
    init.write_text(sign_text(m.signs.get(folder.name, f"The {folder.name} package.")))
    git("add", str(init))


# --------------------------------------------------------------------------- rewriting text

FROM_CHALICELIB = re.compile(
    r"^(?P<indent>[ \t]*)from chalicelib import (?P<names>\([^)]*\)|[^\n#]*?)(?P<comment>[ \t]*#[^\n]*)?$",
    re.MULTILINE,
)


def rewrite_from_chalicelib(text: str, m: Map) -> str:
    """`from chalicelib import a, b as c` -> one import per package (`from chalicelib.core import
    a`), `as` kept where the module's leaf name changed (`from chalicelib.store import jobs as
    store`). Names the map does not move (models, a package) stay as they are."""

    def one(match: re.Match[str]) -> str:
        indent, comment = match["indent"], match["comment"] or ""
        raw = match["names"].strip().strip("()")
        raw = re.sub(r"#[^\n]*", "", raw)
        names = [n.strip() for n in raw.replace("\n", " ").split(",") if n.strip()]
        staying: list[str] = []
        grouped: dict[str, list[str]] = {}
        singles: list[str] = []
        moved = False
        for item in names:
            parts = item.split()
            name, alias = parts[0], (parts[2] if len(parts) == 3 and parts[1] == "as" else None)
            old = f"chalicelib.{name}"
            if old not in m.modules:
                staying.append(item)
                continue
            moved = True
            pkg, leaf = m.modules[old].rsplit(".", 1)
            local = alias or name
            if leaf == local:
                grouped.setdefault(pkg, []).append(leaf)
            else:
                singles.append(f"from {pkg} import {leaf} as {local}")
        if not moved:
            return match[0]
        lines = []
        if staying:
            lines.append(f"from chalicelib import {', '.join(staying)}")
        lines += [f"from {pkg} import {', '.join(sorted(leaves))}" for pkg, leaves in sorted(grouped.items())]
        lines += singles
        lines[0] += comment
        return "\n".join(indent + line for line in lines)

    text = FROM_CHALICELIB.sub(one, text)

    def inline(match: re.Match[str]) -> str:  # in a string: "from chalicelib import imaging\n"
        old = f"chalicelib.{match[1]}"
        if old not in m.modules:
            return match[0]
        pkg, leaf = m.modules[old].rsplit(".", 1)
        return f"from {pkg} import {leaf}" + (f" as {match[1]}" if leaf != match[1] else "")

    return INLINE_FROM.sub(inline, text)


INLINE_FROM = re.compile(r"(?<![\w.])from chalicelib import (\w+)\b(?![ \t]*(?:,|as\b))")


def dotted_pattern(m: Map) -> re.Pattern[str] | None:
    leaves = sorted((m.old_leaf(old) for old in m.modules), key=len, reverse=True)
    if not leaves:
        return None
    return re.compile(r"(?<![\w.])chalicelib\.(" + "|".join(map(re.escape, leaves)) + r")(?![\w])")


IMPORT_AFTER = re.compile(r"\s+import\s+\(?\s*(\w+)")
ATTR_AFTER = re.compile(r"\.(\w+)")


def rewrite_dotted(text: str, m: Map, pattern: re.Pattern[str], keep: re.Pattern[str] | None = None) -> str:
    """Old dotted names to new ones; `keep` spans (pyproject's package list, which names the
    packages chalicelib.store and friends, not the old modules) are left alone."""
    kept = [(k.start(), k.end()) for k in keep.finditer(text)] if keep else []

    def one(match: re.Match[str]) -> str:
        if any(start <= match.start() < end for start, end in kept):
            return match[0]
        old = f"chalicelib.{match[1]}"
        new = m.modules[old]
        children = m.children.get(old, set())  # non-empty only where the old name is a new package
        if children:
            rest = text[match.end() :]
            after = ATTR_AFTER.match(rest) or IMPORT_AFTER.match(rest)
            if after and after[1] in children:
                return match[0]  # already the package: chalicelib.store.jobs, from chalicelib.store import jobs
        return new

    return pattern.sub(one, text)


def path_pattern(m: Map) -> tuple[re.Pattern[str], dict[str, str]] | None:
    paths = {str(path_of(old).as_posix()): str(path_of(new).as_posix()) for old, new in m.modules.items()}
    paths.update(m.files)
    if not paths:
        return None
    keys = sorted(paths, key=len, reverse=True)
    return re.compile(r"(?<![\w/.])(" + "|".join(map(re.escape, keys)) + r")(?![\w])"), paths


def text_files(exclude: set[Path]) -> list[Path]:
    listed = git("ls-files", "-co", "--exclude-standard").splitlines()
    out = []
    for name in listed:
        p = Path(name)
        if any(part in SKIP_PARTS for part in p.parts) or p.resolve() in exclude or not p.is_file():
            continue
        if p.as_posix().startswith("tools/repackage/"):  # the map and this script name the old modules
            continue
        if p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES or p.parent.name == ".chalice":
            out.append(p)
    return out


def rewrite_files(m: Map, dry: bool, exclude: set[Path]) -> list[Path]:
    dotted = dotted_pattern(m)
    paths = path_pattern(m)
    pattern, table = paths if paths else (None, {})
    changed = []
    for p in text_files(exclude):
        try:
            before = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        after = before
        if p.suffix == ".py":
            after = rewrite_from_chalicelib(after, m)
        if dotted:
            after = rewrite_dotted(after, m, dotted, keep=PACKAGES_LINE if p.name == "pyproject.toml" else None)
        if pattern:
            after = pattern.sub(lambda x: table[x[1]], after)
        if after != before:
            changed.append(p)
            if not dry:
                p.write_text(after, encoding="utf-8")
    return changed


PACKAGES_LINE = re.compile(r"^packages = \[(?P<items>[^\]]*)\]", re.MULTILINE)


def add_packages(dry: bool) -> bool:
    """pyproject.toml's setuptools `packages` names every chalicelib package on disk."""
    pyproject = Path("pyproject.toml")
    if not pyproject.is_file():
        return False
    text = pyproject.read_text()
    match = PACKAGES_LINE.search(text)
    if not match:
        return False
    items = [i.strip().strip('"') for i in match["items"].split(",") if i.strip()]
    on_disk = sorted(
        ".".join(init.parent.parts)
        for init in Path("chalicelib").rglob("__init__.py")
        if "__pycache__" not in str(init)
    )
    missing = [p for p in on_disk if p not in items]
    if not missing:
        return False
    rest = [i for i in items if not i.startswith("chalicelib")]
    chalice = sorted(
        {*(i for i in items if i.startswith("chalicelib")), *missing}, key=lambda n: (n != "chalicelib", n)
    )
    new = "packages = [" + ", ".join(f'"{i}"' for i in [*chalice, *rest]) + "]"
    if not dry:
        pyproject.write_text(text[: match.start()] + new + text[match.end() :])
    return True


def find_ruff() -> str | None:
    for candidate in (os.environ.get("RUFF"), ".venv/bin/ruff", "/work/main/.venv/bin/ruff", shutil.which("ruff")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def tidy(py_files: list[Path]) -> None:
    ruff = find_ruff()
    if not ruff or not py_files:
        if py_files:
            print("ruff not found: run `ruff check --select I --fix . && ruff format .` yourself", file=sys.stderr)
        return
    names = [str(p) for p in py_files]
    subprocess.run([ruff, "check", "--select", "I", "--fix", "-q", *names], check=False)
    subprocess.run([ruff, "format", "-q", *names], check=False)


def unplaced(m: Map) -> list[str]:
    flat = sorted(p for p in Path("chalicelib").glob("*.py") if p.name != "__init__.py")
    return [str(p) for p in flat if f"chalicelib.{p.stem}" not in m.known_old]


def main() -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--map", type=Path, default=here / "map.json")
    parser.add_argument("--only", help="one package of the map (core, imaging, ...)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if not Path("chalicelib").is_dir() or not Path(".git").exists():
        print("run this from the root of a Backdrop checkout", file=sys.stderr)
        return 2
    data = json.loads(args.map.read_text())
    if args.only and args.only not in data["order"]:
        print(f"--only: one of {', '.join(data['order'])}", file=sys.stderr)
        return 2
    m = Map(data, args.only)
    for line in move(m, args.dry_run):
        print(line)
    changed = rewrite_files(m, args.dry_run, exclude={args.map.resolve(), Path(__file__).resolve()})
    for p in changed:
        print(f"rewrote {p}")
    if add_packages(args.dry_run):
        print("rewrote pyproject.toml (packages)")
    if not args.dry_run:
        tidy([p for p in changed if p.suffix == ".py"])
    for flat in unplaced(m):
        print(f"UNPLACED: {flat} is not in {args.map.name}: add it to 'modules' and run again", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
