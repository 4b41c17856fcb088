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


# The first request in a fresh interpreter: a route that needs no AWS, through the whole Chalice app
# (its middleware included), then the collector's state as the next request would find it.
_FIRST_REQUEST = """
import gc, json, app
from chalice.test import Client
before = (gc.isenabled(), gc.get_freeze_count())
with Client(app.app) as client:
    first = client.http.get("/health").status_code
    frozen = gc.get_freeze_count()
    second = client.http.get("/health").status_code
print(json.dumps({"before": before, "first": first, "second": second, "frozen": frozen,
                  "after": [gc.isenabled(), gc.get_freeze_count()]}))
"""


def test_the_first_request_runs_without_the_cyclic_gc_and_freezes_what_it_loaded() -> None:
    """The environment's first request pauses the collector (~50 ms of the API's cold start went
    to walking the SDK's freshly parsed models, chalicelib/api/coldstart.py); when it has answered,
    what it loaded is frozen out of later collections and the collector is on again for every
    later request. Before, nothing was ever frozen."""
    out = subprocess.run([sys.executable, "-c", _FIRST_REQUEST], cwd=ROOT, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == [True, 0]  # importing the app changes nothing
    assert seen["first"] == 200 and seen["second"] == 200
    assert seen["frozen"] > 10_000  # the modules and objects the first request left alive
    enabled, still_frozen = seen["after"]
    assert enabled and still_frozen <= seen["frozen"]  # the second request froze nothing more


def test_the_collector_is_paused_only_inside_the_first_request() -> None:
    probe = """
import gc, json
from chalicelib.api import coldstart
seen = []
for _ in range(2):
    with coldstart.first_request_without_gc():
        seen.append(gc.isenabled())
    seen.append(gc.isenabled())
print(json.dumps(seen))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, True, True, True]
