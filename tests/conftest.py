"""Shared fixtures: fake credentials, a network guard, moto resources, Cognito-like tokens.

No test may reach real AWS. Credentials are fake and every socket connection to anything but the
loopback interface raises at once, so a forgotten mock fails loudly instead of hanging.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import BUCKET, STATE_MACHINE, TABLE, load_event, make_id_token, make_photo

# Set before anything imports boto3 or the app: decorator arguments and clients read these.
_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # botocore 1.44 resolves account-id endpoints for DynamoDB Streams that moto cannot match.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "BUCKET_NAME": BUCKET,
    "JOBS_TABLE_NAME": TABLE,
    "STATE_MACHINE_ARN": f"arn:aws:states:us-east-1:123456789012:stateMachine:{STATE_MACHINE}",
}
for _k, _v in _TEST_ENV.items():
    os.environ[_k] = _v
# moto's decorator mode intercepts AWS's own endpoints only, so no configured endpoint may apply.
for _k in list(os.environ):
    if _k.startswith("AWS_ENDPOINT_URL") or _k == "AWS_PROFILE":
        os.environ.pop(_k)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if (
        isinstance(host, str)
        and (host.startswith("127.") or host in ("::1", "localhost"))
        or self.family == socket.AF_UNIX
    ):
        return _real_connect(self, address)
    raise RuntimeError(f"test tried to open a network connection to {address!r}: tests must never reach real AWS")


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]

# moto gives every test a new boto3 default session, and with it a new botocore loader that parses
# the service models' JSON again (S3's and DynamoDB's, for every client a test or the app makes):
# about a third of a moto test's CPU time. The models are read-only data, so one loader per data
# path serves every session of the run.
_LOADERS: dict[str | None, Any] = {}


def _shared_loader(search_path_string: str | None = None) -> Any:
    from botocore import loaders

    if search_path_string not in _LOADERS:
        _LOADERS[search_path_string] = loaders.create_loader(search_path_string)
    return _LOADERS[search_path_string]


def _share_service_models() -> None:
    import botocore.session

    botocore.session.create_loader = _shared_loader  # type: ignore[attr-defined]


_share_service_models()

_REPO_ROOT = Path(__file__).resolve().parents[1]
# What a test run may add to the repository's root: tool caches and the ignored test-artifacts/
_RUN_LEFTOVERS = frozenset(
    {".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache", "__pycache__", "test-artifacts"}
)


def _root_entries() -> set[str]:
    roots = {_REPO_ROOT, Path.cwd().resolve()}
    return {str(root / name) for root in roots for name in os.listdir(root) if name not in _RUN_LEFTOVERS}


@pytest.fixture(autouse=True)
def _nothing_left_in_the_repository(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test writes into tmp_path: anything it leaves in the repository's root (or the working
    directory) fails it, by name, so a stray download or report cannot creep into a commit."""
    before = _root_entries()
    yield
    left = sorted(_root_entries() - before)
    if left:
        pytest.fail(f"{request.node.nodeid} left {left} behind: write into tmp_path", pytrace=False)


@pytest.fixture(scope="session")
def _wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture(autouse=True)
def _vendored_wheels(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _wheel_cache: Path, tmp_path: Path
) -> None:
    """A stage's project takes c2pa-python from its wheel (backend/project.py): the slow tests that
    package fetch the real wheel once per session, outside the repository; the others get a
    small stand-in, so that building a project never reaches PyPI."""
    from backend import project

    if request.node.get_closest_marker("slow"):
        monkeypatch.setattr(project, "WHEEL_CACHE", _wheel_cache)
        return

    def fake_download(name: str, version: str, cache: Path, python_version: str = "3.13") -> Path:
        import zipfile

        wheel = tmp_path / f"{name.replace('-', '_')}-{version}-py3-none-{project.WHEEL_PLATFORM}.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", f"Name: {name}\n")
        return wheel

    monkeypatch.setattr(project, "download_wheel", fake_download)


# --------------------------------------------------------------------------------------------
# IAM: every call a Lambda's code makes is checked against that function's rendered policy
# (backend/local/iam.py); a denied call fails the test even if the product caught the error.


@pytest.fixture(scope="session", autouse=True)
def _iam_guard() -> Iterator[Any]:
    from backend.local import iam

    if os.environ.get("BACKDROP_IAM_GUARD") == "off":  # only to measure the guard's own cost
        yield None
        return
    uninstall = iam.install(iam.TESTS)
    try:
        yield iam.installed()
    finally:
        _write_iam_usage()
        uninstall()


_IAM_USAGE: dict[str, set[str]] = {}  # unit → the tests whose calls it allowed ($BACKDROP_IAM_RECORD)
_IAM_DURATIONS: dict[str, float] = {}  # test → seconds, so the mutation run re-runs the quickest


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("BACKDROP_IAM_RECORD") and getattr(config.option, "numprocesses", None):
        # each worker would write the file over the others' (the mutation run records in one process)
        raise pytest.UsageError("BACKDROP_IAM_RECORD records one process's tests: run it without -n")


def _write_iam_usage() -> None:
    path = os.environ.get("BACKDROP_IAM_RECORD")
    if path:
        import json

        usage = {unit: sorted(tests) for unit, tests in sorted(_IAM_USAGE.items())}
        with open(path, "w") as out:
            json.dump({"units": usage, "durations": _IAM_DURATIONS}, out, indent=1)


@pytest.fixture(autouse=True)
def _no_iam_denial(_iam_guard: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    guard = _iam_guard
    if guard is None:
        yield
        return
    denied_before, unmapped_before = len(guard.denials), len(guard.unmapped)
    recording = bool(os.environ.get("BACKDROP_IAM_RECORD"))
    used_before = dict(guard.used_units) if recording else {}
    started = time.monotonic()
    yield
    if recording:
        _IAM_DURATIONS[request.node.nodeid] = round(time.monotonic() - started, 2)
        for unit, count in guard.used_units.items():
            if count > used_before.get(unit, 0):
                _IAM_USAGE.setdefault(unit, set()).add(request.node.nodeid)
    if request.node.get_closest_marker("iam_denial_expected") is not None:
        return
    unmapped = guard.unmapped[unmapped_before:]
    if unmapped:  # even if the product caught the error: a new call must be mapped (backend/local/iam.py)
        pytest.fail(f"AWS operations no IAM action is mapped for: {sorted(set(unmapped))}", pytrace=False)
    denied = guard.denials[denied_before:]
    if denied:
        from backend.local.iam import denial_lines

        lines = "\n  ".join(denial_lines(denied))
        pytest.fail(f"IAM denied {len(denied)} AWS call(s) that AWS would refuse:\n  {lines}", pytrace=False)


@pytest.fixture(autouse=True)
def _test_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in _TEST_ENV.items():
        monkeypatch.setenv(key, value)
    # @pytest.mark.region("us-west-2"): the test's whole deployment (moto, the app, the stand-ins) is
    # in that Region, e.g. for a scene, whose model is offered on demand in us-west-2 only
    marker = request.node.get_closest_marker("region")
    if marker is not None:
        region = str(marker.args[0])
        for key in ("AWS_DEFAULT_REGION", "AWS_REGION"):
            monkeypatch.setenv(key, region)
        monkeypatch.setenv("STATE_MACHINE_ARN", _TEST_ENV["STATE_MACHINE_ARN"].replace("us-east-1", region))
    from backend.local import iam
    from chalicelib.store import clients as aws

    guard = iam.installed()
    # the IAM guard renders the policies for the test's Region too
    undo_region = guard.use(iam.tests_deployment(os.environ["AWS_REGION"])) if guard is not None else None
    aws.reset()
    _forget_warm_state()
    yield
    aws.reset()
    _forget_warm_state()
    if undo_region is not None:
        undo_region()


def _forget_warm_state() -> None:
    """What app.py keeps across invocations of a warm Lambda: the model-lifecycle checker holds a
    Bedrock client of the Region it was made in, which a test in another Region (a scene test's
    us-west-2) must not reuse (its calls would name the other Region's models, and the IAM guard,
    rendering this test's Region, refuses them)."""
    app = sys.modules.get("app")
    if app is not None and hasattr(app, "_lifecycles"):
        app._lifecycles = None


@pytest.fixture
def aws_mock() -> Iterator[None]:
    """moto in decorator mode with the Step Functions interpreter on and Docker-free Lambda, and
    SNS's filter-policy quotas enforced as AWS enforces them (backend/local/sns_rules.py)."""
    from moto import mock_aws

    from backend.local import sns_rules

    undo = sns_rules.install()
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
            yield
    finally:
        undo()


@pytest.fixture
def resources(aws_mock: None) -> dict[str, Any]:
    """The bucket and table, created from the same definitions the templates and local stack use
    (once per process, then restored into each test's new moto: tests/moto_state.py)."""
    from moto_state import fresh_resources

    return fresh_resources(
        bucket=os.environ["BUCKET_NAME"], table=os.environ["JOBS_TABLE_NAME"], region=os.environ["AWS_REGION"]
    )


@pytest.fixture
def transaction_rules(resources: dict[str, Any]) -> Iterator[Any]:
    """DynamoDB's transaction conflicts on the moto table (backend/local/dynamodb_rules.py): inject
    them with `conflict_next` / `conflict_randomly`, read `stats`."""
    from backend.local import dynamodb_rules, moto_bounds

    undo_transactions = moto_bounds.install_transactions()
    installed = dynamodb_rules.install_transaction_rules()
    yield installed
    installed.undo()
    undo_transactions()


@pytest.fixture
def store(resources: dict[str, Any]) -> Any:
    """The job store on the moto table, on the table the app builds (chalicelib.store.clients):
    tests read and write jobs only through it."""
    from chalicelib.store import clients as aws
    from chalicelib.store.jobs import JobStore

    return JobStore(aws.table(os.environ["JOBS_TABLE_NAME"]))


# --------------------------------------------------------------------------------------------
# Identity


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    return load_event


@pytest.fixture
def token_for(request: pytest.FixtureRequest) -> Callable[..., str]:
    """An ID token for a user. In a test with the executed workflow (`stack`), the user is also
    made as `backend.deploy create-user` makes one: their own job-email topic, here subscribed
    to the stack's inbox."""
    if "stack" not in request.fixturenames:
        return make_id_token
    stack = request.getfixturevalue("stack")

    def token(sub: str, **claims: Any) -> str:
        from contextlib import suppress

        with suppress(ValueError):  # a sub no topic can be named after (a hostile token's) has none
            stack["add_user"](sub)
        return make_id_token(sub, **claims)

    return token


@pytest.fixture(autouse=True)
def _readable_test_owners() -> Iterator[None]:
    """A deployment accepts only a UUID as a token's `sub` (chalicelib/api/auth.py); the suite's
    hand-made tokens name their owners readably ("owner-1") so a test can say whose data is
    whose, still whole strings of key-safe characters. Tests of the deployed rule monkeypatch
    `auth.SUB_RE` back to `auth.COGNITO_SUB_RE` (tests/unit/test_whole_strings.py). Set here
    without the monkeypatch fixture, so a test's `monkeypatch.undo()` leaves it in place."""
    from chalicelib.api import auth
    from chalicelib.core import contracts

    assert auth.SUB_RE is auth.COGNITO_SUB_RE, "the deployed rule is Cognito's UUID"
    auth.SUB_RE = contracts.OWNER_RE
    yield
    auth.SUB_RE = auth.COGNITO_SUB_RE


# --------------------------------------------------------------------------------------------
# Images


@pytest.fixture
def photo() -> Callable[..., bytes]:
    return make_photo


# --------------------------------------------------------------------------------------------
# Rekognition: moto's DetectLabels is canned (one "Mobile Phone" for any image), so tests that
# look at labels use this fake, handed in where the app gets its clients.

# PERSON_AND_BEACH and FakeRekognition live in tests/builders.py: a test module that imports
# them from "conftest" gets whichever conftest.py was imported first under that name
from builders import PERSON_AND_BEACH as PERSON_AND_BEACH  # noqa: E402
from builders import FakeRekognition as FakeRekognition  # noqa: E402


@pytest.fixture
def rekognition(monkeypatch: pytest.MonkeyPatch) -> FakeRekognition:
    from chalicelib.store import clients as aws

    fake = FakeRekognition(PERSON_AND_BEACH)
    real_client = aws.client

    def client(service: str) -> Any:
        return fake if service == "rekognition" else real_client(service)

    client.cache_clear = real_client.cache_clear  # type: ignore[attr-defined]
    monkeypatch.setattr(aws, "client", client)
    return fake


# --------------------------------------------------------------------------------------------
# The whole workflow on moto: the real state machine file, the real Lambdas in-process, Bedrock
# answered by the stand-in (backend/local/sfn_hooks.py).


@pytest.fixture
def client(resources: dict[str, Any], rekognition: Any) -> Iterator[Any]:
    """Chalice's test client on the app, over moto's resources and the Rekognition stand-in. The
    one definition: a module that needs more (a patched resolver, the deployed auth rule)
    overrides it with a fixture of the same name that takes this one as `client`."""
    from chalice.test import Client

    import app as backdrop_app  # after _TEST_ENV: the app reads its settings when it is imported

    with Client(backdrop_app.app, stage_name="dev") as test_client:
        yield test_client


@pytest.fixture
def stack(resources: dict[str, Any], rekognition: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The state machine and an inbox provisioned as the local stack provisions them, with the
    workflow Lambdas' real handlers and the Bedrock stand-in behind them. `add_user(sub)` makes a
    user's job-email topic (token_for calls it) and subscribes the inbox to it."""
    import boto3

    from backend.local import dynamodb_rules, moto_bounds
    from backend.local.bedrock_standin import StandInBedrock
    from backend.local.sfn_hooks import hooks
    from backend.local.stack import add_user, provision_workflow, workflow_handlers
    from chalicelib.store import clients as aws

    region = os.environ["AWS_REGION"]
    workflow = provision_workflow(
        boto3.client, prefix=STATE_MACHINE, region=region, bucket=resources["bucket"], max_concurrency=4
    )
    monkeypatch.setenv("STATE_MACHINE_ARN", workflow["state_machine_arn"])
    monkeypatch.setenv("USER_TOPIC_ARN_PREFIX", workflow["user_topic_arn_prefix"])
    aws.reset()

    # one kept label whose box surrounds the synthetic photo's subject
    box = {"Left": 0.25, "Top": 0.2, "Width": 0.5, "Height": 0.7}
    rekognition.labels = [
        {"Name": "Product", "Confidence": 97.0, "Instances": [{"BoundingBox": box, "Confidence": 96.0}]}
    ]
    bedrock = StandInBedrock(region=region)  # refuses a model the Region does not offer, as Bedrock does
    outage = Outage()
    names = {arn: name for name, arn in workflow["functions"].items()}

    def guarded(arn: str, handler: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        def call(event: dict[str, Any]) -> Any:
            outage.check(names[arn])
            return handler(event)

        return call

    def model_call(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        outage.check("model")
        return bedrock(model_id, body)

    handlers = {arn: guarded(arn, handler) for arn, handler in workflow_handlers(workflow["functions"]).items()}
    # the Map's children write the table from several threads, as the local stack's do; their
    # transactions that overlap on one item are cancelled as DynamoDB cancels them, and tests may
    # inject more (stack["dynamodb"]: backend/local/dynamodb_rules.py)
    undo_transactions = moto_bounds.install_transactions()
    dynamodb = dynamodb_rules.install_transaction_rules()
    try:
        with hooks(handlers, model_call):
            yield {
                **resources,
                **workflow,
                "bedrock": bedrock,
                "outage": outage,
                "dynamodb": dynamodb,
                "add_user": lambda sub: add_user(boto3.client, workflow["stage"], sub, workflow["queue_arn"]),
            }
    finally:
        dynamodb.undo()
        undo_transactions()


class Outage:
    """An outage of everything the workflow calls (the app's Lambdas and the model), beginning
    at the first call of one step (`begin_at`: a Lambda name or "model") and lasting until
    `end()`: Lambda answers as throttled (429), Bedrock as ServiceUnavailable."""

    def __init__(self) -> None:
        self.begin_at: str | None = None
        self.active = False
        self.refused = 0

    def check(self, step: str) -> None:
        from backend.local.sfn_hooks import BedrockError, LambdaUnavailable

        if step == self.begin_at:
            self.active = True
        if not self.active:
            return
        self.refused += 1
        if step == "model":
            raise BedrockError("ServiceUnavailableException", "simulated outage")
        raise LambdaUnavailable(f"simulated outage: {step} cannot run")

    def end(self) -> None:
        self.active = False
        self.begin_at = None


# CPU time per test (setup, call and teardown; every thread of the run, moto's included):
# `BACKDROP_CPU_DURATIONS=40 pytest ...` prints the 40 costliest. On a machine others load, wall
# time (--durations) says as much about the neighbours as about the test; CPU time does not. The
# figure travels in the teardown report, so under pytest-xdist each worker's tests reach the
# controller's summary too (and a worker's own figure counts that worker's process only).
_CPU_SECONDS: dict[str, float] = {}
_CPU_STARTED = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    item.stash[_CPU_STARTED] = time.process_time()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if call.when == "teardown" and _CPU_STARTED in item.stash:
        report = outcome.get_result()
        report.user_properties.append(("cpu_seconds", time.process_time() - item.stash[_CPU_STARTED]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for key, value in report.user_properties:
            if key == "cpu_seconds":
                _CPU_SECONDS[report.nodeid] = float(value)


def _cpu_summary(terminalreporter: Any) -> None:
    count = int(os.environ.get("BACKDROP_CPU_DURATIONS") or 0)
    if not count or not _CPU_SECONDS:
        return
    terminalreporter.write_line(
        f"CPU seconds: {sum(_CPU_SECONDS.values()):.1f} in {len(_CPU_SECONDS)} tests; costliest:"
    )
    for nodeid, seconds in sorted(_CPU_SECONDS.items(), key=lambda kv: -kv[1])[:count]:
        terminalreporter.write_line(f"{seconds:8.2f}s cpu  {nodeid}")


def _run_counts() -> dict[str, dict[str, int]]:
    """This process's counts for the closing lines: the IAM guard's, the fuzzer's and the
    robustness matrices' (when they ran)."""
    counts: dict[str, dict[str, int]] = {}
    iam = sys.modules.get("backend.local.iam")
    guard = iam.last_guard() if iam is not None else None
    if guard is not None:
        counts["iam"] = {
            "checked": guard.checked,
            "denied": len(guard.denials),
            "missing_key_403s": guard.missing_key_403s,
        }
    fuzz = sys.modules.get("test_fuzz_api")  # tests/functional/test_fuzz_api.py
    if fuzz is not None and fuzz.FUZZ_COUNTS["requests"]:
        counts["fuzz"] = dict(fuzz.FUZZ_COUNTS)
    robustness = sys.modules.get("test_robustness")  # tests/e2e/test_robustness.py
    if robustness is not None:
        counts["robustness"] = dict(robustness.COUNTS)
    return counts


# Under pytest-xdist the tests run in worker processes: each sends its counts at its end, and
# the controller prints their sums.
_WORKER_COUNTS: list[dict[str, dict[str, int]]] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker
        workeroutput["backdrop_counts"] = _run_counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    counts = getattr(node, "workeroutput", {}).get("backdrop_counts")
    if counts:
        _WORKER_COUNTS.append(counts)


def _summed_counts() -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for counts in [_run_counts(), *_WORKER_COUNTS]:
        for name, values in counts.items():
            into = total.setdefault(name, {})
            for key, value in values.items():
                into[key] = into.get(key, 0) + value
    return total


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The IAM guard's counts; the fuzzer's and the robustness matrices' counts, when they ran;
    CPU time per test when asked ($BACKDROP_CPU_DURATIONS)."""
    _cpu_summary(terminalreporter)
    counts = _summed_counts()
    if "iam" in counts:  # iam.summary's wording, over every process's guard
        from types import SimpleNamespace

        from backend.local import iam

        i = counts["iam"]
        summed = SimpleNamespace(
            checked=i["checked"], denials=range(i["denied"]), missing_key_403s=i["missing_key_403s"]
        )
        terminalreporter.write_line(iam.summary(summed))  # type: ignore[arg-type]

    if "fuzz" in counts:
        f = counts["fuzz"]
        terminalreporter.write_line(
            f"fuzz: {f['requests']} requests from docs/openapi.json, {f['refused']} refused (4xx), "
            f"{f['server_errors']} answered 5xx, {f['shape_errors']} 4xx not in the error shape, "
            f"{f['writes']} refused requests that wrote"
        )

    if "robustness" not in counts:
        return
    c = counts["robustness"]
    terminalreporter.write_line(
        f"robustness: {c['inputs']} inputs tried, {c['faults']} faults injected, {c['leaks']} leaks "
        f"in {c['leak_checks']} cross-user probes, {c['lost']} lost, {c.get('hostile_requests', 0)} hostile "
        f"requests ({c.get('server_errors', 0)} answered 5xx), {c.get('refused', 0)} refused by the local stack "
        f"as AWS would, {c.get('outages', 0)} outages beyond every retry budget reconciled"
    )
