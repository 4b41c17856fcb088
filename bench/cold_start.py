"""The API handler's cold start before and after a change, in CPU time of fresh interpreters.

`python -m bench.cold_start [--before main] [--samples 9]` exports the `--before` commit's tree
(`git archive`) next to this working tree and, in ONE run, alternates fresh interpreters between
the two (before, after, before, after, ...), so both see the same machine load. Each sample is
the child's own CPU time (user + system, `resource.getrusage` read by the child when its work is
done: the interpreter's start included, its teardown and the other work on the machine not), and
each row prints the median of the samples.

What each probe runs in its child:

- `import app`: the module alone (what every Lambda of the API pays before its first request);
- `GET /jobs/{id}?limit=0`: `import app`, then one API Gateway proxy event through the Chalice
  app, as a poller sends it; the handler builds what it needs (the jobs Table; S3 only if the
  answer links a file) and reads the job;
- `GET /jobs/{id}`: the same with the default page of images: one image, so its presigned links
  build the S3 client too.

Each side runs from a tree laid out as its stage's package would be: `before` is the commit's
tree (`git archive`), `after` a copy of this working tree's code (app.py, chalicelib/, backend/),
each with the bytecode its own `backend.project.compile_bytecode` gives the package (none before
that existed: the sources were compiled at every cold start), compiled by the bench's
interpreter. The children cannot write bytecode (PYTHONDONTWRITEBYTECODE, as Lambda's read-only
/var/task), so every sample is a cold start from what the package carries.

No moto and no AWS: the SDK's endpoint (AWS_ENDPOINT_URL) is a tiny DynamoDB stand-in served from
this process (its CPU is not the child's) that answers GetItem with one job and Query with one
image, so the child pays the real client creation, signing, sending and parsing of both calls.
The route must answer 200, or the probe fails.

PASS when the after median is within the 300 ms target (issue #28.3); `import app` must not load
pydantic, boto3, numpy or Pillow.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0
JOB_ID = "20261208T020000Z-0123456789ab"
OWNER = "11111111-2222-4333-8444-555555555555"
IMAGE_ID = "0" * 32

# Every probe ends here: its own CPU time so far (getrusage of the child, read by the child), then
# an exit without the interpreter's teardown. A Lambda's cold start ends at the answer: its
# environment is kept for the next request, and tearing down botocore's loaded models took another
# ~100 ms of CPU here that no request waits for.
DONE = (
    "\nimport os as _os, resource as _r\n_u = _r.getrusage(_r.RUSAGE_SELF)\n"
    "print(1000 * (_u.ru_utime + _u.ru_stime), flush=True)\n_os._exit(0)\n"
)
IMPORT_ONLY = "import app" + DONE
REQUEST = (
    f"""
import json, sys, app
limit = sys.argv[1]
query = {{"limit": limit}} if limit else None
event = {{
    "resource": "/jobs/{{job_id}}", "path": "/jobs/{JOB_ID}", "httpMethod": "GET",
    "headers": {{"Host": "api.example"}}, "multiValueHeaders": {{"Host": ["api.example"]}},
    "queryStringParameters": query, "multiValueQueryStringParameters": {{k: [v] for k, v in (query or {{}}).items()}} or None,
    "pathParameters": {{"job_id": "{JOB_ID}"}}, "stageVariables": None, "body": None, "isBase64Encoded": False,
    "requestContext": {{"resourcePath": "/jobs/{{job_id}}", "httpMethod": "GET", "stage": "api",
        "authorizer": {{"claims": {{"sub": "{OWNER}", "token_use": "id"}}}}}},
}}
answer = app.app(event, None)
assert answer["statusCode"] == 200, answer
body = json.loads(answer["body"])
assert body["jobId"] == "{JOB_ID}" and len(body.get("images", [])) == (0 if limit == "0" else 1), body
"""
    + DONE
)
LOADED = (
    "import sys, app; print(sorted({m.split('.')[0] for m in sys.modules} & "
    "{'pydantic', 'boto3', 'botocore', 'numpy', 'PIL'}))"
)


def _ddb(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: _ddb(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"L": [_ddb(v) for v in value]}
    return {"S": str(value)}


JOB_ITEM = {
    "pk": f"JOB#{JOB_ID}",
    "sk": "JOB",
    "jobId": JOB_ID,
    "owner": OWNER,
    "status": "RUNNING",
    "createdAt": "2026-12-08T02:00:00Z",
    "imageCount": 1,
    "model": "stand-in",
    "settings": {"prompt": "a beach"},
    "counts": {"RUNNING": 1},
}
IMAGE_ITEM = {
    "pk": f"JOB#{JOB_ID}",
    "sk": f"IMG#{IMAGE_ID}",
    "jobId": JOB_ID,
    "owner": OWNER,
    "imageId": IMAGE_ID,
    "status": "RUNNING",
    "key": f"uploads/{OWNER}/u/{IMAGE_ID}.jpg",
}


class _StandIn(BaseHTTPRequestHandler):
    """DynamoDB's JSON protocol, just enough for GET /jobs/{id}: GetItem → the job, Query → one image."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        if target.endswith(".GetItem"):
            body: dict[str, Any] = {"Item": _ddb(JOB_ITEM)["M"]}
        elif target.endswith(".Query"):
            body = {"Items": [_ddb(IMAGE_ITEM)["M"]], "Count": 1, "ScannedCount": 1}
        else:
            body = {}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# what a tree's own packaging does to it, run in that tree (a commit before compile_bytecode has none)
PACKAGE_BYTECODE = (
    "import sys; from pathlib import Path; from backend import project; "
    "f = getattr(project, 'compile_bytecode', None); f and f(Path('.'), sys.executable)"
)
WORKING_TREE = ("app.py", "chalicelib", "backend")


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _copy_working_tree(into: Path) -> Path:
    into.mkdir(parents=True)
    for name in WORKING_TREE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, into / name)
    return into


def _as_packaged(tree: Path, env: dict[str, str]) -> Path:
    subprocess.run([sys.executable, "-c", PACKAGE_BYTECODE], cwd=tree, env=env, capture_output=True, check=True)
    return tree


def _run(tree: Path, code: str, args: list[str], env: dict[str, str]) -> float:
    """The child's own CPU time (user + system, ms) up to its answer, as the child reads it."""
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=tree, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"probe failed in {tree}: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


PROBES: tuple[tuple[str, str, list[str]], ...] = (
    ("import app", IMPORT_ONLY, []),
    ("import app + GET /jobs/{id}?limit=0", REQUEST, ["0"]),
    ("import app + GET /jobs/{id} (1 image)", REQUEST, [""]),
)


def measure(samples: int, before: str | None = None) -> tuple[dict[tuple[str, str], float], str]:
    """Median CPU ms per (probe, side) over `samples` fresh children, sides interleaved ("before"
    only when a commit is given), and the heavy modules `import app` loads (a list's repr)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "JOBS_TABLE_NAME": "backdrop-bench",
        "BUCKET_NAME": "backdrop-bench",
    }
    env.pop("AWS_PROFILE", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # Lambda's /var/task is read-only: a child writes no .pyc
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trees = {"after": _as_packaged(_copy_working_tree(Path(tmp) / "after"), env)}
            if before is not None:
                trees = {"before": _as_packaged(_export(before, Path(tmp) / "before"), env), **trees}
            ms: dict[tuple[str, str], list[float]] = {}
            for _ in range(samples):
                for name, code, probe_args in PROBES:
                    for side, tree in trees.items():
                        ms.setdefault((name, side), []).append(_run(tree, code, probe_args, env))
            loaded = subprocess.run(
                [sys.executable, "-c", LOADED], cwd=trees["after"], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
    finally:
        server.shutdown()
    return {key: statistics.median(values) for key, values in ms.items()}, loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="the commit to compare with (default main)")
    parser.add_argument("--samples", type=int, default=9)
    args = parser.parse_args(argv)
    medians, loaded = measure(args.samples, args.before)
    ok = loaded == "[]"
    print(f"CPU time of a fresh interpreter, median of {args.samples} (before = {args.before}, interleaved)")
    for name, _, _ in PROBES:
        before, after = medians[(name, "before")], medians[(name, "after")]
        verdict = "PASS" if after <= TARGET_MS else "MISS"
        ok = ok and after <= TARGET_MS
        print(
            f"{name:40} before {before:6.1f} ms  after {after:6.1f} ms  ({after - before:+6.1f})"
            f"  <= {TARGET_MS:.0f} ms  {verdict}"
        )
    print(f"import app loads pydantic/boto3/botocore/numpy/PIL: {loaded}  {'PASS' if loaded == '[]' else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
