"""The IAM guard on moto: denied calls answer as AWS answers, attribution reaches every handler and
thread pool, and the findings of issue #24 stay fixed (backend/local/iam.py)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from builders import BUCKET, STATE_MACHINE

from backend.local import iam
from chalicelib.core import contracts
from chalicelib.store.jobs import NewImage

MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:backdrop-test"


def _guard() -> iam.Guard:
    guard = iam.installed()
    assert guard is not None, "tests/conftest.py installs the guard for the whole run"
    return guard


@pytest.mark.iam_denial_expected
def test_a_denied_call_raises_what_aws_answers_and_is_recorded(resources) -> None:
    guard, before = _guard(), len(_guard().denials)
    s3, table = boto3.client("s3"), boto3.resource("dynamodb").Table(resources["table"])
    with iam.running_as("record_failure"):
        with pytest.raises(ClientError) as s3_denied:
            s3.put_object(Bucket=BUCKET, Key=f"{contracts.RESULTS_PREFIX}x", Body=b"x")
        with pytest.raises(ClientError) as table_denied:
            table.delete_item(Key={"pk": "x", "sk": "y"})
    assert s3_denied.value.response["Error"]["Code"] == "AccessDenied"
    assert s3_denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "s3:PutObject" in s3_denied.value.response["Error"]["Message"]
    assert table_denied.value.response["Error"]["Code"] == "AccessDeniedException"
    denied = guard.denials[before:]
    assert [(d.principal, d.action) for d in denied] == [
        ("record_failure", "s3:PutObject"),
        ("record_failure", "dynamodb:DeleteItem"),
    ]
    # nothing was written: the call was refused before it was made
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=contracts.RESULTS_PREFIX)


@pytest.mark.iam_denial_expected
def test_an_operation_nobody_mapped_fails_the_call_and_is_recorded(resources) -> None:
    guard = _guard()
    before = len(guard.unmapped)
    with iam.running_as("report"), pytest.raises(iam.UnmappedOperation, match="s3.GetBucketPolicy"):
        boto3.client("s3").get_bucket_policy(Bucket=BUCKET)
    assert guard.unmapped[before:] == ["report: s3.GetBucketPolicy"]


def test_calls_without_a_principal_are_not_checked(resources) -> None:
    guard = _guard()
    checked = guard.checked
    boto3.client("s3").put_object(Bucket=BUCKET, Key="anywhere/x", Body=b"x")  # test setup, a user's upload
    assert guard.checked == checked


def test_a_missing_key_is_403_without_list_bucket_and_404_with_it(resources) -> None:
    s3, noted = boto3.client("s3"), _guard().missing_key_403s
    key = f"{contracts.SCRATCH_PREFIX}job/missing.json"
    with iam.running_as("prepare"), pytest.raises(ClientError) as head:  # may read scratch, may not list
        s3.head_object(Bucket=BUCKET, Key=key)
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with iam.running_as("prepare"), pytest.raises(ClientError) as get:
        s3.get_object(Bucket=BUCKET, Key=key)
    assert get.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as unchecked:  # no principal: moto's own answer
        s3.get_object(Bucket=BUCKET, Key=key)
    assert unchecked.value.response["Error"]["Code"] == "NoSuchKey"
    assert _guard().missing_key_403s == noted + 2
    # a function whose role may list the whole bucket would get the 404: none of Backdrop's may
    policies = _guard().policies()
    assert not any(_guard().has_list_bucket(name, BUCKET) for name in policies)


@pytest.mark.iam_denial_expected
def test_presigned_urls_and_posts_are_checked_when_signed(resources) -> None:
    s3 = boto3.client("s3")
    with iam.running_as("api_handler"):
        s3.generate_presigned_post(BUCKET, contracts.upload_key("o", "a/b.png"))  # its own write prefix
        s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"{contracts.RESULTS_PREFIX}x"})
        with pytest.raises(ClientError):
            s3.generate_presigned_post(BUCKET, "elsewhere/x")  # no Backdrop prefix: nobody may write it
        with pytest.raises(ClientError):
            s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": f"{contracts.SCRATCH_PREFIX}x"})
    assert [d.resource.rsplit(":", 1)[-1] for d in _guard().denials[-2:]] == [
        f"{BUCKET}/elsewhere/x",
        f"{BUCKET}/{contracts.SCRATCH_PREFIX}x",
    ]


def test_thread_pools_inside_a_handler_keep_its_principal() -> None:
    def seen() -> str | None:
        return iam.current_principal()

    with iam.running_as("report"), ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: seen(), range(4))) == ["report"] * 4
    assert iam.current_principal() is None


def test_every_handler_app_registers_runs_as_its_function(monkeypatch) -> None:
    import app as backdrop_app
    from chalicelib.core.functions import FUNCTIONS

    registered = {name for name in backdrop_app.app.handler_map if name in {f.name for f in FUNCTIONS}}
    assert registered == {f.name for f in FUNCTIONS} - {"api_handler"}
    for name in registered:
        wrapped = backdrop_app.app.handler_map[name]
        assert isinstance(wrapped, iam.RunsAs) and wrapped.runs_as == name
        assert getattr(backdrop_app, name) is wrapped  # the module attribute the local stack calls
    seen: list[str | None] = []
    monkeypatch.setattr(backdrop_app, "_steps", lambda: seen.append(iam.current_principal()) or _NoSteps())
    backdrop_app.prepare({"jobId": "x"}, None)
    assert seen == ["prepare"]


class _NoSteps:
    def prepare(self, event: dict[str, Any]) -> dict[str, Any]:
        return {}


def test_routes_run_as_the_api_handler(resources, token_for, monkeypatch) -> None:
    from chalice.test import Client

    import app as backdrop_app

    seen: list[str | None] = []
    monkeypatch.setattr(backdrop_app, "_owner", lambda: seen.append(iam.current_principal()) or "o")
    with Client(backdrop_app.app, stage_name="dev") as client:
        client.http.get("/jobs", headers={"Authorization": token_for("o")})
    assert seen == ["api_handler"]


# ---------------------------------------------------------------------------- the findings


def test_a_job_cancelled_while_starting_is_stopped_by_the_starters_own_role(store) -> None:
    """start_workflow's role lacked GetItem (every start reads the job) and StopExecution (a
    cancel that lands while it starts): on AWS no job started. Run as the function, the guard
    fails this test on that declaration."""
    from chalicelib.workflow.starter import WorkflowStarter

    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "Work", "States": {"Work": {"Type": "Wait", "Seconds": 600, "End": True}}}
    sfn.create_state_machine(
        name=STATE_MACHINE, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )
    job_id = contracts.new_job_id()
    store.put_job(
        job_id=job_id,
        owner="owner-1",
        model="stability-inpaint",
        settings={"prompt": "x"},
        images=[NewImage(image_id=contracts.new_opaque_id(), image_ref="r", key="uploads/owner-1/x.png", name="x.png")],
    )
    inserted = store.get_job(job_id)

    class CancelledWhileStarting:
        def start_execution(self, **kwargs: Any) -> Any:
            answer = sfn.start_execution(**kwargs)
            with iam.running_as("api_handler"):  # the owner's cancel lands now
                store.cancel_job(job_id)
            return answer

        def stop_execution(self, **kwargs: Any) -> Any:
            return sfn.stop_execution(**kwargs)

    with iam.running_as("start_workflow"):
        starter = WorkflowStarter(boto3.client("s3"), store, CancelledWhileStarting(), BUCKET, MACHINE_ARN)
        assert starter.start(inserted) is None
    [execution] = sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"]
    deadline = time.monotonic() + 30  # moto stops an execution asynchronously
    while (status := sfn.describe_execution(executionArn=execution["executionArn"])["status"]) != "ABORTED":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_record_failure_keeps_the_cause_of_a_failure_before_any_model_call(store, photo) -> None:
    """It looked up each model call's response with a HEAD: a call that never answered is a 403 on
    AWS without ListBucket, and the failure's cause was lost (INTERNAL_ERROR)."""
    import app as backdrop_app

    job_id = contracts.new_job_id()
    image_id = contracts.new_opaque_id()
    key = contracts.upload_key("owner-1", contracts.image_ref_of(contracts.new_opaque_id(), image_id, "png"))
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=photo())
    settings = {
        "model": "stability-inpaint",
        "prompt": "a beach",
        "mode": "PRECISE",
        "variants": 1,
        "outputFormat": "png",
    }
    store.put_job(
        job_id=job_id,
        owner="owner-1",
        model="stability-inpaint",
        settings=settings,
        images=[NewImage(image_id=image_id, image_ref="r", key=key, name="a.png")],
    )
    assert store.mark_running(job_id, f"arn:aws:states:us-east-1:123456789012:execution:backdrop-test:{job_id}")
    event = {
        "jobId": job_id,
        "owner": "owner-1",
        "bucket": BUCKET,
        "settings": settings,
        "image": {"imageId": image_id, "key": key, "name": "a.png"},
        "failure": {"Error": "Bedrock.AccessDeniedException", "Cause": "You don't have access to the model"},
    }
    backdrop_app.record_failure(event, None)  # as the record_failure function
    [item] = [i for i in store.images(job_id) if i["imageId"] == image_id]
    assert (item["status"], item["errorCode"]) == ("FAILED", "MODEL_ACCESS_DENIED")


def test_labels_of_a_missing_upload_are_not_found_on_aws_too(resources, token_for, rekognition) -> None:
    """POST /labels told a missing upload by a HEAD's 404: the API's role lists only under the
    uploads prefix, so on AWS that HEAD is a 403 and the answer was a 500."""
    from chalice.test import Client

    import app as backdrop_app

    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    with Client(backdrop_app.app, stage_name="dev") as client:
        answer = client.http.post(
            "/labels",
            headers={"Authorization": token_for("o"), "Content-Type": "application/json"},
            body=json.dumps({"imageRefs": [ref]}),
        )
    assert answer.status_code == 404, answer.body


@pytest.mark.iam_denial_expected
def test_a_filtered_page_queries_the_status_index_under_its_grant(store) -> None:
    """A filtered page reads the byStatus/byVerdict index: dynamodb:Query on table/index/* is the
    API's OWNER_INDEX grant; a role with Query on the table alone is refused it (AWS evaluates a
    Query with IndexName against the index's ARN)."""
    job_id = "20261208T010000Z-00000000beef"
    store.put_job(
        job_id=job_id,
        owner="owner-1",
        model="stability-inpaint",
        settings={"prompt": "a beach"},
        images=[NewImage(image_id="0" * 32, image_ref="r", key="k", name="a.png", labels=(), boxes=())],
    )
    guard = _guard()
    with iam.running_as("api_handler"):
        page = store.images_page("owner-1", job_id, limit=5, status=contracts.ImageStatus.PENDING)
        assert len(page.items) == 1
        assert len(store.images_page("owner-1", job_id, limit=5, verdict="NONE").items) == 1
    before = len(guard.denials)
    with iam.running_as("report"), pytest.raises(ClientError) as denied:  # Query on the table only
        store.images_page("owner-1", job_id, limit=5, status=contracts.ImageStatus.PENDING)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert f"index/{contracts.STATUS_INDEX}" in denied.value.response["Error"]["Message"]
    assert len(guard.denials) == before + 1
