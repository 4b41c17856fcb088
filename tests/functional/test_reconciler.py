"""The reconciler Lambda on moto, driven by the hand-built EventBridge event in tests/events/."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest
from builders import BUCKET, TABLE

from chalicelib.core import contracts

OWNER = "owner-1"


def _user_inbox(owner: str) -> tuple[str, str]:
    """The owner's own job-email topic, as create-user makes it, with an SQS queue standing in for
    their address: (the topic, the queue)."""
    from backend.local.stack import add_user

    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName=f"inbox-{owner}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return add_user(boto3.client, "test", owner, queue_arn), queue


@pytest.fixture
def mail(resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The owner's job-email topic with an SQS queue standing in for their inbox."""
    from backend import resource_names

    monkeypatch.setenv(
        "USER_TOPIC_ARN_PREFIX", resource_names.user_topic_arn_prefix("test", "us-east-1", "123456789012", "aws")
    )
    topic, queue = _user_inbox(OWNER)
    return {"topic": topic, "queue": queue}


def _inbox(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return messages
        for message in got:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _job(statuses: list[str], **job_fields: Any) -> str:
    """A job whose images are in `statuses` (as an interrupted workflow leaves them)."""
    table = boto3.resource("dynamodb").Table(TABLE)
    job_id = contracts.new_job_id()
    for index, status in enumerate(statuses):
        image_id = f"{index:032x}"
        item: dict[str, Any] = {
            "pk": contracts.job_pk(job_id),
            "sk": contracts.image_sk(image_id),
            "imageId": image_id,
            "imageRef": f"{'a' * 32}/{image_id}.png",
            "key": f"uploads/{OWNER}/{'a' * 32}/{image_id}.png",
            "name": f"photo-{index}.png",
            "status": status,
        }
        if status == "SUCCEEDED":
            item["outputs"] = [{"key": contracts.result_key(OWNER, job_id, image_id, 1, "png"), "variant": 1}]
        table.put_item(Item=item)
    table.put_item(
        Item={
            "pk": contracts.job_pk(job_id),
            "sk": contracts.JOB_SK,
            "jobId": job_id,
            "owner": OWNER,
            "status": "RUNNING",
            "model": "stability-inpaint",
            "settings": {"model": "stability-inpaint", "prompt": "a beach"},
            "imageCount": len(statuses),
            "counts": {s.value: statuses.count(s.value) for s in contracts.ImageStatus},
            "createdAt": contracts.utc_now_iso(),
            **job_fields,
        }
    )
    return job_id


def _event(event: Any, job_id: str, status: str, **detail: Any) -> dict[str, Any]:
    raw = json.dumps(event("stepfunctions-execution-status-change")).replace("REPLACE_JOB_ID", job_id)
    built = json.loads(raw)
    built["detail"].update(status=status, **detail)
    return built


def _invoke(event: dict[str, Any]) -> Any:
    from chalice.test import Client

    import app as backdrop_app

    with Client(backdrop_app.app, stage_name="dev") as client:
        return client.lambda_.invoke("reconcile", event).payload


def _job_item(job_id: str) -> dict[str, Any]:
    table = boto3.resource("dynamodb").Table(TABLE)
    return table.get_item(Key={"pk": contracts.job_pk(job_id), "sk": contracts.JOB_SK})["Item"]


def _report(job_id: str) -> dict[str, Any]:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key(OWNER, job_id, "json"))["Body"]
    return json.loads(body.read())


@pytest.mark.parametrize(
    ("status", "error", "said"),
    [
        ("TIMED_OUT", "States.Timeout", "timed out"),
        ("ABORTED", None, "was stopped"),
        ("FAILED", "States.Runtime", "failed"),
        # the report failed after the images' branches ended: not the report's fault (issue #26)
        ("FAILED", "Backdrop.ReportFailed", "its steps could not run"),
        ("SUCCEEDED", None, "could not run"),
    ],
)
def test_an_ended_execution_leaves_a_finished_job_a_true_report_and_one_email(mail, event, status, error, said) -> None:
    job_id = _job(["SUCCEEDED", "RUNNING", "PENDING"])
    hand_built = _event(event, job_id, status, error=error)
    outcome = _invoke(hand_built)
    assert outcome == {
        "jobId": job_id,
        "executionStatus": status,
        "jobStatus": "PARTIAL",
        "reportWritten": True,
        "email": "SENT",
    }
    job = _job_item(job_id)
    assert job["status"] == "PARTIAL" and job["notification"]["status"] == "SENT"
    report = _report(job_id)
    assert report["counts"] == {"total": 3, "PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 2, "CANCELLED": 0}
    closed = [i for i in report["images"] if i["status"] == "FAILED"]
    assert {i["errorCode"] for i in closed} == {"WORKFLOW_STOPPED"}
    assert all(said in i["cause"] for i in closed), closed
    if error == "Backdrop.ReportFailed":
        assert not any("report could not be built" in i["cause"] for i in closed), closed
        assert all("could not write the report either" in i["cause"] for i in closed), closed
    elif error:
        assert all(f"({error})" in i["cause"] for i in closed), closed
    emails = _inbox(mail["queue"])
    assert len(emails) == 1 and job_id in emails[0]["Subject"] and "(PARTIAL)" in emails[0]["Subject"]
    assert "photo-1.png: WORKFLOW_STOPPED" in emails[0]["Message"]
    # EventBridge may deliver the same event again: nothing changes, no second email
    again = _invoke(copy.deepcopy(hand_built))
    assert again["reportWritten"] is False and again["email"] == "SENT"
    assert _inbox(mail["queue"]) == [] and _report(job_id) == report


def test_a_job_the_workflow_finished_is_left_as_it_is(mail, event) -> None:
    job_id = _job(["SUCCEEDED"], status="COMPLETED")
    table = boto3.resource("dynamodb").Table(TABLE)
    table.update_item(
        Key={"pk": contracts.job_pk(job_id), "sk": contracts.JOB_SK},
        UpdateExpression="SET reportKeys = :r, notification = :n",
        ExpressionAttributeValues={
            ":r": {fmt: contracts.report_key(OWNER, job_id, fmt) for fmt in ("json", "csv")},
            ":n": {"status": "SENT", "by": "workflow"},
        },
    )
    outcome = _invoke(_event(event, job_id, "SUCCEEDED", error=None))
    assert outcome["reportWritten"] is False and outcome["email"] == "WORKFLOW"
    assert _inbox(mail["queue"]) == []


def test_an_email_sns_refused_is_sent_on_a_later_delivery(mail, event, monkeypatch) -> None:
    from harness import SnsOutage

    job_id = _job(["RUNNING"])
    outage = SnsOutage(monkeypatch)
    with pytest.raises(Exception, match="InternalError|simulated SNS outage"):
        _invoke(_event(event, job_id, "ABORTED", error=None))
    job = _job_item(job_id)
    assert job["status"] == "FAILED"  # the report is written before the email is tried
    assert job["notification"]["status"] == "FAILED" and job["notification"]["error"].startswith("SNS.")
    # SNS is back (Lambda's own retry of the event, or the sweep): the one email goes out
    outage.end()
    assert _invoke(_event(event, job_id, "ABORTED", error=None))["email"] == "SENT"
    assert len(_inbox(mail["queue"])) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["detail"].update(status="RUNNING"),
        lambda e: e["detail"].update(name="0f2a7c1e-child-execution"),  # a Distributed Map child
        lambda e: e["detail"].update(input=json.dumps({"jobId": "../../etc", "owner": OWNER, "bucket": BUCKET})),
        lambda e: e["detail"].update(input="not json"),
        lambda e: e.update({"detail-type": "Step Functions State Machine Status Change"}),
    ],
)
def test_events_that_are_not_an_ended_backdrop_execution_change_nothing(mail, event, change) -> None:
    job_id = _job(["RUNNING"])
    hand_built = _event(event, job_id, "ABORTED")
    change(hand_built)
    assert _invoke(hand_built) is None
    assert _job_item(job_id)["status"] == "RUNNING" and _inbox(mail["queue"]) == []


def test_an_execution_whose_job_is_gone_is_noted_and_left(mail, event) -> None:
    assert _invoke(_event(event, contracts.new_job_id(), "FAILED"))["email"] == "NO_JOB"
    assert _inbox(mail["queue"]) == []


def test_a_job_whose_owner_declined_email_is_closed_without_one(mail, event) -> None:
    job_id = _job(["RUNNING"], notify=False)
    outcome = _invoke(_event(event, job_id, "TIMED_OUT"))
    assert outcome["reportWritten"] is True and outcome["email"] == "SKIPPED"
    assert _job_item(job_id)["notification"]["status"] == "SKIPPED"
    assert _inbox(mail["queue"]) == []


def test_the_reconcilers_email_goes_to_the_owner_only(mail, event) -> None:
    """Published to the owner's own topic: another user's inbox gets nothing."""
    _, elsewhere = _user_inbox("someone-else")
    job_id = _job(["PENDING"])
    assert _invoke(_event(event, job_id, "ABORTED"))["email"] == "SENT"
    assert [e["MessageAttributes"]["owner"]["Value"] for e in _inbox(mail["queue"])] == [OWNER]
    assert _inbox(elsewhere) == []


def test_an_owner_without_a_topic_settles_the_job_without_an_email(mail, event) -> None:
    """A user made without create-user has no topic: the job closes, its email is recorded as
    NO_SUBSCRIPTION (not FAILED, nothing raised), and a redelivered event does not try again."""
    job_id = _job(["RUNNING"])
    boto3.client("sns").delete_topic(TopicArn=mail["topic"])
    outcome = _invoke(_event(event, job_id, "ABORTED"))
    assert outcome["reportWritten"] is True and outcome["email"] == "NO_SUBSCRIPTION"
    job = _job_item(job_id)
    assert job["status"] == "FAILED" and job["notification"]["status"] == "NO_SUBSCRIPTION"
    again = _invoke(_event(event, job_id, "ABORTED"))
    assert again["reportWritten"] is False and again["email"] == "NO_SUBSCRIPTION"


def _started_webhooks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The reconciler's starts of the webhook sender, captured where it would invoke Lambda."""
    import app as backdrop_app

    started: list[tuple[str, str]] = []
    monkeypatch.setattr(backdrop_app, "_webhook_trigger", lambda: lambda job_id, owner: started.append((job_id, owner)))
    return started


def test_a_job_the_reconciler_closes_gets_its_webhook_started(mail, event, monkeypatch) -> None:
    started = _started_webhooks(monkeypatch)
    job_id = _job(["SUCCEEDED", "RUNNING"], webhook={"url": "https://hooks.example.com/b", "status": "PENDING"})
    _invoke(_event(event, job_id, "FAILED", error="Backdrop.ReportFailed"))
    assert started == [(job_id, OWNER)]  # the workflow ended before its webhook step
    _invoke(_event(event, job_id, "FAILED", error="Backdrop.ReportFailed"))  # the same event again
    assert started == [(job_id, OWNER)]
    without = _job(["RUNNING"])
    _invoke(_event(event, without, "TIMED_OUT"))
    assert started == [(job_id, OWNER)]


def test_a_cancelled_job_stays_as_its_cancel_left_it(mail, event, monkeypatch) -> None:
    from chalicelib.delivery.report import Reporter
    from chalicelib.store.jobs import JobStore

    started = _started_webhooks(monkeypatch)
    job_id = _job(
        ["SUCCEEDED", "RUNNING", "PENDING"], webhook={"url": "https://hooks.example.com/b", "status": "PENDING"}
    )
    store = JobStore(boto3.resource("dynamodb").Table(TABLE))
    assert store.cancel_job(job_id)
    Reporter(boto3.client("s3"), store).write(job_id, OWNER, BUCKET)  # what POST /jobs/{id}/cancel writes
    _invoke(_event(event, job_id, "ABORTED", error="Backdrop.Cancelled"))  # StopExecution's event
    job = _job_item(job_id)
    assert job["status"] == "CANCELLED" and dict(job["counts"])["CANCELLED"] == 2
    assert [i["status"] for i in _report(job_id)["images"]] == ["SUCCEEDED", "CANCELLED", "CANCELLED"]
    assert started == []  # the cancel started it
    [email] = _inbox(mail["queue"])
    assert "CANCELLED" in email["Subject"]
