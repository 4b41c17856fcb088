"""doctor: every check's outcomes, with the deployer's view of the account stubbed (botocore Stubber)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
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
    expected = max_concurrency({"inpaint": 40, "remove-background": 60}, {"a": 6.0, "b": 6.0}, 3.0)
    assert expected == 13
    assert found.max_concurrency == expected
    assert "MaxConcurrency 13" in check(found, f"quota {STABILITY}").detail


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
        ("python3.11", date(2026, 11, 25), OK),
        ("python3.11", date(2027, 3, 1), WARN),
        ("python3.10", date(2026, 11, 25), FAIL),
        ("python3.9", date(2026, 11, 25), FAIL),
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


class FakeApi:
    """The deployed API as the smoke test's temporary user sees it."""

    def __init__(self, view: dict[str, Any]) -> None:
        self.view = view
        self.jobs: list[dict[str, Any]] = []

    def upload_bytes(self, items: list[tuple[str, bytes, str]]) -> list[dict[str, str]]:
        assert items[0][1].startswith(b"\x89PNG")
        return [{"imageRef": "a" * 32 + "/" + "b" * 32 + ".png", "name": items[0][0]}]

    def labels(self, refs: list[str]) -> dict[str, list[dict[str, Any]]]:
        return {refs[0]: [{"name": "Ball", "confidence": 97.0}]}

    def submit(self, job: dict[str, Any]) -> dict[str, Any]:
        self.jobs.append(job)
        return {"jobId": self.view["jobId"], "imageCount": 1}

    def wait(self, job_id: str, **kwargs: Any) -> dict[str, Any]:
        return {k: v for k, v in self.view.items() if k != "images"}  # the summary, as the API polls it

    def job(self, job_id: str, **page: Any) -> dict[str, Any]:
        return self.view


JOB_ID = "0" * 26
IMAGE_ID = "c" * 32


def _smoke(aws: Any, view: dict[str, Any], sfn: Stubs, responses: dict[str, bytes]) -> tuple[Findings, Any, Any]:
    from backend.smoke import WorkflowSmoke
    from chalicelib import contracts

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="backdrop-dev-bucket")
    for step, body in responses.items():
        s3.put_object(Bucket="backdrop-dev-bucket", Key=contracts.response_key(JOB_ID, IMAGE_ID, step), Body=body)
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    pool = cognito.create_user_pool(PoolName="backdrop-dev-users")["UserPool"]["Id"]
    api = FakeApi(view)
    smoke = WorkflowSmoke(
        boto3.Session(region_name="us-east-1"),
        "us-east-1",
        "dev",
        "https://api.example.com/api/",
        say=lambda _: None,
        sleep=lambda _: None,
        make_api=lambda url, token: api,
        sign_in=lambda client_id, user, password: "id-token",
        clients={"stepfunctions": sfn.clients["stepfunctions"]},
    )
    outputs = {
        "resources": {"BucketName": "backdrop-dev-bucket"},
        "auth": {"UserPoolId": pool, "UserPoolClientId": "client"},
        "workflow": {"WorkflowRoleArn": f"arn:aws:iam::{ACCOUNT}:role/workflow"},
    }
    smoke.outputs = outputs.__getitem__  # type: ignore[method-assign]
    found = Findings()
    smoke.run(found, yes=True)
    return found, api, (cognito, pool)


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


def _view(status: str, image_status: str, cause: str | None = None) -> dict[str, Any]:
    return {
        "jobId": JOB_ID,
        "status": status,
        "images": [{"imageId": IMAGE_ID, "status": image_status, "errorCode": "MODEL_ERROR", "cause": cause}],
    }


def test_smoke_workflow_reports_what_moto_could_not_confirm(aws_mock: None, stubs: Stubs) -> None:
    _probe(stubs, "Bedrock.ValidationException", "Malformed input request")
    good = json.dumps({"images": ["aGk="], "finish_reasons": [None], "seeds": [3]}).encode()
    found, api, (cognito, pool) = _smoke(
        aws_mock, _view("COMPLETED", "SUCCEEDED"), stubs, {"remove-background": good, "inpaint": good}
    )
    assert status_of(found, "smoke workflow") == OK
    assert status_of(found, "verified: profile id as ModelId") == OK
    assert status_of(found, "verified: Output.S3Uri inpaint") == OK
    assert "'Bedrock.ValidationException'" in check(found, "verified: error names").detail
    assert status_of(found, "verified: error names") == OK
    assert api.jobs[0]["images"][0]["labels"] == ["Ball"]
    assert cognito.list_users(UserPoolId=pool)["Users"] == []  # the temporary user is gone


def test_smoke_workflow_names_each_surprise(aws_mock: None, stubs: Stubs) -> None:
    _probe(stubs, "States.TaskFailed", "something else")
    cause = "Bedrock.ValidationException: The provided model identifier is invalid."
    found, _, (cognito, pool) = _smoke(
        aws_mock, _view("FAILED", "FAILED", cause), stubs, {"remove-background": b"\x89PNG raw bytes"}
    )
    assert status_of(found, "smoke workflow") == FAIL
    assert status_of(found, "verified: profile id as ModelId") == FAIL
    assert status_of(found, "verified: Output.S3Uri remove-background") == FAIL
    assert status_of(found, "verified: Output.S3Uri inpaint") == WARN  # never written
    names = check(found, "verified: error names")
    assert names.status == FAIL and "backdrop.asl.json" in names.fix
    assert cognito.list_users(UserPoolId=pool)["Users"] == []


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
    expected = max_concurrency({"a": 40, "b": 60}, {"a": 20.0, "b": 20.0}, 3.0)
    assert f"MaxConcurrency from your quotas: {expected}" in out and "measured" in out
