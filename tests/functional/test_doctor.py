"""doctor: every check's outcomes, with the deployer's view of the account stubbed (botocore Stubber)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from backend import doctor as doctor_module
from backend.doctor import FAIL, OK, WARN, Doctor, Findings, max_concurrency, pick_quota, smallest_calls
from chalicelib.models import registry

ACCOUNT = "123456789012"
STABILITY = "stability-inpaint"
BASES = ("stability.stable-image-inpaint-v1:0", "stability.stable-image-remove-background-v1:0")
PROFILES = ("us.stability.stable-image-inpaint-v1:0", "us.stability.stable-image-remove-background-v1:0")


class Stubs:
    """One stubbed client per service, created on demand, all checked for leftovers."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.clients: dict[str, Any] = {}
        self.stubbers: dict[str, Stubber] = {}

    def __getitem__(self, service: str) -> Stubber:
        if service not in self.stubbers:
            client = boto3.client(service, region_name=self.region)
            self.clients[service] = client
            self.stubbers[service] = Stubber(client)
            self.stubbers[service].activate()
        return self.stubbers[service]

    def verify(self) -> None:
        for stub in self.stubbers.values():
            stub.assert_no_pending_responses()


@pytest.fixture(autouse=True)
def _deploy_interpreter_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime the deploy would package for comes from the machine's deploy environment
    (backend/runtime.py); these tests are about the account, so it is a supported one unless a
    test says otherwise (test_lambda_runtime_support sets its own)."""
    monkeypatch.setattr(doctor_module, "runtime_for_this_interpreter", lambda: "python3.12")


@pytest.fixture
def stubs() -> Iterator[Stubs]:
    stubs = Stubs()
    yield stubs
    stubs.verify()


def make_doctor(stubs: Stubs, **kwargs: Any) -> Doctor:
    said: list[str] = []
    for service in ("sts", "bedrock", "service-quotas", "lambda", "cloudformation", "sns", "bedrock-runtime"):
        stubs[service]  # every client the doctor may use is a stub: nothing reaches AWS
    options: dict[str, Any] = {
        "session": boto3.Session(region_name=stubs.region),
        "region": stubs.region,
        "stage": "dev",
        "models": [registry.get_model(STABILITY)],
        "say": said.append,
        "confirm": lambda prompt: True,
        "today": lambda: date(2026, 11, 25),
        "clients": stubs.clients,
        **kwargs,
    }
    doctor = Doctor(**options)
    doctor.said = said  # type: ignore[attr-defined]
    return doctor


def found_with_identity() -> Findings:
    found = Findings()
    found.account, found.partition = ACCOUNT, "aws"
    return found


def status_of(found: Findings, name: str) -> str:
    return next(c.status for c in found.checks if c.name == name)


def check(found: Findings, name: str) -> Any:
    return next(c for c in found.checks if c.name == name)


# ------------------------------------------------------------------------ region and credentials


def test_region_without_bedrock_is_refused(stubs: Stubs) -> None:
    found = Findings()
    make_doctor(stubs, region="ap-nowhere-9").check_region(found)
    assert status_of(found, "region") == FAIL


def test_credentials_missing_stop_the_checks_with_the_fix(stubs: Stubs) -> None:
    stubs["sts"].add_client_error("get_caller_identity", "InvalidClientTokenId", "bad token", 403)
    found = make_doctor(stubs).run(deployed=False)
    assert [c.name for c in found.checks] == ["region", "credentials"]
    assert "aws configure" in check(found, "credentials").fix


def test_credentials_give_account_and_partition(stubs: Stubs) -> None:
    stubs["sts"].add_response(
        "get_caller_identity",
        {"Account": ACCOUNT, "Arn": f"arn:aws-us-gov:iam::{ACCOUNT}:user/deployer", "UserId": "AIDA"},
    )
    found = Findings()
    assert make_doctor(stubs).check_credentials(found)
    assert (found.account, found.partition) == (ACCOUNT, "aws-us-gov")


# ------------------------------------------------------------------------ models


def test_route_check_fails_outside_the_source_regions(stubs: Stubs) -> None:
    stubs["bedrock"].add_client_error("get_inference_profile", "ResourceNotFoundException", "no such profile", 404)
    found = found_with_identity()
    make_doctor(stubs).check_routes(found)
    failed = check(found, f"region-for {STABILITY}")
    assert failed.status == FAIL and "us-east-1, us-east-2, us-west-2" in failed.fix


def test_the_scene_model_outside_its_region_is_a_warning_and_the_lambdas_are_told(stubs: Stubs, tmp_path) -> None:
    """us-east-1 (docs/deploy.md's examples): the job's models route, the scene model cannot be
    called; the deploy hands that to the Lambdas, whose POST /jobs then refuses scenes by name."""
    from backend.deploy import Deployer

    scene = registry.get_model(registry.default_scene_model_key())
    for _ in PROFILES:  # the deployer may not ask: models.json's Regions route the job's model
        stubs["bedrock"].add_client_error("get_inference_profile", "AccessDeniedException", "no", 403)
    found = found_with_identity()
    make_doctor(stubs, models=[registry.get_model(STABILITY), scene]).check_routes(found)
    warned = check(found, f"region-for {scene.key}")
    assert warned.status == WARN and "us-west-2" in warned.detail and "refuse scene backgrounds" in warned.detail
    assert status_of(found, f"region-for {STABILITY}") == OK and found.unreachable == {scene.key}
    deployer = Deployer(stage="dev", region="us-east-1", session=boto3.Session(), project_dir=tmp_path)
    deployer.outputs.update(
        {
            "BucketName": "b",
            "TableName": "t",
            "StreamArn": "s",
            "UserPoolArn": "u",
            "TopicArn": "arn:aws:sns:us-east-1:1:t",
        }
    )
    env = deployer.stage_environment(ACCOUNT, "aws", {}, found.unreachable)
    assert env[registry.UNREACHABLE_MODELS_ENV] == scene.key


@pytest.mark.parametrize(
    ("lifecycle", "expected"),
    [({"status": "ACTIVE"}, OK), ({"status": "LEGACY", "endOfLifeTime": datetime(2027, 6, 30, tzinfo=UTC)}, WARN)],
)
def test_lifecycle_active_or_legacy(stubs: Stubs, lifecycle: dict[str, Any], expected: str) -> None:
    for base in BASES:
        stubs["bedrock"].add_response("get_foundation_model", _model_details(base, lifecycle))
    found = Findings()
    make_doctor(stubs).check_lifecycle(found, registry.get_model(STABILITY))
    assert status_of(found, f"lifecycle {STABILITY}") == expected


def test_lifecycle_end_of_life_fails_and_names_the_usable_models(stubs: Stubs) -> None:
    stubs["bedrock"].add_response(
        "get_foundation_model",
        _model_details(
            "amazon.nova-canvas-v1:0", {"status": "LEGACY", "endOfLifeTime": datetime(2026, 9, 30, tzinfo=UTC)}
        ),
    )
    found = Findings()
    make_doctor(stubs).check_lifecycle(found, registry.get_model("nova-canvas"))
    failed = check(found, "lifecycle nova-canvas")
    assert failed.status == FAIL and STABILITY in failed.fix


def _model_details(base: str, lifecycle: dict[str, Any]) -> dict[str, Any]:
    return {
        "modelDetails": {
            "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{base}",
            "modelId": base,
            "modelLifecycle": lifecycle,
        }
    }


def _availability(**overrides: Any) -> dict[str, Any]:
    answer = {
        "modelId": "m",
        "agreementAvailability": {"status": "AVAILABLE"},
        "authorizationStatus": "AUTHORIZED",
        "entitlementAvailability": "AVAILABLE",
        "regionAvailability": "AVAILABLE",
    }
    answer.update(overrides)
    return answer


@pytest.mark.parametrize(
    ("answer", "expected", "words"),
    [
        (_availability(), OK, "subscribed and authorized"),
        (_availability(entitlementAvailability="NOT_AVAILABLE"), FAIL, "not subscribed yet"),
        (_availability(agreementAvailability={"status": "NOT_AVAILABLE"}), FAIL, "not subscribed yet"),
        (_availability(agreementAvailability={"status": "PENDING"}), WARN, "subscription in progress"),
        (_availability(agreementAvailability={"status": "ERROR", "errorMessage": "card declined"}), FAIL, "card"),
        (_availability(authorizationStatus="NOT_AUTHORIZED"), FAIL, "IAM or an SCP"),
        (_availability(regionAvailability="NOT_AVAILABLE"), FAIL, "not offered in us-east-1"),
    ],
)
def test_access_outcomes(stubs: Stubs, answer: dict[str, Any], expected: str, words: str) -> None:
    for _ in BASES:
        stubs["bedrock"].add_response("get_foundation_model_availability", answer)
    found = Findings()
    make_doctor(stubs).check_access(found, registry.get_model(STABILITY))
    result = check(found, f"access {STABILITY}")
    assert result.status == expected and words in result.detail
    if expected == FAIL:
        assert "--smoke models" in result.fix


def test_access_that_cannot_be_asked_points_at_the_smoke_call(stubs: Stubs) -> None:
    for _ in BASES:
        stubs["bedrock"].add_client_error("get_foundation_model_availability", "AccessDeniedException", "no", 403)
    found = Findings()
    make_doctor(stubs).check_access(found, registry.get_model(STABILITY))
    assert status_of(found, f"access {STABILITY}") == WARN
    assert "--smoke models" in check(found, f"access {STABILITY}").fix


# ------------------------------------------------------------------------ quotas and concurrency


def _quota(name: str, value: float) -> dict[str, Any]:
    return {"ServiceCode": "bedrock", "QuotaName": name, "QuotaCode": "L-1", "Value": value}


QUOTAS = [
    _quota("On-demand InvokeModel requests per minute for Stability AI Stable Image Inpaint", 20),
    _quota("Cross-region InvokeModel requests per minute for Stability AI Stable Image Inpaint", 40),
    _quota("Cross-region InvokeModel requests per minute for Stability AI Stable Image Remove Background", 60),
    _quota("Cross-region InvokeModel requests per minute for Stability AI Stable Image Search and Replace", 999),
]


def test_pick_quota_prefers_cross_region_for_a_profile_and_matches_whole_names() -> None:
    assert pick_quota(QUOTAS, PROFILES[0])["Value"] == 40
    assert pick_quota(QUOTAS, BASES[0])["Value"] == 20
    assert pick_quota(QUOTAS, "us.stability.stable-image-erase-object-v1:0") is None


def test_quotas_imply_the_map_concurrency(stubs: Stubs) -> None:
    stubs["service-quotas"].add_response("list_service_quotas", {"Quotas": QUOTAS}, {"ServiceCode": "bedrock"})
    found = _routed()
    make_doctor(stubs).check_quotas(found)
    # 40 images/min at the tighter quota, 2 calls × 6 s + 3 s per image, 25% headroom
    expected = max_concurrency({PROFILES[0]: 40, PROFILES[1]: 60}, [(PROFILES[0], 6.0), (PROFILES[1], 6.0)], 3.0)
    assert expected == 13
    assert found.max_concurrency == expected
    assert "MaxConcurrency 13" in check(found, f"quota {STABILITY}").detail


def test_two_calls_of_one_model_share_its_quota(stubs: Stubs) -> None:
    """Bedrock's requests-per-minute quota is per model
    (docs/aws-notes.md#n112-one-quota-model-per-model-requests-per-minute): a model called twice
    per image spends two requests an image, so 40 a minute is 20 images a minute,
    20/60 × 15 s × 1.25 → 7 in flight (not 13)."""
    import dataclasses

    stubs["service-quotas"].add_response("list_service_quotas", {"Quotas": QUOTAS}, {"ServiceCode": "bedrock"})
    found = _routed()
    inpaint = next(r for r in found.routes if r.model_id == PROFILES[0])
    found.routes = [r if r is inpaint else dataclasses.replace(r, model_id=PROFILES[0]) for r in found.routes]
    make_doctor(stubs).check_quotas(found)
    assert found.max_concurrency == 7


def test_the_scene_models_quota_does_not_cap_the_map_concurrency(stubs: Stubs) -> None:
    """Stable Image Core is called once per batch, before the Map: a tight quota on it (here 1 a
    minute, which as a per-image model would mean MaxConcurrency 1) must not slow the images."""
    from backend.regions import ModelRoutes

    scene = registry.get_model(registry.default_scene_model_key())
    quotas = [*QUOTAS, _quota("On-demand InvokeModel requests per minute for Stability AI Stable Image Core", 1)]
    stubs["service-quotas"].add_response("list_service_quotas", {"Quotas": quotas}, {"ServiceCode": "bedrock"})
    found = found_with_identity()
    models = [registry.get_model(STABILITY), scene]
    found.routes = ModelRoutes(None, "us-west-2", ACCOUNT, "aws").for_models(models)
    make_doctor(stubs, region="us-west-2", models=models).check_quotas(found)
    per_image = max_concurrency({PROFILES[0]: 40, PROFILES[1]: 60}, [(PROFILES[0], 6.0), (PROFILES[1], 6.0)], 3.0)
    assert found.max_concurrency == per_image == 13
    scene_check = check(found, f"quota {scene.key}")
    assert scene_check.status == OK and "one call per batch" in scene_check.detail
    assert "MaxConcurrency" not in scene_check.detail


def test_quotas_not_found_keep_the_default_and_say_so(stubs: Stubs) -> None:
    stubs["service-quotas"].add_response("list_service_quotas", {"Quotas": QUOTAS[3:]})
    found = _routed()
    make_doctor(stubs).check_quotas(found)
    assert status_of(found, f"quota {STABILITY}") == WARN and found.max_concurrency is None


def test_quotas_unreadable_is_a_warning(stubs: Stubs) -> None:
    stubs["service-quotas"].add_client_error("list_service_quotas", "AccessDeniedException", "no", 403)
    found = _routed()
    make_doctor(stubs).check_quotas(found)
    assert status_of(found, "quotas") == WARN


def _routed() -> Findings:
    from backend.regions import ModelRoutes

    found = found_with_identity()
    found.routes = ModelRoutes(None, "us-east-1", ACCOUNT, "aws").for_models([registry.get_model(STABILITY)])
    return found


@pytest.mark.parametrize(
    ("runtime", "today", "expected"),
    [
        ("python3.12", date(2026, 11, 25), OK),
        ("python3.13", date(2026, 11, 25), OK),
        ("python3.12", date(2028, 6, 1), WARN),
        # python3.11 is still a Lambda runtime, but on Amazon Linux 2, past its end of life
        ("python3.11", date(2026, 11, 25), FAIL),
        ("python3.10", date(2026, 11, 25), FAIL),
        ("python3.9", date(2026, 11, 25), FAIL),
        ("", date(2026, 11, 25), FAIL),  # the chosen Python cannot run chalice
    ],
)
def test_lambda_runtime_support(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch, runtime: str, today: date, expected: str
) -> None:
    monkeypatch.setattr(doctor_module, "runtime_for_this_interpreter", lambda: runtime)
    stubs["lambda"].add_response("get_account_settings", {"AccountLimit": {"ConcurrentExecutions": 1000}})
    found = Findings()
    make_doctor(stubs, today=lambda: today).check_lambda(found)
    assert status_of(found, "lambda runtime") == expected
    assert status_of(found, "lambda concurrency") == OK


@pytest.mark.parametrize(("limit", "expected", "capped"), [(10, FAIL, None), (50, WARN, 40)])
def test_lambda_account_concurrency(stubs: Stubs, limit: int, expected: str, capped: int | None) -> None:
    stubs["lambda"].add_response("get_account_settings", {"AccountLimit": {"ConcurrentExecutions": limit}})
    found = Findings()
    found.max_concurrency = 100 if capped else None
    make_doctor(stubs).check_lambda(found)
    assert status_of(found, "lambda concurrency") == expected
    assert found.max_concurrency == capped


# ------------------------------------------------------------------------ email subscriptions


def _stack_outputs(stubs: Stubs, *, legacy: bool = False) -> None:
    outputs = [{"OutputKey": "AlarmTopicArn", "OutputValue": f"arn:aws:sns:us-east-1:{ACCOUNT}:alarms"}]
    if legacy:  # a stage deployed with one shared job topic
        outputs.append({"OutputKey": "TopicArn", "OutputValue": f"arn:aws:sns:us-east-1:{ACCOUNT}:jobs"})
    stubs["cloudformation"].add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "backdrop-dev-resources",
                    "CreationTime": "2026-11-25T00:00:00Z",
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": outputs,
                }
            ]
        },
    )


def _subscription(arn: str, topic: str, endpoint: str = "ops@example.com") -> dict[str, Any]:
    return {
        "SubscriptionArn": arn,
        "Owner": ACCOUNT,
        "Protocol": "email",
        "Endpoint": endpoint,
        "TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:{topic}",
    }


def _user(n: int, confirmed: bool) -> dict[str, Any]:
    topic = f"backdrop-dev_user-sub-{n}"
    arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:{topic}:{n}" if confirmed else "PendingConfirmation"
    return _subscription(arn, topic, f"user{n}@example.com")


def test_users_job_emails_are_counted_and_pending_ones_named(stubs: Stubs) -> None:
    _stack_outputs(stubs)
    users = [_user(n, confirmed=n % 3 != 0) for n in range(1, 301)]  # 100 pending of 300
    others = [_subscription(f"arn:aws:sns:us-east-1:{ACCOUNT}:backdrop-prod_user-x:1", "backdrop-prod_user-x")]
    stubs["sns"].add_response("list_subscriptions", {"Subscriptions": users[:150] + others, "NextToken": "2"})
    stubs["sns"].add_response("list_subscriptions", {"Subscriptions": users[150:]}, {"NextToken": "2"})
    stubs["sns"].add_response(
        "list_subscriptions_by_topic",
        {"Subscriptions": [_subscription(f"arn:aws:sns:us-east-1:{ACCOUNT}:alarms:1", "alarms")]},
    )
    found = Findings()
    make_doctor(stubs).check_subscriptions(found)
    emails = check(found, "users' job emails")
    # another stage's user topics are not this stage's users
    assert emails.status == WARN and "300 user(s) with their own topic, 200 confirmed" in emails.detail
    assert "100,000 topics per account" in emails.detail
    assert (
        emails.detail.count("@example.com") == 5
        and "user102@example.com" in emails.detail
        and "and 95 more" in emails.detail
    )
    assert "subscribe-user" in emails.fix
    assert status_of(found, "email alarms") == OK


def test_a_pending_alarm_subscription_fails_and_a_stage_with_the_shared_topic_is_told_to_redeploy(stubs: Stubs) -> None:
    _stack_outputs(stubs, legacy=True)
    stubs["sns"].add_response("list_subscriptions", {"Subscriptions": [_user(1, confirmed=True)]})
    stubs["sns"].add_response(
        "list_subscriptions_by_topic", {"Subscriptions": [_subscription("PendingConfirmation", "alarms")]}
    )
    found = Findings()
    make_doctor(stubs).check_subscriptions(found)
    alarms = check(found, "email alarms")
    assert alarms.status == FAIL and "drops every email" in alarms.detail
    legacy = [c for c in found.checks if c.name == "users' job emails"]
    assert legacy[0].status == WARN and "200 users" in legacy[0].detail and "re-run deploy" in legacy[0].fix
    assert legacy[1].status == OK


def test_subscriptions_before_the_first_deploy_are_a_note(stubs: Stubs) -> None:
    stubs["cloudformation"].add_client_error("describe_stacks", "ValidationError", "Stack does not exist", 400)
    found = Findings()
    make_doctor(stubs).check_subscriptions(found)
    assert status_of(found, "email") == WARN


# ------------------------------------------------------------------------ --smoke models


def test_smoke_bodies_are_the_adapters_smallest_valid_requests() -> None:
    calls = smallest_calls(registry.get_model(STABILITY))
    assert [(c, m) for c, m, _ in calls] == [("remove-background", PROFILES[1]), ("inpaint", PROFILES[0])]
    inpaint = calls[1][2]
    assert inpaint["prompt"] and inpaint["mask"] and inpaint["image"]


def _invoke_answer() -> dict[str, Any]:
    raw = json.dumps({"images": ["aGk="], "seeds": [1], "finish_reasons": [None]}).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


def test_smoke_models_prints_the_price_first_and_measures_each_call(stubs: Stubs) -> None:
    ticks = iter([0.0, 4.0, 10.0, 15.0])
    doctor = make_doctor(stubs, clock=lambda: next(ticks))
    asked: list[str] = []

    def confirm(prompt: str) -> bool:
        asked.append(prompt)
        assert any("$0.08" in line for line in doctor.said)  # type: ignore[attr-defined]
        return True

    doctor.confirm = confirm
    for profile in (PROFILES[1], PROFILES[0]):
        stubs["bedrock-runtime"].add_response(
            "invoke_model", _invoke_answer(), {**_invoke_params(), "modelId": profile}
        )
    found = found_with_identity()
    doctor.smoke_models(found, yes=False)
    assert asked and status_of(found, f"smoke {STABILITY} inpaint") == OK
    assert found.call_seconds == {PROFILES[1]: 4.0, PROFILES[0]: 5.0}


def _invoke_params() -> dict[str, Any]:
    return {"body": ANY, "contentType": "application/json", "accept": "application/json"}


def test_smoke_models_access_denied_names_the_marketplace_rights(stubs: Stubs) -> None:
    for _ in range(2):
        stubs["bedrock-runtime"].add_client_error(
            "invoke_model", "AccessDeniedException", "You don't have access to the model", 403
        )
    found = found_with_identity()
    make_doctor(stubs).smoke_models(found, yes=True)
    failed = check(found, f"smoke {STABILITY} remove-background")
    assert failed.status == FAIL and "aws-marketplace:Subscribe" in failed.fix


def test_smoke_models_declined_makes_no_call(stubs: Stubs) -> None:
    found = found_with_identity()
    make_doctor(stubs, confirm=lambda prompt: False).smoke_models(found, yes=False)
    assert status_of(found, "smoke models") == WARN  # and no invoke_model was stubbed: none was made


# ------------------------------------------------------------------------ the command


def test_doctor_command_exits_non_zero_on_any_failure(stubs: Stubs, capsys: pytest.CaptureFixture[str]) -> None:
    from backend.deploy import Deployer, run_doctor

    stubs["sts"].add_client_error("get_caller_identity", "ExpiredToken", "expired", 403)
    deployer = Deployer(stage="dev", region="us-east-1", session=boto3.Session(region_name="us-east-1"))
    deployer.client_overrides = stubs.clients
    args = argparse.Namespace(model=STABILITY, skip_checks="", smoke=None, yes=True, stage="dev", region="us-east-1")
    assert run_doctor(deployer, args) == 1
    out = capsys.readouterr().out
    assert "✗ credentials" in out and "1 check(s) failed" in out


def test_skip_checks_turns_an_accepted_failure_into_a_warning(stubs: Stubs) -> None:
    for _ in BASES:
        stubs["bedrock"].add_response(
            "get_foundation_model_availability", _availability(entitlementAvailability="NOT_AVAILABLE")
        )
    doctor = make_doctor(stubs, skip=frozenset({"access"}))
    found = Findings()
    doctor.check_access(found, registry.get_model(STABILITY))
    assert doctor._skipped(found).failed == []


# ------------------------------------------------------------------------ --smoke workflow
# Fast, with fakes: the deployed API as the smoke's temporary user sees it (FakeApi), moto for
# Cognito and S3, a Stubber for the probe state machine. tests/e2e/test_smoke_workflow.py runs
# the same smoke against the local stack.

BUCKET = "backdrop-dev-bucket"


class FakeApi:
    """Every job ends as `outcome(body)` says: (job status, image status, error code, cause);
    by default as a working deployment ends it (`as_deployed`), with one output of the job's
    background kind for an image that SUCCEEDED."""

    def __init__(self, outcome: Any = None, *, review_waits: bool = True) -> None:
        self.outcome = outcome or self.as_deployed
        self.review_waits = review_waits
        self.bodies: dict[str, dict[str, Any]] = {}
        self.approved: list[str] = []
        self.deleted: list[str] = []

    @staticmethod
    def as_deployed(body: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
        if body["images"][0]["name"].endswith("not-an-image.png"):
            return "FAILED", "FAILED", "IMAGE_INVALID", "the file is not a PNG, JPEG or WEBP image"
        return "COMPLETED", "SUCCEEDED", None, None

    def upload_bytes(self, items: list[tuple[str, bytes, str]]) -> Any:
        assert items[0][1].startswith(b"\x89PNG") and not items[2][1].startswith(b"\x89PNG")
        uploaded = [{"imageRef": f"{n:032x}/{n + 100:032x}.png", "name": name} for n, (name, _, _) in enumerate(items)]
        return SimpleNamespace(uploaded=uploaded, rejected=[])

    def label_results(self, refs: list[str]) -> dict[str, Any]:
        return {
            "labels": {refs[0]: [{"name": "Ball", "confidence": 97.0}], refs[1]: []},
            "unavailable": {refs[1]: {"code": "LABELS_UNAVAILABLE", "message": "not an image"}},
        }

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = f"20261207T120000Z-{len(self.bodies):012x}"
        self.bodies[job_id] = body
        return {"jobId": job_id, "imageCount": 1}

    def job(self, job_id: str, **page: Any) -> dict[str, Any]:
        body = self.bodies[job_id]
        status, image_status, code, cause = self.outcome(body)
        kind = (body.get("background") or {}).get("source", "prompt")
        reviewed = "reviewHours" in body
        if reviewed and job_id not in self.approved:
            status = "RUNNING"
        outputs = [{"key": f"results/o/{job_id}/x.1.png", "background": kind}] if image_status == "SUCCEEDED" else []
        view: dict[str, Any] = {
            "jobId": job_id,
            "status": status,
            "cost": {"actualUsd": 0.04, "estimateUsd": 0.043},
            "notification": {"status": "SENT", "by": "workflow"},
            "images": [
                {"imageId": IMAGE_ID, "status": image_status, "errorCode": code, "cause": cause, "outputs": outputs}
            ],
            "reports": {"json": f"https://bucket/reports/{job_id}/report.json"},
        }
        if reviewed:
            waiting = "WAITING" if self.review_waits else "PENDING"
            view["review"] = {"status": "APPROVED" if job_id in self.approved else waiting}
            if not self.review_waits:  # a job whose review never begins ends without it
                view["status"] = status = "COMPLETED"
        return view

    def job_summary(self, job_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.job(job_id).items() if k != "images"}

    def approve(self, job_id: str) -> dict[str, Any]:
        self.approved.append(job_id)
        return {"status": "APPROVED"}

    def download(self, url: str) -> bytes:
        job_id = url.split("/")[-2]
        return json.dumps({"jobId": job_id, "images": self.job(job_id)["images"]}).encode()

    def delete(self, job_id: str, originals: bool = False) -> dict[str, Any]:
        assert originals
        self.deleted.append(job_id)
        return {"jobId": job_id, "deleted": True}


IMAGE_ID = "c" * 32


def _smoke(
    api: FakeApi,
    *,
    sfn: Stubs | None = None,
    objects: dict[str, bytes] | None = None,
    extra_clients: dict[str, Any] | None = None,
    region: str = "us-east-1",
    **options: Any,
) -> tuple[Findings, Any, Any, list[str]]:
    from backend.smoke import Deployment, WorkflowSmoke

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for key, body in (objects or {}).items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    cognito = boto3.client("cognito-idp", region_name=region)
    pool = cognito.create_user_pool(PoolName="backdrop-dev-users")["UserPool"]["Id"]
    said: list[str] = []
    clients = {"stepfunctions": sfn.clients["stepfunctions"]} if sfn else {}
    clients.update(extra_clients or {})
    smoke = WorkflowSmoke(
        boto3.Session(region_name=region),
        region,
        "dev",
        "https://api.example.com/api/",
        say=said.append,
        sleep=lambda _: None,
        poll_s=0,
        deployment=Deployment(BUCKET, pool, "client", f"arn:aws:iam::{ACCOUNT}:role/workflow"),
        make_api=lambda url, token: api,
        sign_in=lambda client_id, user, password: lambda: "id-token",
        clients=clients,
        **options,
    )
    found = Findings()
    smoke.run(found, yes=options.get("confirm") is None)
    return found, smoke, (cognito, pool), said


def _probe(sfn: Stubs, error: str, cause: str) -> None:
    machine = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:backdrop-dev-doctor-probe"
    stub = sfn["stepfunctions"]
    stub.add_response(
        "create_state_machine", {"stateMachineArn": machine, "creationDate": datetime(2026, 11, 25, tzinfo=UTC)}
    )
    stub.add_response(
        "start_execution",
        {"executionArn": f"{machine}:probe", "startDate": datetime(2026, 11, 25, tzinfo=UTC)},
        {"stateMachineArn": machine},
    )
    stub.add_response(
        "describe_execution",
        {
            "executionArn": f"{machine}:probe",
            "stateMachineArn": machine,
            "status": "FAILED",
            "startDate": datetime(2026, 11, 25, tzinfo=UTC),
            "error": error,
            "cause": cause,
        },
    )
    stub.add_response("delete_state_machine", {}, {"stateMachineArn": machine})


def test_smoke_workflow_says_each_cases_estimate_and_spends_nothing_when_declined(aws_mock: None) -> None:
    api = FakeApi()
    asked: list[str] = []
    found, _, (cognito, pool), said = _smoke(api, confirm=lambda prompt: asked.append(prompt) or False)
    assert asked and status_of(found, "smoke workflow") == WARN
    assert api.bodies == {} and cognito.list_users(UserPoolId=pool)["Users"] == []  # no user, no job
    plan = said[0]
    assert "prompt background: remove-background + inpaint" in plan and "about $0.083" in plan
    assert "skipped: not offered in us-east-1: stability-image-core is called from us-west-2 only" in plan
    assert "In all about $0.26" in plan


def test_smoke_workflow_on_a_stage_not_deployed_fails_without_asking(aws_mock: None) -> None:
    from backend.smoke import WorkflowSmoke

    smoke = WorkflowSmoke(boto3.Session(region_name="us-east-1"), "us-east-1", "dev", "https://x/", confirm=None)  # type: ignore[arg-type]
    found = Findings()
    smoke.run(found, yes=False)  # moto has no stack: describe_stacks answers ValidationError
    assert check(found, "smoke workflow").status == FAIL and "not deployed" in check(found, "smoke workflow").detail


class NoListBucket:
    """S3 as a deployer without s3:ListBucket sees it: a missing key answers 403, not 404."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def get_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return self.s3.get_object(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchKey":
                raise
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject") from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


def test_smoke_workflow_every_line_ok_and_no_warning_for_objects_finalize_removed(aws_mock: None, stubs: Stubs) -> None:
    _probe(stubs, "Bedrock.ValidationException", "Malformed input request")
    api = FakeApi()
    s3 = NoListBucket(boto3.client("s3", region_name="us-east-1"))
    found, _, (cognito, pool), _ = _smoke(api, sfn=stubs, extra_clients={"s3": s3})
    for name in ("labels", "prompt", "color", "image", "transparent", "review", "failure path"):
        assert status_of(found, f"workflow {name}") == OK, check(found, f"workflow {name}")
    assert "not offered in us-east-1" in check(found, "workflow scene").detail
    # the response objects are gone (403 without ListBucket): the images that SUCCEEDED parsed them
    for step in ("remove-background", "inpaint"):
        assert status_of(found, f"verified: Output.S3Uri {step}") == OK, check(found, f"verified: Output.S3Uri {step}")
    assert status_of(found, "verified: error names") == OK
    assert api.approved == [j for j, body in api.bodies.items() if "reviewHours" in body]
    review = next(b for b in api.bodies.values() if "reviewHours" in b)
    assert review["reviewHours"] == 1 and review["images"][0]["labels"] == []
    image = next(b for b in api.bodies.values() if (b.get("background") or {}).get("source") == "image")
    assert image["background"]["imageRef"] != image["images"][0]["imageRef"]  # the background photo's own upload
    assert sorted(api.deleted) == sorted(api.bodies) and status_of(found, "workflow cleanup") == OK
    assert cognito.list_users(UserPoolId=pool)["Users"] == []


def test_smoke_workflow_names_each_surprise(aws_mock: None, stubs: Stubs) -> None:
    from chalicelib.core import contracts

    _probe(stubs, "States.TaskFailed", "something else")
    cause = "Bedrock.ValidationException: The provided model identifier is invalid."

    def outcome(body: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
        if body["images"][0]["name"].endswith("not-an-image.png"):
            return "COMPLETED", "SUCCEEDED", None, None  # the failure path did not fail
        if "prompt" in body and "background" not in body:
            return "FAILED", "FAILED", "MODEL_REJECTED_REQUEST", cause
        return "COMPLETED", "SUCCEEDED", None, None

    api = FakeApi(outcome, review_waits=False)
    # the prompt job's first call wrote raw PNG bytes, not the model's JSON body: kept, as it failed
    key = contracts.response_key("20261207T120000Z-000000000000", IMAGE_ID, "remove-background")
    found, _, (cognito, pool), _ = _smoke(api, sfn=stubs, objects={key: b"\x89PNG raw bytes"})
    assert (
        status_of(found, "workflow prompt") == FAIL
        and "MODEL_REJECTED_REQUEST" in check(found, "workflow prompt").detail
    )
    assert status_of(found, "verified: profile id as ModelId") == FAIL
    failure = check(found, "verified: Output.S3Uri remove-background")
    assert failure.status == FAIL and failure.detail.startswith("not JSON") and "the prompt job's" in failure.detail
    inpaint = check(found, "verified: Output.S3Uri inpaint")
    assert inpaint.status == WARN and "no inpaint call answered (prompt: MODEL_REJECTED_REQUEST)" in inpaint.detail
    assert status_of(found, "workflow failure path") == FAIL  # it should have failed, and did not
    assert "never waited for review" in check(found, "workflow review").detail
    names = check(found, "verified: error names")
    assert names.status == FAIL and "backdrop.asl.json" in names.fix
    assert "failed: prompt, review, failure path" in check(found, "smoke workflow").detail
    assert sorted(api.deleted) == sorted(api.bodies)  # every job deleted, failed or not
    assert cognito.list_users(UserPoolId=pool)["Users"] == []


def test_the_scene_runs_where_doctor_found_its_model_callable_and_not_where_it_did_not(aws_mock: None) -> None:
    from backend.regions import CallRoute
    from backend.smoke import WorkflowSmoke

    smoke = WorkflowSmoke(boto3.Session(region_name="us-east-1"), "us-east-1", "dev", "https://x/")
    reachable = Findings()
    reachable.routes.append(
        CallRoute(
            "stability-image-core", "text-to-image", "us.stability.stable-image-core-v1:1", (), ("us-east-1",), ""
        )
    )
    assert smoke.scene_refusal(reachable) == ""  # e.g. BACKDROP_MODEL_IDS names a profile callable here
    unreachable = Findings()
    unreachable.unreachable.add("stability-image-core")
    assert smoke.scene_refusal(unreachable).startswith(
        "not offered in us-east-1: stability-image-core cannot be called"
    )
    west = WorkflowSmoke(boto3.Session(region_name="us-west-2"), "us-west-2", "dev", "https://x/")
    assert west.scene_refusal(Findings()) == ""  # models.json: called from us-west-2


def test_a_scene_the_deployment_refuses_at_submit_is_not_offered_not_failed(aws_mock: None) -> None:
    from frontend.api_client import ApiError

    class RefusesScenes(FakeApi):
        def submit(self, body: dict[str, Any]) -> dict[str, Any]:
            if (body.get("background") or {}).get("source") == "scene":
                raise ApiError(400, "VALIDATION_FAILED", "scene backgrounds cannot be generated from this Region")
            return super().submit(body)

    api = RefusesScenes()
    found, _, _, said = _smoke(api, region="us-west-2")
    assert "scene: stability-image-core once + remove-background" in said[0]  # planned: us-west-2 has it
    scene = check(found, "workflow scene")
    assert scene.status == WARN and scene.detail.startswith("not offered in us-west-2: scene backgrounds cannot")
    assert all((b.get("background") or {}).get("source") != "scene" for b in api.bodies.values())
    assert status_of(found, "smoke workflow") == OK, found.table()


def test_a_model_without_remove_background_offers_the_prompt_kind_only() -> None:
    from backend.smoke import plan_cases

    titan = next(m for m in registry.all_models() if m.family.value == "outpainting")
    cases = {c.name: c for c in plan_cases(titan, "")}
    assert not cases["prompt"].skip and cases["prompt"].estimate_usd > 0
    for kind in ("color", "image", "transparent", "scene"):
        assert cases[kind].skip.startswith(f"not offered with {titan.key}"), kind
    assert cases["review"].job.get("prompt") and not cases["failure path"].skip


def test_smoke_models_recomputes_the_concurrency_from_measured_call_times(
    stubs: Stubs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.deploy import Deployer, run_doctor

    ticks = iter([0.0, 20.0, 20.0, 40.0])  # each call takes 20 s instead of the assumed 6 s
    identity = {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/d", "UserId": "A"}
    stubs["sts"].add_response("get_caller_identity", identity)
    for _ in PROFILES:
        stubs["bedrock"].add_client_error("get_inference_profile", "AccessDeniedException", "no", 403)
    for base in BASES:
        stubs["bedrock"].add_response("get_foundation_model", _model_details(base, {"status": "ACTIVE"}))
    for _ in BASES:
        stubs["bedrock"].add_response("get_foundation_model_availability", _availability())
    for _ in range(2):
        stubs["service-quotas"].add_response("list_service_quotas", {"Quotas": QUOTAS})
        stubs["lambda"].add_response("get_account_settings", {"AccountLimit": {"ConcurrentExecutions": 1000}})
    stubs["cloudformation"].add_client_error("describe_stacks", "ValidationError", "does not exist", 400)
    for _ in PROFILES:
        stubs["bedrock-runtime"].add_response("invoke_model", _invoke_answer())
    deployer = Deployer(stage="dev", region="us-east-1", session=boto3.Session(region_name="us-east-1"))
    deployer.client_overrides = stubs.clients
    make = deployer.doctor

    def timed_doctor(*a: Any, **k: Any) -> Doctor:
        doctor = make(*a, **k)
        doctor.clock = lambda: next(ticks)
        return doctor

    monkeypatch.setattr(deployer, "doctor", timed_doctor)
    args = argparse.Namespace(
        model=STABILITY, skip_checks="", smoke="models", yes=True, stage="dev", region="us-east-1"
    )
    assert run_doctor(deployer, args) == 0
    out = capsys.readouterr().out
    assert out.count(f"quota {STABILITY}") == 1
    expected = max_concurrency({"a": 40, "b": 60}, [("a", 20.0), ("b", 20.0)], 3.0)
    assert f"MaxConcurrency from your quotas: {expected}" in out and "measured" in out


def test_doctor_passes_keep_to_the_workflow_smoke(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend import deploy, smoke

    made: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(kwargs)

        def run(self, found: Findings, *, yes: bool) -> None:
            made[-1]["yes"] = yes

    class Quiet:
        def run(self, deployed: bool = True) -> Findings:
            return Findings()

    monkeypatch.setattr(smoke, "WorkflowSmoke", Recorder)
    monkeypatch.setattr(deploy.Deployer, "doctor", lambda self, model, skip: Quiet())
    monkeypatch.setattr(deploy.Deployer, "api_url", lambda self: "https://api.example.com/api/")
    monkeypatch.setattr(deploy.deployment_settings, "effective", lambda *args: {})
    assert deploy.main(["doctor", "--smoke", "workflow", "--keep", "--yes", "--stage", "dev"]) == 0
    assert deploy.main(["doctor", "--smoke", "workflow", "--stage", "dev"]) == 0
    assert made == [{"keep": True, "yes": True}, {"keep": False, "yes": False}]
