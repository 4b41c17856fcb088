"""A stage's project takes c2pa-python from its wheel, without the static library nothing loads
(backend/project.py; docs/aws-notes.md#n107-c2pa-python-wheels-and-the-lambda-package)."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from backend import project
from backend.errors import DeployError

# the real one (tests/conftest.py gives every fast test a stand-in, so that none reaches PyPI)
DOWNLOAD_WHEEL = project.download_wheel
REQUIREMENTS = """# runtime dependencies
pillow==12.2.0
numpy==2.2.6
# Content Credentials
c2pa-python==0.38.1  # the pin
"""


def _wheel(directory: Path) -> Path:
    """A stand-in for c2pa-python's manylinux wheel: its package, its .rlib and its metadata."""
    wheel = directory / f"c2pa_python-0.38.1-py3-none-{project.WHEEL_PLATFORM}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("c2pa/__init__.py", "from c2pa.c2pa import Builder\n")
        archive.writestr("c2pa/c2pa.py", "class Builder: ...\n")
        archive.writestr("c2pa/libs/libc2pa_c.so", b"\x7fELF shared")
        archive.writestr("c2pa/libs/libc2pa_c.rlib", b"!<arch>\n" + b"\0" * 4096)
        archive.writestr("c2pa/libs/libc2pa_c.d", "libc2pa_c.so: src/lib.rs\n")
        archive.writestr(
            "c2pa_python-0.38.1.dist-info/METADATA",
            "Metadata-Version: 2.4\nName: c2pa-python\nVersion: 0.38.1\n"
            "Requires-Dist: toml>=0.10.2\nRequires-Dist: cryptography>=41.0.0\nRequires-Dist: requests>=2.0.0\n"
            "Requires-Dist: pytest; extra == 'test'\n",
        )
    return wheel


def _source(root: Path, requirements: str = REQUIREMENTS) -> Path:
    source = root / "source"
    (source / "chalicelib").mkdir(parents=True)
    (source / "chalicelib" / "__init__.py").write_text("")
    (source / "app.py").write_text("")
    (source / "requirements.txt").write_text(requirements)
    (source / ".chalice").mkdir()
    (source / ".chalice" / "config.json").write_text(
        json.dumps({"version": "2.0", "app_name": "backdrop", "stages": {}})
    )
    return source


def test_the_built_project_vendors_c2pa_without_its_rlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _wheel(tmp_path)
    asked: list[tuple[str, str]] = []

    def download(name: str, version: str, cache: Path, python_version: str = "3.13") -> Path:
        asked.append((name, version))
        return wheel

    monkeypatch.setattr(project, "download_wheel", download)
    source = _source(tmp_path)
    built = project.build(tmp_path / "project", "dev", {}, {}, source=source)

    assert asked == [("c2pa-python", "0.38.1")]  # the pin read from requirements.txt
    vendor = built / "vendor"
    assert (vendor / "c2pa" / "__init__.py").read_text() == "from c2pa.c2pa import Builder\n"
    assert (vendor / "c2pa" / "libs" / "libc2pa_c.so").read_bytes() == b"\x7fELF shared"
    assert (vendor / "c2pa_python-0.38.1.dist-info" / "METADATA").exists()  # importlib.metadata still finds it
    assert not list(vendor.rglob("*.rlib")) and not list(vendor.rglob("*.d"))
    lines = (built / "requirements.txt").read_text().splitlines()
    assert not [line for line in lines if "c2pa" in line.split("#")[0]]
    # chalice's packager still installs what c2pa-python needs; test-only extras are left out
    assert {"toml>=0.10.2", "cryptography>=41.0.0", "requests>=2.0.0"} <= set(lines)
    assert "pillow==12.2.0" in lines and not [line for line in lines if line.startswith("pytest")]
    # the tracked requirements.txt is left as it was
    assert (source / "requirements.txt").read_text() == REQUIREMENTS


def test_a_second_build_starts_from_a_clean_vendor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _wheel(tmp_path)
    monkeypatch.setattr(project, "download_wheel", lambda name, version, cache, python_version="3.13": wheel)
    source = _source(tmp_path)
    built = project.build(tmp_path / "project", "dev", {}, {}, source=source)
    (built / "vendor" / "stale.py").write_text("")
    project.build(built, "dev", {}, {}, source=source)
    assert not (built / "vendor" / "stale.py").exists()
    assert (built / "requirements.txt").read_text().count("cryptography") == 1


def test_an_existing_requirement_is_not_listed_twice(tmp_path: Path) -> None:
    built = tmp_path / "project"
    built.mkdir()
    (built / "requirements.txt").write_text("cryptography>=42\nc2pa_python==0.38.1\n")
    added = project.vendor_wheel(built, "c2pa-python", _wheel(tmp_path), ("*.rlib",))
    assert added == ["toml>=0.10.2", "requests>=2.0.0"]
    assert "cryptography>=42" in (built / "requirements.txt").read_text().splitlines()


@pytest.mark.parametrize(
    ("requirements", "message"),
    [("pillow==12.2.0\n", "not in requirements.txt"), ("c2pa-python>=0.38\n", "pinned with ==")],
)
def test_the_pin_must_be_exact(requirements: str, message: str) -> None:
    with pytest.raises(DeployError, match=message):
        project.pinned_version(requirements, "c2pa-python")


def test_the_tracked_requirements_pin_c2pa() -> None:
    assert project.pinned_version((project.ROOT / "requirements.txt").read_text(), "c2pa-python")


def test_a_cached_wheel_is_not_fetched_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _wheel(tmp_path)

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip ran although the wheel is cached")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert DOWNLOAD_WHEEL("c2pa-python", "0.38.1", tmp_path) == wheel


def test_a_failed_download_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(command: list[str], **kwargs: object) -> None:
        assert "--only-binary=:all:" in command and "--no-deps" in command
        assert command[command.index("--platform") + 1] == "manylinux_2_28_x86_64"
        assert command[-1] == "c2pa-python==0.38.1"
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(subprocess, "run", offline)
    with pytest.raises(DeployError, match=r"manylinux_2_28_x86_64 wheel of c2pa-python==0\.38\.1.*put that wheel in"):
        DOWNLOAD_WHEEL("c2pa-python", "0.38.1", tmp_path / "cache")


def test_the_built_project_carries_checked_hash_bytecode_for_its_code(tmp_path: Path) -> None:
    """Lambda's /var/task is read-only, so a package without .pyc files compiles its sources at every
    cold start (backend/project.py BYTECODE_DIRS). The project's chalicelib/ gets them, compiled by
    the deploy's interpreter (the runtime's version) in checked-hash mode (PEP 552: valid whatever
    mtime the zip gives the source, recompiled should the source differ)."""
    source = _source(tmp_path)
    (source / "chalicelib" / "store").mkdir()
    (source / "chalicelib" / "store" / "jobs.py").write_text("TABLE = 'jobs'\n")
    built = project.build(tmp_path / "project", "dev", {}, {}, source=source)

    # what the deploy's interpreter expects of each module's .pyc: its name, and the source's hash
    probe = (
        "import importlib.util, json, sys; from pathlib import Path; "
        "print(json.dumps({p: [importlib.util.cache_from_source(p), importlib.util.source_hash(Path(p).read_bytes()).hex()]"
        " for p in sys.argv[1:]}))"
    )
    modules = [str(built / "chalicelib" / "__init__.py"), str(built / "chalicelib" / "store" / "jobs.py")]
    expected = json.loads(
        subprocess.run(
            [project.runtime.chalice_python(), "-c", probe, *modules], capture_output=True, text=True, check=True
        ).stdout
    )
    for module, (pyc, source_hash) in expected.items():
        data = Path(pyc).read_bytes()
        assert int.from_bytes(data[4:8], "little") == 0b11, module  # hash-based (bit 0) and checked (bit 1)
        assert data[8:16].hex() == source_hash, module
