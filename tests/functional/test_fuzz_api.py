"""The API fuzzed from its own OpenAPI document (docs/openapi.json) with Schemathesis (issue #26).

Every operation, every parameter and body, as random schema-conforming (positive) and
schema-violating (negative) cases and as Schemathesis's deterministic coverage cases (boundaries
and wrong types for every keyword), sent over real HTTP to the local stack's API server (backend/local/gateway.py:
Chalice's local server with API Gateway's Cognito check and Gateway Responses), served from a
thread of this process so the moto backend, the IAM guard (tests/conftest.py) and the snapshots
below all see the same AWS. That is what `make run` serves, minus the moto *server*: running the
whole stack would cost a subprocess and seconds per test and check IAM outside the test
(docs/aws-notes.md#n102-schemathesis-cases-from-the-openapi-document).

Each answer must be:
- never a 5xx;
- on a 4xx, the one error shape `{"code", "message", "details"}` (chalicelib/api/http_errors.py), its
  code one of contracts.ErrorCode;
- on a 4xx, nothing written: the table's items and the bucket's objects are the same before and
  after the request.

Seeded (Hypothesis `derandomize`, no example database) and bounded (`EXAMPLES` random cases per
operation and mode, at most `COVERAGE_CASES` of Schemathesis's deterministic coverage cases), so
it runs in well under a minute of CPU; `FUZZ_COUNTS` says how many requests it sent (printed at
the end of the run by tests/conftest.py).
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from harness import upload, write_job_images
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from chalicelib.api import auth
from chalicelib.core import contracts

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "backdrop-test-bucket"
TABLE = "backdrop-test-jobs"
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_fuzz"
CLIENT_ID = "fuzz-client"
# Random cases per operation and mode (positive, negative), besides the coverage cases: the whole
# run sent 1,264 requests in 41 s of CPU on this project's 2-core machine (3 min of wall time with
# the machine shared, load average 12)
EXAMPLES = 20

SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
OPERATIONS = sorted((result.ok() for result in SCHEMA.get_all_operations()), key=lambda op: (op.path, op.method))
ERROR_CODES = frozenset(code.value for code in contracts.ErrorCode)

# What the fuzzer sent and found, for the run's summary line (tests/conftest.py)
FUZZ_COUNTS: dict[str, int] = {"requests": 0, "refused": 0, "server_errors": 0, "shape_errors": 0, "writes": 0}

# (operation, mode) whose failures are request BODY validation, which another branch ("schema")
# replaces with pydantic models; strict, so the merge that fixes them must remove the mark.
BODY_VALIDATION: dict[tuple[str, str], str] = {}


# Schemathesis's coverage phase: for each keyword of each schema, its boundary and wrong-type
# values (a list or an object where a string is due, one past `maximum`...), deterministic. Taken
# whole up to this many per operation, else every k-th (POST /jobs has about 600).
COVERAGE_CASES = 80
COVERAGE = "coverage"


def _params() -> Iterator[Any]:
    for op in OPERATIONS:
        # an operation with no parameter and no body has nothing a negative case could break
        modes: list[str] = [GenerationMode.POSITIVE.value]
        if any(True for _ in op.iter_parameters()) or len(op.body):
            modes += [GenerationMode.NEGATIVE.value, COVERAGE]
        for mode in modes:
            key = (f"{op.method.upper()} {op.path}", mode)
            marks = []
            if key in BODY_VALIDATION:
                marks.append(
                    pytest.mark.xfail(strict=True, reason=f"body validation: schema branch ({BODY_VALIDATION[key]})")
                )
            yield pytest.param(op, mode, id=f"{op.method.upper()} {op.path} {mode}", marks=marks)


def _coverage_cases(operation: Any) -> list[Any]:
    cases = list(
        SCHEMA.iter_coverage_cases(
            operation,
            generation_modes=[GenerationMode.NEGATIVE, GenerationMode.POSITIVE],
            generation_config=SCHEMA.config.generation_for(operation=operation),
        )
    )
    # its "unexpected method" cases (QUERY, TRACE...) test the HTTP server, not the app: the local
    # one (Python's http.server) answers 501 to a method it has no handler for, API Gateway 403
    cases = [case for case in cases if case.method.upper() == operation.method.upper()]
    stride = max(1, -(-len(cases) // COVERAGE_CASES))
    return cases[::stride]


# ------------------------------------------------------------------------------ the API server


def _token(key: Any, user: str) -> str:
    from joserfc import jwt

    claims = {
        "sub": user,
        "cognito:username": user,
        "email": "fuzz@example.com",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode({"alg": "RS256", "kid": "fuzz"}, claims, key)


@functools.cache
def _signing_key() -> Any:
    from joserfc.jwk import RSAKey

    return RSAKey.generate_key(2048, parameters={"kid": "fuzz"}, private=True)  # once: it takes a while


@pytest.fixture(scope="module")
def _served() -> Iterator[dict[str, Any]]:
    """moto, the bucket and table, and the API on 127.0.0.1 (a free port), once for the module:
    set up per case family they cost more than the cases."""
    from builders import PERSON_AND_BEACH, FakeRekognition
    from joserfc.jwk import KeySet
    from moto import mock_aws

    import app as backdrop_app
    from backend.local.gateway import CognitoTokenVerifier, serve
    from backend.resources import create_resources
    from chalicelib.store import clients as aws

    verifier = CognitoTokenVerifier("http://127.0.0.1:9/jwks.json", ISSUER, CLIENT_ID)
    verifier._keys = KeySet([_signing_key()])  # no JWKS fetch
    real_client = aws.client

    def client(service: str) -> Any:  # Rekognition answers canned labels, as the `rekognition` fixture does
        return FakeRekognition(PERSON_AND_BEACH) if service == "rekognition" else real_client(service)

    client.cache_clear = real_client.cache_clear  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.setattr(aws, "client", client)
        create_resources(bucket=BUCKET, table=TABLE, region="us-east-1")
        server, thread = serve(backdrop_app.app, verifier, "127.0.0.1", 0)
        try:
            yield {"url": f"http://127.0.0.1:{server.server.server_address[1]}"}
        finally:
            server.server.shutdown()
            server.server.server_close()
            thread.join(timeout=5)


@pytest.fixture
def api(_served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The served API and a signed ID token for a new user (each case family its own)."""
    monkeypatch.setattr(auth, "SUB_RE", auth.COGNITO_SUB_RE)  # the deployed rule
    user = str(uuid.uuid4())
    return {**_served, "user": user, "token": _token(_signing_key(), user)}


def _seed_job(api: dict[str, Any], photo: Any) -> dict[str, str]:
    """One accepted job of the user with its image items, so path parameters can name real things."""
    ref = upload(api["user"], "seed.png", photo(), "png")
    answer = requests.post(
        f"{api['url']}/jobs",
        headers={"Authorization": api["token"]},
        json={"prompt": "a marble floor", "images": [{"imageRef": ref, "labels": ["Person"]}]},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["jobId"]
    write_job_images(job_id)
    page = requests.get(f"{api['url']}/jobs/{job_id}", headers={"Authorization": api["token"]}, timeout=30).json()
    return {"job_id": job_id, "image_id": page["images"][0]["imageId"]}


# ------------------------------------------------------------------------------ what was written


class Snapshot:
    """Every item of the table and every object of the bucket (key, size, ETag), read from moto's
    backends directly: compared before and after a refused request. Through the APIs a Scan and a
    listing per case cost more than the case (moto serialises every item each time)."""

    def __init__(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends
        from moto.s3.models import s3_backends

        self.table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[TABLE]
        self.bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[BUCKET]

    def __call__(self) -> tuple[Any, ...]:
        items = tuple(sorted(json.dumps(item.to_json(), sort_keys=True) for item in self.table.all_items()))
        objects = tuple(sorted((key.name, key.size, key.etag) for key in self.bucket.keys.values()))
        return items, objects


def _written(before: tuple[Any, ...], after: tuple[Any, ...]) -> list[str]:
    changes = []
    for kind, old, new in (("item", before[0], after[0]), ("object", before[1], after[1])):
        changes += [f"{kind} added: {str(x)[:200]}" for x in sorted(set(new) - set(old))]
        changes += [f"{kind} removed: {str(x)[:200]}" for x in sorted(set(old) - set(new))]
    return changes


def _problems(response: requests.Response, before: tuple[Any, ...], snapshot: Snapshot) -> list[str]:
    status = response.status_code
    if status >= 500:
        FUZZ_COUNTS["server_errors"] += 1
        return [f"answered {status}: {response.text[:300]}"]
    if status < 400:
        return []
    FUZZ_COUNTS["refused"] += 1
    problems = []
    try:
        body = response.json()
    except ValueError:
        body = None
    shaped = (
        isinstance(body, dict)
        and set(body) == {"code", "message", "details"}
        and body["code"] in ERROR_CODES
        and isinstance(body["message"], str)
        and bool(body["message"])
        and isinstance(body["details"], list)
    )
    if not shaped:
        FUZZ_COUNTS["shape_errors"] += 1
        problems.append(f"{status} not in the error shape: {response.text[:300]}")
    written = _written(before, snapshot())
    if written:
        FUZZ_COUNTS["writes"] += 1
        problems.append(f"{status} but wrote: {written[:5]}")
    return problems


# ------------------------------------------------------------------------------ the fuzzer


class Sender:
    """Sends cases as the test user and records what each answer shows."""

    def __init__(self, api: dict[str, Any]) -> None:
        self.api = api
        self.session = requests.Session()
        self.snapshot = Snapshot()
        self.found: dict[str, str] = {}  # problem → the request that showed it first

    def __call__(self, case: Any) -> None:
        # always as the test user: a case's own Authorization (none, or a mangled one) is replaced
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        case.headers["Authorization"] = self.api["token"]
        before = self.snapshot()
        try:
            response = case.call(base_url=self.api["url"], session=self.session, timeout=30)
        except (requests.exceptions.InvalidHeader, ValueError, UnicodeError):
            return  # what the client library cannot send (an illegal header value) never reaches the API
        FUZZ_COUNTS["requests"] += 1
        for problem in _problems(response, before, self.snapshot):
            request = response.request
            self.found.setdefault(
                problem.split(":")[0], f"{problem}\n    {request.method} {request.url} {request.body!r:.300}"
            )


@pytest.mark.parametrize(("operation", "mode"), list(_params()))
def test_no_5xx_one_error_shape_and_nothing_written_when_refused(
    api: dict[str, Any], photo: Any, operation: Any, mode: str
) -> None:
    seeded = _seed_job(api, photo)
    names = {p.name for p in operation.path_parameters}
    real = {name: seeded[name] for name in names if name in seeded}
    send = Sender(api)
    if mode == COVERAGE:
        for index, case in enumerate(_coverage_cases(operation)):
            # every other case names the seeded job (and image) where its own ids are well formed
            if index % 2 and real and all(_well_formed(operation, n, case.path_parameters.get(n)) for n in real):
                case.path_parameters = {**case.path_parameters, **real}
            send(case)
    else:
        generated = operation.as_strategy(generation_mode=GenerationMode(mode))
        # half the cases name the seeded job (and image), so handlers get past "not found"
        strategy = (
            st.one_of(generated, operation.as_strategy(generation_mode=GenerationMode(mode), path_parameters=real))
            if real
            else generated
        )

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,  # a fixed seed: the same cases every run
            database=None,
            deadline=None,
            phases=(Phase.explicit, Phase.generate),  # every problem is recorded, none shrunk
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case: Any) -> None:
            send(case)

        fuzz()
    assert not send.found, "\n".join(send.found.values())


def _well_formed(operation: Any, name: str, value: Any) -> bool:
    """Whether a path parameter's value matches its schema's pattern (a negative case's does not)."""
    import re

    (parameter,) = [p for p in operation.path_parameters if p.name == name]
    schema = parameter.definition.get("schema") or {}
    if "$ref" in schema:
        schema = SCHEMA.raw_schema["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    pattern = schema.get("pattern")
    return isinstance(value, str) and (pattern is None or re.search(pattern, value) is not None)


def test_the_snapshot_sees_every_write_a_refused_request_could_make(api: dict[str, Any]) -> None:
    """The check itself: an item put, an object put and an object overwritten between two
    snapshots are each reported (the snapshot reads the same moto the API writes to)."""
    import boto3

    snapshot = Snapshot()
    before = snapshot()
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={"pk": "FUZZ#x", "sk": "y"})
    boto3.client("s3").put_object(Bucket=BUCKET, Key="fuzz/x", Body=b"1")
    middle = snapshot()
    assert [line.split(":")[0] for line in _written(before, middle)] == ["item added", "object added"]
    boto3.client("s3").put_object(Bucket=BUCKET, Key="fuzz/x", Body=b"2")
    assert [line.split(":")[0] for line in _written(middle, snapshot())] == ["object added", "object removed"]
