"""docs/aws-notes.md: every section a comment points at exists and names its public source."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "docs" / "aws-notes.md"
TEXT_SUFFIXES = {".py", ".txt", ".toml", ".yaml", ".yml", ".json", ".md", ".cfg", ".ini", ""}
# Documents that live outside the repository: a reader of the code cannot open them.
OUTSIDE_REFERENCES = re.compile(r"tooling[ -]notes|aws-limits\.md|bedrock-models-2026|shared/reference")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def _sections() -> dict[str, str]:
    """anchor -> section text."""
    parts = re.split(r"^## (.+)$", NOTES.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {_slug(title): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def _repo_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]


def test_every_section_is_numbered_and_names_a_public_source() -> None:
    sections = _sections()
    numbers = [int(anchor.split("-", 1)[0].removeprefix("n")) for anchor in sections]
    assert numbers == list(range(1, len(numbers) + 1)), "sections are numbered N1, N2, ... in order"
    for anchor, body in sections.items():
        assert re.search(r"^Sources?: .*https://", body, flags=re.MULTILINE), f"{anchor} names no public source"


def test_every_link_into_the_notes_points_at_a_section() -> None:
    anchors = set(_sections())
    links = []
    for path in _repo_text_files():
        for anchor in re.findall(r"aws-notes\.md#([a-z0-9_-]+)", path.read_text(encoding="utf-8", errors="replace")):
            links.append((path.relative_to(ROOT), anchor))
        if path == NOTES:
            links += [(path.relative_to(ROOT), a) for a in re.findall(r"\]\(#([a-z0-9_-]+)\)", path.read_text())]
    assert links, "no comment points at docs/aws-notes.md"
    broken = [f"{path}: #{anchor}" for path, anchor in links if anchor not in anchors]
    assert not broken, broken


def test_no_file_cites_a_document_outside_the_repository() -> None:
    this_file = Path(__file__).resolve()
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _repo_text_files()
        if path.resolve() != this_file
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE_REFERENCES.search(line)
    ]
    assert not offenders, offenders
