"""The generated Chalice project a stage is deployed from, outside the tracked tree.

`chalice deploy` reads `.chalice/config.json` and records what it created in
`.chalice/deployed/<stage>.json` beside it. Writing account ids, resource names and policies into
the tracked config would leave every deployer's checkout modified; so each stage gets its own
project under `.deploy/<stage>/` (ignored by git): a fresh copy of the app code, the tracked
config with this stage's environment and policy files added, and chalice's own records, which
are kept from one deploy to the next (they are how `chalice deploy` updates and `chalice delete`
finds what to remove).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

from backend import chalice_config, runtime
from backend.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_ROOT = ROOT / ".deploy"
APP_FILES = ("app.py", "requirements.txt")
APP_DIRS = ("chalicelib",)
PACKAGED_REGISTRY = "chalicelib/models/deployment-models.json"
API_GATEWAY_STAGE = "api"  # the REST API's stage name in every Chalice stage (its URL ends in /api)
# Requirements installed from their Lambda wheel into the project's vendor/ (which chalice copies
# into the package as is) instead of by chalice's packager, so that files nothing loads stay out:
# c2pa-python's wheel carries a 29.7 MiB static Rust library (6.55 MiB zipped) beside the shared
# library it loads, which would put deployment.zip over Lambda's 50 MB direct upload
# (docs/aws-notes.md#n107-c2pa-python-wheels-and-the-lambda-package). The version is the pin in
# requirements.txt, the one place it is kept.
VENDORED_WHEELS: dict[str, tuple[str, ...]] = {
    "c2pa-python": ("*.rlib", "*.d"),  # the static library, and the linker's dependency list
}
# the Lambdas' architecture (Chalice's default, x86_64) and Amazon Linux 2023's glibc 2.34 take
# manylinux_2_28 wheels (docs/aws-notes.md#n78-lambda-python-runtimes-and-their-wheels)
WHEEL_PLATFORM = "manylinux_2_28_x86_64"
WHEEL_CACHE = DEPLOY_ROOT / "wheels"
# `chalice deploy` uploads deployment.zip directly, which Lambda takes up to 50 MB (read as bytes,
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); the packaging test and
# `make bench` hold the package 1 MB under it, room for a deployer's own models.json and newer
# releases of the unpinned requirements (docs/aws-notes.md#n107-c2pa-python-wheels-and-the-lambda-package)
LAMBDA_DIRECT_UPLOAD_BYTES = 50_000_000
PACKAGE_SIZE_LIMIT = LAMBDA_DIRECT_UPLOAD_BYTES - 1_000_000
# The app's code travels with its bytecode. Lambda unpacks the package read-only into /var/task,
# so Python can never write __pycache__ there, and every cold start compiled the sources of each
# chalicelib module it imported again: ~55 ms of CPU of the API's cold start (bench/cold_start.py,
# docs/performance.md). The .pyc files are compiled by the interpreter that runs chalice, the one
# whose version is the Lambdas' runtime (backend/runtime.py; another version's .pyc is ignored),
# in checked-hash mode: valid whatever modification time the zip gives the source, and recompiled
# should a source ever differ from its .pyc (PEP 552; docs/aws-notes.md#n116-bytecode-in-the-lambda-package).
# Chalice zips everything under chalicelib/, __pycache__ included; app.py goes in as its source alone.
BYTECODE_DIRS = ("chalicelib",)


def stage_dir(stage: str, root: Path = DEPLOY_ROOT) -> Path:
    return root / stage


def build(
    project: Path,
    stage: str,
    env: dict[str, str],
    policies: dict[str, dict[str, Any]],
    *,
    source: Path = ROOT,
    registry_file: str | None = None,
) -> Path:
    """Lay out the stage's project: app code copied from `source`, the tracked config plus
    this stage's environment and per-function policies. Returns the project directory."""
    project.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        shutil.copy2(source / name, project / name)
    for name in APP_DIRS:
        shutil.rmtree(project / name, ignore_errors=True)
        shutil.copytree(source / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.rmtree(project / "vendor", ignore_errors=True)
    if (source / "vendor").is_dir():
        shutil.copytree(source / "vendor", project / "vendor")
    vendor_wheels(project)
    compile_bytecode(project)
    env = dict(env)
    if registry_file:  # the deployer's own models.json travels with the code
        shutil.copy2(registry_file, project / PACKAGED_REGISTRY)
        env["BACKDROP_MODEL_REGISTRY"] = f"$LAMBDA_TASK_ROOT/{PACKAGED_REGISTRY}"
    chalice_dir = project / ".chalice"
    chalice_dir.mkdir(exist_ok=True)
    config = json.loads((source / ".chalice" / "config.json").read_text())
    stage_config = config["stages"].setdefault(stage, {"api_gateway_stage": API_GATEWAY_STAGE})
    stage_config["environment_variables"] = env
    stage_config["autogen_policy"] = False
    functions = chalice_config.apply_function_settings(stage_config)["lambda_functions"]
    for old in chalice_dir.glob("policy-*.json"):
        old.unlink()
    for name, document in policies.items():
        file_name = f"policy-{stage}-{name}.json"
        (chalice_dir / file_name).write_text(json.dumps(document, indent=2))
        functions.setdefault(name, {})["iam_policy_file"] = file_name
    (chalice_dir / "config.json").write_text(chalice_config.render(config))
    return project


def compile_bytecode(project: Path, python: str | None = None) -> None:
    """Compile the project's BYTECODE_DIRS into __pycache__ with `python` (by default the one that
    will run chalice, so the runtime's version), checked-hash .pyc files (see BYTECODE_DIRS)."""
    dirs = [name for name in BYTECODE_DIRS if (project / name).is_dir()]
    if not dirs:
        return
    try:
        subprocess.run(
            [python or runtime.chalice_python(), "-m", "compileall", "-q", "--invalidation-mode", "checked-hash"]
            + dirs,
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        raise DeployError(f"could not compile the app's code to bytecode: {(exc.stdout + exc.stderr)[-2000:]}") from exc


def _name_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
    return _name_key(match.group(1)) if match else ""


def pinned_version(requirements: str, name: str) -> str:
    """The `name==X` pin in a requirements.txt's text; a DeployError if it is missing or not exact
    (a wheel cannot be fetched for a range)."""
    for line in requirements.splitlines():
        if _requirement_name(line) == _name_key(name):
            match = re.search(r"==\s*([^\s;#,]+)", line)
            if not match:
                raise DeployError(f"{name} must be pinned with == in requirements.txt to be vendored: {line.strip()!r}")
            return match.group(1)
    raise DeployError(f"{name} is not in requirements.txt, which backend/project.py vendors it from")


def download_wheel(name: str, version: str, cache: Path = WHEEL_CACHE, python_version: str = "3.13") -> Path:
    """The Lambda's wheel of `name==version`, fetched by pip once into `cache`."""
    prefix = f"{re.sub(r'[-.]+', '_', name)}-{version}-"
    found = sorted(cache.glob(f"{prefix}*{WHEEL_PLATFORM}*.whl")) if cache.is_dir() else []
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps"]
            + ["--platform", WHEEL_PLATFORM, "--python-version", python_version, "--dest", str(cache)]
            + [f"{name}=={version}"],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DeployError(
            f"could not fetch the {WHEEL_PLATFORM} wheel of {name}=={version} with pip ({exc}); the Lambda "
            f"package takes it from there. Check the network or pip's index settings, or put that wheel in {cache}"
        ) from exc
    found = sorted(cache.glob(f"{prefix}*{WHEEL_PLATFORM}*.whl"))
    if not found:
        raise DeployError(f"pip fetched no {WHEEL_PLATFORM} wheel of {name}=={version} into {cache}")
    return found[0]


def vendor_wheel(project: Path, name: str, wheel: Path, drop: tuple[str, ...] = ()) -> list[str]:
    """Unpack `wheel` into the project's vendor/ without the files matching `drop`, and put the
    wheel's own dependencies in place of its line in the project's requirements.txt (chalice's
    packager still installs those). Returns the requirement lines written."""
    vendor = project / "vendor"
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        dependencies = [
            value
            for value in Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist", [])
            if "extra ==" not in value
        ]
        for member in archive.infolist():
            if member.is_dir() or any(fnmatch.fnmatch(Path(member.filename).name, pattern) for pattern in drop):
                continue
            archive.extract(member, vendor)
    requirements = project / "requirements.txt"
    kept = [line for line in requirements.read_text().splitlines() if _requirement_name(line) != _name_key(name)]
    listed = {_requirement_name(line) for line in kept}
    added = [dependency for dependency in dependencies if _requirement_name(dependency) not in listed]
    if added:
        kept += [f"# {name}'s own dependencies ({name} itself is in vendor/, backend/project.py)", *added]
    requirements.write_text("\n".join(kept) + "\n")
    return added


def vendor_wheels(project: Path, cache: Path | None = None) -> None:
    """Every VENDORED_WHEELS requirement of the project's requirements.txt into its vendor/."""
    requirements = (project / "requirements.txt").read_text()
    for name, drop in VENDORED_WHEELS.items():
        wheel = download_wheel(name, pinned_version(requirements, name), cache or WHEEL_CACHE)
        vendor_wheel(project, name, wheel, drop)


def deployed_record(project: Path, stage: str) -> dict[str, Any] | None:
    path = project / ".chalice" / "deployed" / f"{stage}.json"
    return json.loads(path.read_text()) if path.exists() else None
