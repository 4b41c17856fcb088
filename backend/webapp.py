"""The web app's deployment: the source it runs from and the URL it is reached at.

The web app runs on an Amazon ECS Express Mode service (backend/templates/webapp.yaml) from the
public Python image: no image is built, so the deployer needs no Docker. What it runs is this
checkout's source, zipped here and put in the stage's bucket under `webapp/`; the task fetches it
with its task role, installs it and starts Streamlit (docs/aws-notes.md N93, N101).

The zip is deterministic (sorted entries, fixed timestamps), so its key, named after its hash,
changes only when the code does: a redeploy with the same code leaves the stack alone.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
# What `pip install '.[frontend]'` and `streamlit run frontend/streamlit_app.py` need: the
# project file (and the README it names), the packages it lists, and Streamlit's config.
SOURCE_PARTS: Final = (
    "pyproject.toml",
    "README.md",
    "requirements.txt",
    ".streamlit",
    "frontend",
    "chalicelib",
    "backend",
)
SOURCE_PREFIX: Final = "webapp/"
_SKIPPED_DIRS: Final = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold: the same bytes every time


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for part in SOURCE_PARTS:
        path = root / part
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [
                p
                for p in path.rglob("*")
                if p.is_file() and not _SKIPPED_DIRS & set(p.relative_to(root).parts) and p.suffix != ".pyc"
            ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def source_zip(root: Path = ROOT) -> bytes:
    """The web app's source as a zip, the same bytes for the same files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(root):
            entry = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    return buffer.getvalue()


def source_key(data: bytes) -> str:
    """webapp/source-<16 hex of its SHA-256>.zip (the template's SourceKey pattern)."""
    return f"{SOURCE_PREFIX}source-{hashlib.sha256(data).hexdigest()[:16]}.zip"


def app_url(endpoint: str) -> str:
    """The app's URL from the service's Endpoint attribute (a host name, or already a URL)."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if endpoint.startswith("https://") else "https://" + endpoint.removeprefix("http://")
