"""No job left behind: outages longer than every retry budget, on the executed state machine.

From the first call of one step (prepare, the model, finalize, the report, the email) on, every
Lambda and the model answer as an outage would, until the execution has ended: whatever the
state machine's retries do, the execution ends with its job unfinished. Then the outage ends,
EventBridge's "Execution Status Change" event reaches the reconciler, and the job must be
finished, its report true, one email sent (a repeated event sends none), and its failed images
can be retried. Retry waits are recorded, not slept (moto's interpreter sleeps them for real:
tests/e2e/conftest.py); what they add up to is unchanged in the definition.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from builders import BUCKET
from e2e_support import Gate, wait_until
from harness import SnsOutage, deliver_execution_events, deliver_stream, inbox, upload
from test_robustness import COUNTS

from backend.local.sfn_hooks import interpreter_threads, wait_until_interpreter_idle
from chalicelib.core import contracts

pytestmark = pytest.mark.slow


def _wait_until_ended(execution_arn: str, timeout_s: float = 240) -> str:
    sfn = boto3.client("stepfunctions")
    status: str = wait_until(
        lambda: (s := sfn.describe_execution(executionArn=execution_arn)["status"]) != "RUNNING" and s,
        f"execution {execution_arn} to end",
        timeout_s,
    )
    return status


def _submit(client: Any, stack: dict[str, Any], token_for: Any, owner: str, photo: Any, count: int = 2) -> str:
    refs = [upload(owner, f"photo-{i}.png", photo(320, 240, "PNG"), "png") for i in range(count)]
    images = [{"imageRef": ref, "name": f"photo-{i}.png", "labels": ["Product"]} for i, ref in enumerate(refs)]
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    submitted = client.http.post("/jobs", headers=headers, body=json.dumps({"prompt": "a beach", "images": images}))
    assert submitted.status_code == 202, submitted.body
    deliver_stream(stack, client)
    return submitted.json_body["jobId"]


def _execution_arn(stack: dict[str, Any], job_id: str) -> str:
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]
    return next(e["executionArn"] for e in executions if e["name"] == job_id)


def _emails_about(job_id: str, emails: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in emails if job_id in e.get("Subject", "")]


@pytest.mark.parametrize(
    ("step", "begins_at"),
    [
        ("prepare", "prepare"),
        ("model", "model"),
        ("finalize", "finalize"),
        ("report", "report"),
        ("notify", "record_notification_failure"),  # SNS refuses, then nothing can record it either
    ],
)
def test_an_outage_beyond_every_retry_budget_leaves_no_job_behind(
    stack, token_for, photo, step, begins_at, monkeypatch
) -> None:
    from chalice.test import Client

    import app as backdrop_app

    owner = f"user-outage-{step}"
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    outage = stack["outage"]
    outage.begin_at = begins_at
    sns_outage = SnsOutage(monkeypatch) if step == "notify" else None
    with Client(backdrop_app.app, stage_name="dev") as client:
        job_id = _submit(client, stack, token_for, owner, photo)
        ended = _wait_until_ended(_execution_arn(stack, job_id))
        assert outage.refused > 0 and stack["retry_waits"].count, "the outage never met the workflow"
        stuck = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
        if step == "notify":
            assert stuck["status"] == "COMPLETED"  # the workflow reported; only the email is missing
        else:
            assert stuck["status"] == "RUNNING", stuck  # what the issue saw: a job left behind
        assert _emails_about(job_id, inbox(stack["queue_url"])) == []

        outage.end()
        if sns_outage:
            sns_outage.end()
        assert deliver_execution_events(stack, client) >= 1
        view = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
        assert view["status"] in ("COMPLETED", "PARTIAL", "FAILED"), view
        assert all(i["status"] in ("SUCCEEDED", "FAILED") for i in view["images"]), view["images"]
        for image in view["images"]:
            if image["status"] == "FAILED" and step != "notify":
                assert image["errorCode"] == "WORKFLOW_STOPPED" or "outage" in image["cause"], image
                # blamed on what failed, not on the report the outage also stopped (issue #26)
                assert "report could not be built" not in image["cause"], image
        report = json.loads(
            boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key(owner, job_id, "json"))["Body"].read()
        )
        assert report["status"] == view["status"]
        assert {i["imageId"]: i["status"] for i in report["images"]} == {
            i["imageId"]: i["status"] for i in view["images"]
        }
        emails = _emails_about(job_id, inbox(stack["queue_url"]))
        assert len(emails) == 1 and f"({view['status']})" in emails[0]["Subject"], emails
        assert view["notification"]["status"] == "SENT"

        # EventBridge may deliver again (a new poller redelivers every ended execution)
        assert deliver_execution_events(stack, client) >= 1
        assert _emails_about(job_id, inbox(stack["queue_url"])) == []

        # the job is no longer stuck: its failed images can be retried, and now they succeed
        if view["counts"]["FAILED"]:
            retried = client.http.post(f"/jobs/{job_id}/retry", headers=headers, body=b"{}")
            assert retried.status_code == 202, retried.body
            deliver_stream(stack, client)
            assert _wait_until_ended(_execution_arn(stack, retried.json_body["jobId"])) == "SUCCEEDED"
            again = client.http.get(f"/jobs/{retried.json_body['jobId']}", headers=headers).json_body
            assert again["status"] == "COMPLETED", again
    COUNTS["outages"] += 1
    COUNTS["lost"] += sum(1 for i in view["images"] if i["status"] not in ("SUCCEEDED", "FAILED"))
    assert ended in ("SUCCEEDED", "FAILED")


def test_an_aborted_execution_leaves_no_job_behind(stack, token_for, photo) -> None:
    from chalice.test import Client

    import app as backdrop_app

    owner = "user-aborted"
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    # model calls wait in a gate until the test opens it: the execution is stopped mid-batch
    gate = Gate()
    stack["bedrock"].latency_s, stack["bedrock"].sleep = 2.0, gate
    earlier = interpreter_threads()  # the worker's earlier tests' (pytest-xdist runs several files in it)
    with Client(backdrop_app.app, stage_name="dev") as client:
        job_id = _submit(client, stack, token_for, owner, photo, count=3)
        sfn = boto3.client("stepfunctions")
        arn = _execution_arn(stack, job_id)
        gate.wait_for_arrivals(1)
        wait_until(
            lambda: client.http.get(f"/jobs/{job_id}", headers=headers).json_body["counts"].get("RUNNING", 0),
            "an image of the batch to be RUNNING",
        )
        sfn.stop_execution(executionArn=arn, error="Operator.Stop", cause="stopped by the operator")
        gate.open()  # children already inside the model call finish or fail on their own
        assert _wait_until_ended(arn) == "ABORTED"
        wait_until_interpreter_idle(started_before=earlier)
        deliver_execution_events(stack, client)
        view = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
    assert view["status"] in ("PARTIAL", "FAILED") and view["counts"]["FAILED"] >= 1, view
    stopped = [i for i in view["images"] if i["errorCode"] == "WORKFLOW_STOPPED"]
    # (moto keeps no error or cause for a stopped execution; on AWS they follow, in parentheses)
    assert stopped and all(i["cause"].startswith("the workflow was stopped") for i in stopped), stopped
    assert len(_emails_about(job_id, inbox(stack["queue_url"]))) == 1
    COUNTS["outages"] += 1


def test_the_sweep_reconciles_executions_whose_event_was_lost(stack, token_for, photo) -> None:
    """EventBridge delivers Step Functions events on a best-effort basis: the scheduled sweep
    finds the execution that ended without its job being closed."""
    from chalice.test import Client

    import app as backdrop_app

    owner = "user-lost-event"
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    stack["outage"].begin_at = "report"
    with Client(backdrop_app.app, stage_name="dev") as client:
        job_id = _submit(client, stack, token_for, owner, photo, count=1)
        _wait_until_ended(_execution_arn(stack, job_id))
        stack["outage"].end()
        assert client.http.get(f"/jobs/{job_id}", headers=headers).json_body["status"] == "RUNNING"
        swept = client.lambda_.invoke("reconcile_sweep", _scheduled(client)).payload["reconciled"]
        assert [o["jobId"] for o in swept] == [job_id] and swept[0]["email"] == "SENT"
        assert client.http.get(f"/jobs/{job_id}", headers=headers).json_body["status"] == "COMPLETED"
        assert client.lambda_.invoke("reconcile_sweep", _scheduled(client)).payload["reconciled"] == []  # settled
    assert len(_emails_about(job_id, inbox(stack["queue_url"]))) == 1
    COUNTS["outages"] += 1


def _scheduled(client: Any) -> dict[str, Any]:
    return client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule/sweep"]
    )


def test_local_stack_app_side_down_beyond_every_retry_then_back() -> None:
    """The issue's report, on the local stack: the app side (Lambdas, API) is down mid-batch for
    longer than every retry budget (its Retry waits recorded, not slept: retry_time_scale 0); the
    execution ends; when the app side is back, the local stack's execution events reach the
    reconciler and the job finishes with one email."""
    from pathlib import Path

    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from frontend.api_client import BackdropClient, CognitoLogin

    samples = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.jpg"))[:2]
    stack = LocalStack(api_port=0, stage="outage", latency_s=0.5, max_concurrency=2, retry_time_scale=0).start()
    gate = stack.bedrock.sleep = Gate()  # model calls wait until the app side is down
    try:
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(DEMO_USER, DEMO_PASSWORD)
        client = BackdropClient(stack.api_url, login.id_token)
        refs = client.upload_files(samples).uploaded
        job = client.submit({"prompt": "a studio", "images": [{**r, "labels": []} for r in refs]})
        gate.wait_for_arrivals(1)  # mid-batch
        stack.stop_app()
        gate.open()  # what the model answers meets Lambdas that are down, and their retries
        sfn = stack.client("stepfunctions")
        arn = next(
            e["executionArn"]
            for e in sfn.list_executions(stateMachineArn=stack.outputs["state_machine_arn"])["executions"]
            if e["name"] == job["jobId"]
        )
        wait_until(
            lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING",
            "the execution to end once every retry is spent",
            timeout_s=240,
        )
        assert stack.retry_waits.count > 0, "Step Functions never retried the throttled Lambdas"
        stack.start_app()
        client.wait(job["jobId"], poll_s=0.3, timeout_s=60)  # polls the summary
        view = client.job_with_images(job["jobId"])
        assert view["status"] in ("PARTIAL", "FAILED", "COMPLETED") and view["counts"]["RUNNING"] == 0, view
        assert all(i["status"] in ("SUCCEEDED", "FAILED") for i in view["images"])
        assert client.report_url(job["jobId"], "json")
        stack.wait_for_email(job["jobId"])
        stack.settle()  # the local stack's event poller runs again: still one email
        assert len([e for e in stack.emails if job["jobId"] in e.get("Subject", "")]) == 1
    finally:
        stack.stop()
    COUNTS["outages"] += 1
