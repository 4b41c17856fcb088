"""POST /jobs/{jobId}/cancel and DELETE /jobs/{jobId} through Chalice's test client, on moto."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from builders import BUCKET, STATE_MACHINE, TABLE
from chalice.test import Client
from harness import write_job_images

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundWork, ImageStatus, JobStatus
from chalicelib.store.background import BackgroundTask
from chalicelib.store.jobs import JobStore
from chalicelib.workflow.starter import WorkflowStarter

MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:backdrop-test"


@pytest.fixture
def machine(resources: dict[str, Any]) -> Any:
    """A state machine whose runs wait ten minutes: a job's run stays RUNNING until it is stopped."""
    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "Work", "States": {"Work": {"Type": "Wait", "Seconds": 600, "End": True}}}
    arn = sfn.create_state_machine(
        name=STATE_MACHINE, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    assert arn == MACHINE_ARN
    return sfn


def _h(token: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


def _submit(
    client: Client, token: str, owner: str, photo: Any, count: int = 3, *, written: bool = True, **extra: Any
) -> str:
    """A job submitted through the API; `written`: its stream record has reached the starter, which
    wrote its image items (chalicelib/workflow/starter.py; no execution is started here)."""
    refs = []
    for _ in range(count):
        ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
        boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=photo())
        refs.append(ref)
    body = {
        "prompt": "a marble studio",
        "images": [{"imageRef": r, "name": f"img{i}.png", "labels": ["Person"]} for i, r in enumerate(refs)],
        **extra,
    }
    answer = client.http.post("/jobs", headers=_h(token), body=json.dumps(body))
    assert answer.status_code == 202, answer.body
    if written:
        write_job_images(answer.json_body["jobId"])
    return answer.json_body["jobId"]


def _task(kind: BackgroundWork, job_id: str, owner: str, bucket: str) -> dict[str, Any]:
    """The background worker's event for a task, as the asynchronous invoke carries it."""
    return BackgroundTask(kind, job_id, owner, bucket).to_event()


def _starts(kind: BackgroundWork, into: list[tuple[str, str, str]], run: bool = False) -> Any:
    """A transport for `app.start_background` that collects the (job, owner, bucket) of each task
    of `kind` it is asked to start (and, with `run`, runs the worker at once, as its start would)."""

    def start(event: dict[str, Any]) -> None:
        assert event["kind"] == kind.value, event
        into.append((event["jobId"], event["owner"], event["bucket"]))
        if run:
            backdrop_app.app.handler_map["background_work"](event, _Context())

    return start


def _images(store: JobStore, job_id: str) -> list[dict[str, Any]]:
    return sorted(store.images(job_id), key=lambda i: i["name"])


def _wait_status(sfn: Any, arn: str, status: str) -> None:
    deadline = time.monotonic() + 10
    while sfn.describe_execution(executionArn=arn)["status"] != status:
        assert time.monotonic() < deadline, sfn.describe_execution(executionArn=arn)["status"]
        time.sleep(0.05)


# ------------------------------------------------------------------------------ cancel


def test_cancel_stops_the_run_and_unfinished_images_end_cancelled(client, token_for, photo, store, machine) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo)
    arn = machine.start_execution(stateMachineArn=MACHINE_ARN, name=job_id, input="{}")["executionArn"]
    assert store.mark_running(job_id, arn)
    first, second, _ = (i["imageId"] for i in _images(store, job_id))
    store.start_image(job_id, first)
    store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, outputs=[{"key": "results/x.png", "variant": 1}])
    store.start_image(job_id, second)  # running when the cancel comes

    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert answer.status_code == 200, answer.body
    body = answer.json_body
    assert body["status"] == "CANCELLED" and body["cancelledAt"]
    assert body["counts"] == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 2}
    _wait_status(machine, arn, "ABORTED")
    assert [i["status"] for i in _images(store, job_id)] == ["SUCCEEDED", "CANCELLED", "CANCELLED"]
    # the report says so, row by row, and the job view links it
    report = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key("owner-1", job_id, "json"))["Body"].read()
    )
    assert report["status"] == "CANCELLED" and report["counts"]["CANCELLED"] == 2
    assert [i["status"] for i in report["images"]] == ["SUCCEEDED", "CANCELLED", "CANCELLED"]
    csv_text = boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key("owner-1", job_id, "csv"))
    assert csv_text["Body"].read().decode().count(",CANCELLED,") == 2
    view = client.http.get(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert view["status"] == "CANCELLED" and set(view["reports"]) == {"json", "csv"}

    # a second cancel answers the same; a late step of the stopped run changes nothing
    again = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (again.status_code, again.json_body) == (200, body)
    assert not store.set_image_status(job_id, second, ImageStatus.SUCCEEDED, outputs=[])
    assert store.get_job(job_id)["counts"]["CANCELLED"] == 2


def test_a_job_cancelled_before_it_started_is_never_started(client, token_for, photo, store, machine) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=2)
    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert answer.status_code == 200 and answer.json_body["counts"]["CANCELLED"] == 2
    # the stream record of the job's insert arrives afterwards: nothing starts
    starter = WorkflowStarter(boto3.client("s3"), store, machine, BUCKET, MACHINE_ARN)
    assert starter.start(store.get_job(job_id)) is None
    assert machine.list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []


def test_a_job_cancelled_before_its_images_were_written_gets_them_cancelled_and_its_report(
    client, token_for, photo, store, machine
) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=2, written=False)
    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    # the starter is still the one writer of its image items: the closing is left to it
    assert answer.status_code == 202 and answer.json_body["status"] == "CANCELLED" and answer.json_body["closing"]
    assert store.images(job_id) == []
    assert client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"").json_body == answer.json_body
    view = client.http.get(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert view["imagesPreparing"] is True and view["images"] == []
    from chalicelib.delivery.report import Reporter

    closings: list[tuple[str, str, str]] = []

    def close(job: str, owner: str, bucket: str) -> None:  # the reconciler's close_cancelled, in short
        closings.append((job, owner, bucket))
        Reporter(boto3.client("s3"), store).write(job, owner, bucket)

    # the stream record of the job's insert arrives afterwards: images CANCELLED, nothing started
    starter = WorkflowStarter(boto3.client("s3"), store, machine, BUCKET, MACHINE_ARN, start_closing=close)
    assert starter.start(store.get_job(job_id)) is None
    assert machine.list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []
    assert closings == [(job_id, "owner-1", BUCKET)]
    assert [i["status"] for i in _images(store, job_id)] == ["CANCELLED", "CANCELLED"]
    job = store.get_job(job_id)
    assert job["status"] == "CANCELLED" and job["counts"]["CANCELLED"] == 2 and job["counts"]["PENDING"] == 0
    report = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key("owner-1", job_id, "json"))["Body"].read()
    )
    assert report["counts"]["total"] == 2 and report["counts"]["CANCELLED"] == 2
    # delivered again (at least once): nothing is written or started twice
    assert starter.start(store.get_job(job_id)) is None
    assert len(closings) == 1 and machine.list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []


def test_a_job_cancelled_while_its_images_are_written_ends_with_all_of_them_cancelled(
    client, token_for, photo, store, machine, monkeypatch
) -> None:
    from chalicelib.workflow import starter as starter_module

    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=5, written=False)
    monkeypatch.setattr(starter_module, "STATUS_CHECK_ITEMS", 2)  # the status is read after every 2 items
    writes: list[int] = []
    original = store.write_images

    def write_then_cancel(items: Any, **kwargs: Any) -> None:
        original(items, **kwargs)
        writes.append(len(items))
        if len(writes) == 1:  # the owner's cancel lands after the first slice was written PENDING
            assert client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"").status_code == 202

    monkeypatch.setattr(store, "write_images", write_then_cancel)
    closings: list[str] = []
    starter = WorkflowStarter(
        boto3.client("s3"), store, machine, BUCKET, MACHINE_ARN, start_closing=lambda j, o, b: closings.append(j)
    )
    assert starter.start(store.get_job(job_id)) is None
    # the PENDING slice, then every item again as CANCELLED; no execution, the closing started
    assert writes == [2, 5] and closings == [job_id]
    assert [i["status"] for i in _images(store, job_id)] == ["CANCELLED"] * 5
    assert store.get_job(job_id)["counts"]["CANCELLED"] == 5
    assert machine.list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []


def test_a_run_that_starts_while_the_job_is_cancelled_is_stopped_at_once(store, photo, machine, resources) -> None:
    from chalicelib.store.jobs import NewImage

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
        """Step Functions, with the owner's cancel landing between StartExecution and mark_running."""

        def start_execution(self, **kwargs: Any) -> Any:
            answer = machine.start_execution(**kwargs)
            store.cancel_job(job_id)
            return answer

        def stop_execution(self, **kwargs: Any) -> Any:
            return machine.stop_execution(**kwargs)

    starter = WorkflowStarter(boto3.client("s3"), store, CancelledWhileStarting(), BUCKET, MACHINE_ARN)
    assert starter.start(inserted) is None
    [execution] = machine.list_executions(stateMachineArn=MACHINE_ARN)["executions"]
    _wait_status(machine, execution["executionArn"], "ABORTED")


def test_cancel_is_for_the_owner_and_for_unfinished_jobs_only(client, token_for, photo, store, machine) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=1)
    other = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token_for("owner-2")), body=b"")
    assert (other.status_code, other.json_body["code"]) == (404, "NOT_FOUND")
    assert store.get_job(job_id)["status"] == "SUBMITTED"
    [image] = store.images(job_id)
    store.set_image_status(job_id, image["imageId"], ImageStatus.SUCCEEDED, outputs=[])
    store.finish_job(job_id, JobStatus.COMPLETED, {"SUCCEEDED": 1}, {}, contracts.utc_now_iso())
    done = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (done.status_code, done.json_body["code"]) == (409, "CONFLICT")
    assert "already finished (COMPLETED)" in done.json_body["message"]
    missing = client.http.post("/jobs/20260101T000000Z-0123456789ab/cancel", headers=_h(token), body=b"")
    assert missing.status_code == 404


def test_the_report_of_a_run_that_finishes_after_a_cancel_keeps_the_cancellation(
    client, token_for, photo, store, machine
) -> None:
    from chalicelib.delivery.report import Reporter

    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=2)
    assert client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"").status_code == 200
    # the workflow's own Report step, already running when the cancel came, finishes now
    result = Reporter(boto3.client("s3"), store).build({"jobId": job_id, "owner": "owner-1", "bucket": BUCKET})
    assert result["status"] == "CANCELLED"
    assert store.get_job(job_id)["status"] == "CANCELLED"


# ------------------------------------------------------------------------------ delete


def _objects(prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def _finished_job_with_files(client: Client, token: str, store: JobStore, photo: Any, owner: str = "owner-1") -> str:
    job_id = _submit(client, token, owner, photo, count=2)
    s3 = boto3.client("s3")
    for image in store.images(job_id):
        key = contracts.result_key(owner, job_id, image["imageId"], 1, "png")
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"result")
        store.set_image_status(job_id, image["imageId"], ImageStatus.SUCCEEDED, outputs=[{"key": key, "variant": 1}])
        s3.put_object(Bucket=BUCKET, Key=contracts.work_key(job_id, image["imageId"], "canvas.png"), Body=b"c")
    s3.put_object(Bucket=BUCKET, Key=contracts.manifest_key(job_id), Body=b"[]")
    # scratch: two work files, the manifest and the image records POST /jobs accepted
    from chalicelib.delivery.report import Reporter

    Reporter(s3, store).write(job_id, owner, BUCKET)
    return job_id


def test_delete_removes_the_job_its_results_reports_and_scratch_and_says_so(client, token_for, photo, store) -> None:
    token = token_for("owner-1")
    job_id = _finished_job_with_files(client, token, store, photo)
    keep = _finished_job_with_files(client, token, store, photo)  # another job of the same owner stays
    originals = [i["key"] for i in store.images(job_id)]

    answer = client.http.delete(f"/jobs/{job_id}", headers=_h(token))
    assert answer.status_code == 200, answer.body
    body = answer.json_body
    assert body["deleted"] is True and body["alreadyDeleted"] is False
    assert body["removed"] == {"images": 2, "results": 2, "reports": 2, "scratch": 4, "originals": 0}
    assert _objects(contracts.job_results_prefix("owner-1", job_id)) == []
    assert _objects(contracts.job_reports_prefix("owner-1", job_id)) == []
    assert _objects(contracts.job_scratch_prefix(job_id)) == []
    assert all(_objects(key) == [key] for key in originals)  # originals stay unless asked
    assert client.http.get(f"/jobs/{job_id}", headers=_h(token)).status_code == 404
    listed = client.http.get("/jobs", headers=_h(token)).json_body["jobs"]
    assert [j["jobId"] for j in listed] == [keep]
    assert store.images(job_id) == []
    assert len(_objects(contracts.job_results_prefix("owner-1", keep))) == 2

    again = client.http.delete(f"/jobs/{job_id}", headers=_h(token))
    assert again.status_code == 200
    assert again.json_body == {**body, "alreadyDeleted": True}
    assert client.http.delete(f"/jobs/{job_id}", headers=_h(token_for("owner-2"))).status_code == 404


def test_delete_with_originals_removes_only_the_owners_uploads(client, token_for, photo, store) -> None:
    token = token_for("owner-1")
    job_id = _finished_job_with_files(client, token, store, photo)
    originals = [i["key"] for i in store.images(job_id)]
    neighbour = originals[0].rsplit("/", 1)[0] + "/" + contracts.new_opaque_id() + ".png"  # same batch, not in the job
    boto3.client("s3").put_object(Bucket=BUCKET, Key=neighbour, Body=b"n")
    answer = client.http.delete(f"/jobs/{job_id}?originals=true", headers=_h(token))
    assert answer.status_code == 200 and answer.json_body["removed"]["originals"] == 2
    assert all(_objects(key) == [] for key in originals)
    assert _objects(neighbour) == [neighbour]


def test_delete_refuses_a_running_job_anothers_job_and_a_bad_flag(client, token_for, photo, store) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=1)
    running = client.http.delete(f"/jobs/{job_id}", headers=_h(token))
    assert (running.status_code, running.json_body["code"]) == (409, "CONFLICT")
    assert "cancel it first" in running.json_body["message"]
    job_id = _finished_job_with_files(client, token, store, photo)
    assert client.http.delete(f"/jobs/{job_id}", headers=_h(token_for("owner-2"))).status_code == 404
    bad = client.http.delete(f"/jobs/{job_id}?originals=yes", headers=_h(token))
    assert (bad.status_code, bad.json_body["code"]) == (400, "BAD_REQUEST")
    assert store.get_job(job_id) is not None and len(_objects(contracts.job_results_prefix("owner-1", job_id))) == 2


def test_a_job_written_before_cancelled_existed_counts_zero_cancelled(client, token_for, photo, store) -> None:
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=1)
    table = boto3.resource("dynamodb").Table(TABLE)
    table.update_item(
        Key={"pk": contracts.job_pk(job_id), "sk": contracts.JOB_SK}, UpdateExpression="REMOVE counts.CANCELLED"
    )
    assert "CANCELLED" not in store.get_job(job_id)["counts"]
    view = client.http.get(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert view["counts"] == {"PENDING": 1, "RUNNING": 0, "SUCCEEDED": 0, "FAILED": 0, "CANCELLED": 0}
    # and cancelling it counts from there
    assert client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"").json_body["counts"]["CANCELLED"] == 1


# ------------------------------------------------------------------------------ a large job's cancel


@pytest.fixture
def large(resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs of more than two unfinished images count as large: the hand-off without 10,000 images."""
    from chalicelib.jobs import control as job_control

    monkeypatch.setattr(job_control, "SYNC_CLOSE_LIMIT", 2)
    # the reconciler's function, which closes them, sends its emails to the owners' own topics
    monkeypatch.setenv("USER_TOPIC_ARN_PREFIX", "arn:aws:sns:us-east-1:123456789012:backdrop-test_user-")


def _running_job(client: Client, token: str, photo: Any, store: JobStore, machine: Any, count: int) -> tuple[str, str]:
    job_id = _submit(client, token, "owner-1", photo, count=count)
    execution_input = json.dumps({"jobId": job_id, "owner": "owner-1", "bucket": BUCKET})
    arn = machine.start_execution(stateMachineArn=MACHINE_ARN, name=job_id, input=execution_input)["executionArn"]
    assert store.mark_running(job_id, arn)
    return job_id, arn


def test_a_large_jobs_cancel_hands_the_closing_off_once_and_the_background_run_closes_it(
    client, token_for, photo, store, machine, large, monkeypatch
) -> None:
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.CLOSE_CANCELLED, started))
    token = token_for("owner-1")
    job_id, arn = _running_job(client, token, photo, store, machine, count=4)
    first = _images(store, job_id)[0]["imageId"]
    store.start_image(job_id, first)
    store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, outputs=[{"key": "results/x.png", "variant": 1}])

    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert answer.status_code == 202, answer.body
    body = answer.json_body
    assert body["status"] == "CANCELLED" and body["closing"] is True and body["closingBy"] == "BACKGROUND"
    assert body["counts"] == {"PENDING": 3, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 0}
    _wait_status(machine, arn, "ABORTED")  # stopped inside the request
    assert started == [(job_id, "owner-1", BUCKET)]
    # a repeat answers the same and starts no second closing
    again = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (again.status_code, again.json_body) == (202, body)
    assert len(started) == 1
    # the job view says the closing is still going, so a page keeps refreshing past CANCELLED
    closing_view = client.http.get(f"/jobs/{job_id}?limit=0", headers=_h(token)).json_body
    assert closing_view["status"] == "CANCELLED" and closing_view["closing"] is True
    # nor can it be deleted while it closes: the closing would write its report after the delete
    closing = client.http.delete(f"/jobs/{job_id}", headers=_h(token))
    assert (closing.status_code, closing.json_body["code"]) == (409, "CONFLICT")
    assert "still being closed" in closing.json_body["message"]

    # the background run: the background worker, as the API's asynchronous invoke calls it
    client.lambda_.invoke("background_work", _task(BackgroundWork.CLOSE_CANCELLED, *started[0]))
    assert [i["status"] for i in _images(store, job_id)] == ["SUCCEEDED", "CANCELLED", "CANCELLED", "CANCELLED"]
    view = client.http.get(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert view["status"] == "CANCELLED" and set(view["reports"]) == {"json", "csv"}
    assert view["counts"]["CANCELLED"] == 3 and view["closing"] is False  # closed: a page may stop refreshing
    done = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert done.status_code == 200 and done.json_body["closing"] is False
    assert done.json_body["counts"] == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 3}


def test_a_small_job_is_still_closed_inside_the_request(client, token_for, photo, store, machine, large, monkeypatch):
    started: list[Any] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.CLOSE_CANCELLED, started))
    token = token_for("owner-1")
    job_id, _ = _running_job(client, token, photo, store, machine, count=2)
    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert answer.status_code == 200 and answer.json_body["closing"] is False and started == []
    assert answer.json_body["counts"]["CANCELLED"] == 2


def test_a_hand_off_that_fails_leaves_the_job_cancelled_and_the_reconciler_closes_it(
    client, token_for, photo, store, machine, large, monkeypatch, event
) -> None:
    from botocore.exceptions import ClientError

    def refused(*job: str) -> None:
        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke")

    monkeypatch.setattr(backdrop_app, "start_background", refused)
    token = token_for("owner-1")
    job_id, arn = _running_job(client, token, photo, store, machine, count=3)

    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert answer.status_code == 202, answer.body
    body = answer.json_body
    assert (body["status"], body["closing"], body["closingBy"]) == ("CANCELLED", True, "RECONCILER")
    assert store.get_job(job_id)["status"] == "CANCELLED"
    _wait_status(machine, arn, "ABORTED")
    again = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")  # tries the hand-off again
    assert (again.status_code, again.json_body) == (202, body)

    # the stopped execution's end reaches the reconciler, which closes the job
    ended = json.loads(json.dumps(event("stepfunctions-execution-status-change")).replace("REPLACE_JOB_ID", job_id))
    ended["detail"].update(status="ABORTED", error=None)
    client.lambda_.invoke("reconcile", ended)
    assert [i["status"] for i in _images(store, job_id)] == ["CANCELLED"] * 3
    job = store.get_job(job_id)
    assert job["status"] == "CANCELLED" and job["reportKeys"]
    done = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (done.status_code, done.json_body["closing"], done.json_body["closingBy"]) == (200, False, None)


def test_a_large_job_cancelled_before_its_execution_existed_ends_cancelled_and_is_never_started(
    client, token_for, photo, store, machine, large, monkeypatch
) -> None:
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.CLOSE_CANCELLED, started))
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=3)  # SUBMITTED: the starter has not run
    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert answer.status_code == 202 and answer.json_body["closingBy"] == "BACKGROUND"
    # the stream record of the insert arrives after the cancel: nothing starts
    starter = WorkflowStarter(boto3.client("s3"), store, machine, BUCKET, MACHINE_ARN)
    assert starter.start(store.get_job(job_id)) is None
    client.lambda_.invoke("background_work", _task(BackgroundWork.CLOSE_CANCELLED, *started[0]))
    assert machine.list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []
    view = client.http.get(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert view["status"] == "CANCELLED" and set(view["reports"]) == {"json", "csv"}
    assert view["counts"]["CANCELLED"] == 3 and view["counts"]["PENDING"] == 0


class _Context:
    """A Lambda context whose remaining time runs out after `batches` checks (Chalice's test
    client gives every function 3 s, less than one batch may take:
    docs/aws-notes.md#n60-lambda-remaining-time-and-counters-in-nested-maps)."""

    def __init__(self, batches: int = 1_000) -> None:
        self.left = batches

    def get_remaining_time_in_millis(self) -> int:
        self.left -= 1
        return 600_000 if self.left >= 0 else 5_000


def _sweep(client: Client) -> dict[str, Any]:
    """The reconciler's scheduled sweep, as EventBridge's schedule starts it."""
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule/sweep"]
    )
    answer: dict[str, Any] = backdrop_app.app.handler_map["reconcile_sweep"](event, _Context())
    return answer


def _run_deleter(job_id: str, owner: str, bucket: str) -> dict[str, Any]:
    """The background worker, started with the deletion's event the API sends it."""
    answer: dict[str, Any] = backdrop_app.app.handler_map["background_work"](
        _task(BackgroundWork.DELETE, job_id, owner, bucket), _Context()
    )
    return answer


def test_the_sweep_closes_a_cancel_whose_hand_off_failed_before_any_execution_existed(
    client, token_for, photo, store, machine, large, monkeypatch
) -> None:
    from botocore.exceptions import ClientError

    def refused(*job: str) -> None:
        raise ClientError({"Error": {"Code": "ServiceException", "Message": "Lambda is unavailable"}}, "Invoke")

    monkeypatch.setattr(backdrop_app, "start_background", refused)
    token = token_for("owner-1")
    job_id = _submit(client, token, "owner-1", photo, count=3)  # no execution: no execution's end will come
    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (answer.status_code, answer.json_body["closing"], answer.json_body["closingBy"]) == (202, True, "RECONCILER")
    starter = WorkflowStarter(boto3.client("s3"), store, machine, BUCKET, MACHINE_ARN)
    assert starter.start(store.get_job(job_id)) is None

    # the sweep starts the closing again on the background worker (here run at once, as its start would)
    restarted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.CLOSE_CANCELLED, restarted, run=True))
    swept = _sweep(client)
    assert swept["background"] == [{"kind": "CLOSE_CANCELLED", "jobId": job_id, "started": True}]
    assert restarted == [(job_id, "owner-1", BUCKET)]
    assert store.get_job(job_id)["reportKeys"]
    assert [i["status"] for i in _images(store, job_id)] == ["CANCELLED"] * 3
    done = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (done.status_code, done.json_body["closing"], done.json_body["counts"]["CANCELLED"]) == (200, False, 3)
    # settled: the next sweep has nothing left to do, and nothing was started
    assert _sweep(client)["background"] == []
    assert machine.list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []


# ------------------------------------------------------------------------------ a large job's delete


@pytest.fixture
def large_delete(resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Jobs of more than one image count as large to delete; the deleter's starts are collected."""
    from chalicelib.jobs import control as job_control

    monkeypatch.setattr(job_control, "SYNC_DELETE_LIMIT", 1)
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.DELETE, started))
    return started


def test_a_large_jobs_delete_answers_202_at_once_and_the_deleter_removes_it_in_runs(
    client, token_for, photo, store, large_delete
) -> None:
    token = token_for("owner-1")
    job_id = _finished_job_with_files(client, token, store, photo)
    originals = [i["key"] for i in store.images(job_id)]

    answer = client.http.delete(f"/jobs/{job_id}", headers=_h(token))
    assert answer.status_code == 202, answer.body
    body = answer.json_body
    assert (body["deleting"], body["deleted"], body["status"], body["deletingBy"]) == (
        True,
        False,
        "DELETING",
        "BACKGROUND",
    )
    assert body["removed"] == {"images": 0, "results": 0, "reports": 0, "scratch": 0, "originals": 0}
    assert body["originals"] is False and body["imageCount"] == 2
    assert large_delete == [(job_id, "owner-1", BUCKET)]
    # while it is being deleted: GET says so, nothing can be started on it, a repeat answers the progress
    view = client.http.get(f"/jobs/{job_id}", headers=_h(token))
    assert view.status_code == 200 and view.json_body["status"] == "DELETING"
    assert view.json_body["deletion"]["deletingBy"] == "BACKGROUND" and view.json_body["images"] == []
    assert "reports" not in view.json_body and view.json_body["nextCursor"] is None
    for refused in (
        client.http.post(f"/jobs/{job_id}/retry", headers=_h(token), body=b"{}"),
        client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b""),
        client.http.post(f"/jobs/{job_id}/archive", headers=_h(token), body=b"{}"),
    ):
        assert (refused.status_code, refused.json_body["code"]) == (409, "CONFLICT"), refused.body
        assert "being deleted" in refused.json_body["message"]
    assert client.http.get(f"/jobs/{job_id}", headers=_h(token_for("owner-2"))).status_code == 404
    assert client.http.delete(f"/jobs/{job_id}", headers=_h(token_for("owner-2"))).status_code == 404
    again = client.http.delete(f"/jobs/{job_id}", headers=_h(token))
    assert (again.status_code, again.json_body["deleting"]) == (202, True)
    assert len(large_delete) == 1  # one background run at a time

    # the deleter, as the API's asynchronous invoke starts it: a run that runs short of time
    # stops between batches and starts itself again; the next run finishes
    first = backdrop_app.background_work(_task(BackgroundWork.DELETE, job_id, "owner-1", BUCKET), _Context(batches=2))
    assert first["done"] is False and large_delete[-1] == (job_id, "owner-1", BUCKET) and len(large_delete) == 2
    progress = client.http.delete(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert progress["deleting"] is True and sum(progress["removed"].values()) >= 1
    _run_deleter(*large_delete[-1])
    assert client.http.get(f"/jobs/{job_id}", headers=_h(token)).status_code == 404
    assert _objects(contracts.job_results_prefix("owner-1", job_id)) == []
    assert _objects(contracts.job_reports_prefix("owner-1", job_id)) == []
    assert _objects(contracts.job_scratch_prefix(job_id)) == [] and store.images(job_id) == []
    assert all(_objects(key) == [key] for key in originals)  # originals stay unless asked
    final = client.http.delete(f"/jobs/{job_id}", headers=_h(token))
    assert final.status_code == 200
    assert final.json_body["alreadyDeleted"] is True and final.json_body["deleted"] is True
    assert final.json_body["removed"] == {"images": 2, "results": 2, "reports": 2, "scratch": 4, "originals": 0}
    assert client.http.delete(f"/jobs/{job_id}", headers=_h(token_for("owner-2"))).status_code == 404


def test_a_large_jobs_delete_with_originals_removes_only_its_owners_uploads(
    client, token_for, photo, store, large_delete
) -> None:

    token = token_for("owner-1")
    job_id = _finished_job_with_files(client, token, store, photo)
    originals = [i["key"] for i in store.images(job_id)]
    neighbour = originals[0].rsplit("/", 1)[0] + "/" + contracts.new_opaque_id() + ".png"
    boto3.client("s3").put_object(Bucket=BUCKET, Key=neighbour, Body=b"n")
    answer = client.http.delete(f"/jobs/{job_id}?originals=true", headers=_h(token))
    assert answer.status_code == 202 and answer.json_body["originals"] is True
    _run_deleter(*large_delete[0])
    final = client.http.delete(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert final["removed"]["originals"] == 2 and final["removed"]["images"] == 2
    assert all(_objects(key) == [] for key in originals)
    assert _objects(neighbour) == [neighbour]


def test_the_sweep_restarts_a_delete_whose_start_failed_or_that_stopped(
    client, token_for, photo, store, machine, large, large_delete, monkeypatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from botocore.exceptions import ClientError

    def refused(*job: str) -> None:
        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke")

    token = token_for("owner-1")
    failed_job = _finished_job_with_files(client, token, store, photo)
    stopped_job = _finished_job_with_files(client, token, store, photo)
    monkeypatch.setattr(backdrop_app, "start_background", refused)
    answer = client.http.delete(f"/jobs/{failed_job}", headers=_h(token))
    assert answer.status_code == 202 and answer.json_body["deletingBy"] == "RECONCILER"
    assert client.http.get(f"/jobs/{failed_job}", headers=_h(token)).json_body["deletion"]["deletingBy"] == "RECONCILER"
    # this one's start "works" but its run never comes (lost, or it died without a retry)
    lost: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.DELETE, lost))
    assert client.http.delete(f"/jobs/{stopped_job}", headers=_h(token)).status_code == 202

    # the sweep runs the deleter again (here at once, as its asynchronous start would)
    restarted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.DELETE, restarted, run=True))
    swept = _sweep(client)["background"]
    assert swept == [{"kind": "DELETE", "jobId": failed_job, "started": True}]  # the other may still be running
    assert client.http.get(f"/jobs/{failed_job}", headers=_h(token)).status_code == 404
    final = client.http.delete(f"/jobs/{failed_job}", headers=_h(token)).json_body
    assert final["removed"] == {"images": 2, "results": 2, "reports": 2, "scratch": 4, "originals": 0}

    later = datetime.now(UTC) + timedelta(minutes=21)  # the lost run has not moved for longer than any run lasts
    assert backdrop_app._reconciler().sweep_background(backdrop_app._background(), now=later) == [
        {"kind": "DELETE", "jobId": stopped_job, "started": True}
    ]
    assert restarted == [(failed_job, "owner-1", BUCKET), (stopped_job, "owner-1", BUCKET)]
    assert client.http.get(f"/jobs/{stopped_job}", headers=_h(token)).status_code == 404
    assert store.background_work() == []  # nothing left noted


def test_an_execution_end_reaching_a_job_being_deleted_changes_nothing(
    client, token_for, photo, store, large, large_delete, event
) -> None:
    token = token_for("owner-1")
    job_id = _finished_job_with_files(client, token, store, photo)
    assert client.http.delete(f"/jobs/{job_id}", headers=_h(token)).status_code == 202
    ended = json.loads(json.dumps(event("stepfunctions-execution-status-change")).replace("REPLACE_JOB_ID", job_id))
    ended["detail"].update(status="ABORTED", error=None)
    outcome = client.lambda_.invoke("reconcile", ended).payload
    assert (outcome["jobStatus"], outcome["reportWritten"], outcome["email"]) == ("DELETING", False, "SKIPPED")
    assert store.get_job(job_id)["status"] == "DELETING"
    _run_deleter(*large_delete[0])
    assert client.http.get(f"/jobs/{job_id}", headers=_h(token)).status_code == 404
