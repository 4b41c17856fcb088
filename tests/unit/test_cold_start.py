"""The API handler's cold start imports only what a request needs: no Pillow (the workflow
steps import it when they run; their tests show they still work)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_app_does_not_import_pillow() -> None:
    probe = "import sys, app; print(sorted(m for m in sys.modules if m == 'PIL' or m.startswith('PIL.')))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_importing_the_app_does_not_import_pydantic() -> None:
    """The request models (chalicelib/catalogue/schemas.py) are imported by the routes that write: the
    polling routes' cold start never pays for pydantic (docs/api.md, bench/cold_start.py)."""
    probe = "import sys, app; print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
