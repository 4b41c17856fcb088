"""Review before delivery, executed on moto's Step Functions interpreter: the workflow waits on
its task token after the images are done, the owner rejects one result and approves, and only
then the report is written (with the rejection) and the email sent."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from builders import BUCKET
from harness import deliver_stream, upload, wait_for

pytestmark = pytest.mark.slow


def _waiting(client, headers, job_id: str, timeout_s: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
        if (view.get("review") or {}).get("status") == "WAITING":
            return view
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never waited for review: {view}")


def test_a_reviewed_job_waits_for_its_owner_then_delivers_without_the_rejected(stack, token_for, photo) -> None:
    from chalice.test import Client

    import app as backdrop_app

    owner = "user-a"
    refs = {name: upload(owner, name, photo(320, 240, "PNG"), "png") for name in ("keep.png", "drop.png")}
    body = {
        "prompt": "a sunny beach",
        "reviewHours": 2,
        "images": [{"imageRef": ref, "name": name, "labels": []} for name, ref in refs.items()],
    }
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    s3 = boto3.client("s3")
    with Client(backdrop_app.app, stage_name="dev") as client:
        job_id = client.http.post("/jobs", headers=headers, body=json.dumps(body)).json_body["jobId"]
        early = client.http.post(f"/jobs/{job_id}/review/approve", headers=headers, body="{}")
        assert early.status_code == 409  # nothing to review before the images are done
        deliver_stream(stack, client)
        view = _waiting(client, headers, job_id)
        assert view["status"] == "RUNNING" and view["counts"]["SUCCEEDED"] == 2
        assert "token" not in json.dumps(view)  # the task token never leaves the backend
        assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=f"reports/{owner}/{job_id}/").get(
            "Contents"
        )  # no report, no email while it waits
        ids = {i["name"]: i["imageId"] for i in view["images"]}
        stranger = {"Authorization": token_for("user-b"), "Content-Type": "application/json"}
        assert client.http.post(f"/jobs/{job_id}/review/approve", headers=stranger, body="{}").status_code == 404
        decided = client.http.post(
            f"/jobs/{job_id}/review",
            headers=headers,
            body=json.dumps({"decisions": {ids["drop.png"]: "REJECTED", ids["keep.png"]: "APPROVED"}}),
        )
        assert decided.status_code == 200, decided.body
        bad = client.http.post(
            f"/jobs/{job_id}/review", headers=headers, body=json.dumps({"decisions": {ids["drop.png"]: "MAYBE"}})
        )
        assert bad.status_code == 400
        approved = client.http.post(f"/jobs/{job_id}/review/approve", headers=headers, body="{}")
        assert approved.status_code == 200 and approved.json_body["rejected"] == 1, approved.body

        sfn = boto3.client("stepfunctions")
        (execution,) = sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]
        assert wait_for(sfn, execution["executionArn"])["status"] == "SUCCEEDED"
        done = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
        archive = client.http.post(f"/jobs/{job_id}/archive", headers=headers, body="{}").json_body

    assert done["status"] == "COMPLETED" and done["review"]["status"] == "APPROVED"
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=f"reports/{owner}/{job_id}/report.json")["Body"].read())
    assert {i["name"]: i["reviewDecision"] for i in report["images"]} == {
        "keep.png": "APPROVED",
        "drop.png": "REJECTED",
    }
    assert archive["state"] == "READY"
    messages = boto3.client("sqs").receive_message(QueueUrl=stack["queue_url"], MaxNumberOfMessages=10)["Messages"]
    emails = [json.loads(m["Body"])["Message"] for m in messages]
    assert any("Rejected in review, not delivered: 1 result(s)." in e for e in emails)
