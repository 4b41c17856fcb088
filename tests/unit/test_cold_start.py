"""The API handler's cold start imports only what a request needs: no Pillow (the workflow
steps import it when they run; their tests show they still work)."""

from __future__ import annotations

import json
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


def _loaded(probe_modules: str) -> list[str]:
    probe = f"import json, sys, app; print(json.dumps(sorted(m for m in sys.modules if {probe_modules})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip()))


def test_importing_the_app_does_not_import_numpy() -> None:
    assert _loaded("m.split('.')[0] == 'numpy'") == []


def test_importing_the_app_loads_no_workflow_delivery_or_job_modules() -> None:
    """Each route imports the chalicelib modules it uses when it first runs (issue #28.3): the
    workflow, delivery and job services, the model registry and the job store (which imports
    boto3) are not paid for by `import app`, so a poller's GET /jobs/{id} pays only for its own."""
    heavy = (
        "chalicelib.workflow.steps",
        "chalicelib.delivery",
        "chalicelib.jobs.service",
        "chalicelib.models",
        "chalicelib.catalogue",
    )
    assert _loaded(f"m.startswith({heavy!r}) or m == 'chalicelib.store.jobs'") == []


def test_importing_the_app_does_not_import_the_aws_sdk() -> None:
    """boto3 and botocore (~150 ms of CPU) load with the first client a handler builds
    (chalicelib/store/clients.py), not at import."""
    assert _loaded("m.split('.')[0] in ('boto3', 'botocore', 's3transfer', 'aws_lambda_powertools')") == []
