"""docs/api.md runs as written against the local stack (curl, jq and bash, as a reader would),
and the gateway's own errors have the one error shape over real HTTP."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_support import on_shared_stack, shared_local_stack

from backend.local.__main__ import curl_exports
from backend.local.stack import LocalStack

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def shared_stack() -> Iterator[LocalStack]:
    with shared_local_stack("walkthrough") as local:
        yield local


@pytest.fixture
def stack(shared_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    with on_shared_stack(shared_stack, monkeypatch) as local:
        yield local


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", API_DOC.read_text(), flags=re.S)


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("bash", "curl", "jq", "openssl")), reason="needs bash, curl, jq, openssl"
)
def test_the_curl_walkthrough_runs_as_written(stack: LocalStack, tmp_path: Path) -> None:
    blocks = _bash_blocks()
    assert len(blocks) >= 6
    # run where a reader would (the page names samples/), but in a copy of that place: what the
    # walkthrough downloads (results/, the zip) lands in tmp_path, never in the repository
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / "samples").symlink_to(ROOT / "samples")
    script = tmp_path / "walkthrough.sh"
    # the export line `make run` prints, then every bash block of the page, in order
    script.write_text("set -euo pipefail\n" + curl_exports(stack) + "\ncd " + str(workdir) + "\n" + "\n".join(blocks))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"^COMPLETED \{", out, flags=re.M), out
    assert re.search(r"^job \d{8}T\d{6}Z-[0-9a-f]{12}$", out, flags=re.M)
    assert '"code":"CONFLICT"' in out  # cancelling the finished job
    # variants: two made, the second picked, a regenerated third added
    assert '{"delivered":2,"pickedBy":"OWNER","report":"REWRITTEN"}' in out
    assert '{"variant":3,"source":"REGENERATED","delivered":false}' in out
    assert '"deleted":true' in out and '"originals":1' in out
    assert re.search(r"^Backdrop-Signature: t=\d+,v1=[0-9a-f]{64}$", out, flags=re.M)
    # what the page says it downloads, downloaded: each result and the report, and the zip
    job_id = re.search(r"^job (\d{8}T\d{6}Z-[0-9a-f]{12})$", out, flags=re.M)
    assert job_id and (workdir / "results" / f"report-{job_id.group(1)}.csv").is_file()
    assert (workdir / f"backdrop-{job_id.group(1)}.zip").stat().st_size > 0


def test_the_gateways_own_errors_have_the_one_shape(stack: LocalStack) -> None:
    no_token = requests.get(f"{stack.api_url}/jobs", timeout=10)
    assert no_token.status_code == 401
    assert no_token.json() == {"code": "UNAUTHORIZED", "message": no_token.json()["message"], "details": []}
    no_route = requests.get(f"{stack.api_url}/no/such/route", timeout=10)
    assert no_route.status_code == 404 and no_route.json()["code"] == "NOT_FOUND"
    document = requests.get(f"{stack.api_url}/openapi.json", timeout=10)
    assert document.status_code == 200 and document.json()["openapi"] == "3.1.0"
