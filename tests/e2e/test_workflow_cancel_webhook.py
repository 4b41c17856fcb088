"""Cancel and the completion webhook on the executed workflow (moto's Step Functions interpreter,
the real state machine file and Lambdas, the Bedrock stand-in)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from e2e_support import Gate, wait_until
from harness import LOCAL_RECEIVER, Receiver, deliver_stream, upload, wait_for

from backend.local.sfn_hooks import interpreter_threads, wait_until_interpreter_idle
from chalicelib.core import contracts
from chalicelib.delivery import webhooks
from chalicelib.delivery.webhooks import WebhookSender
from frontend.webhooks import verify_webhook

pytestmark = pytest.mark.slow
OWNER = "user-a"


def _submit(client: Any, token: str, refs: list[str], webhook: str | None = None) -> str:
    body: dict[str, Any] = {
        "prompt": "a sunny beach",
        "images": [{"imageRef": ref, "name": f"{i}.png", "labels": ["Product"]} for i, ref in enumerate(refs)],
    }
    if webhook:
        body["webhookUrl"] = webhook
    answer = client.http.post(
        "/jobs", headers={"Authorization": token, "Content-Type": "application/json"}, body=json.dumps(body)
    )
    assert answer.status_code == 202, answer.body
    return str(answer.json_body["jobId"])


@pytest.mark.parametrize("receiver_answers", [[200], [500] * 10], ids=["delivered", "receiver-down"])
def test_the_workflow_sends_the_webhook_after_the_report(
    stack, token_for, photo, store, monkeypatch, receiver_answers
) -> None:
    from chalice.test import Client

    import app as backdrop_app

    receiver = Receiver()
    receiver.statuses = list(receiver_answers)
    monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: ["93.184.215.14"])
    # the deployment's sender, but allowed to reach the receiver on 127.0.0.1
    monkeypatch.setattr(
        backdrop_app, "_webhook_sender", lambda: WebhookSender(backdrop_app._store(), policy=LOCAL_RECEIVER)
    )
    # the e2e `stack` records moto's Retry waits instead of sleeping them (issue #25: the waits
    # between webhook attempts are the workflow's Retry, never a sleep inside the Lambda)
    try:
        with Client(backdrop_app.app, stage_name="dev") as client:
            refs = [upload(OWNER, f"{i}.png", photo(320, 240), "png") for i in range(2)]
            job_id = _submit(client, token_for(OWNER), refs, webhook="https://hooks.example.com/backdrop")
            store.record_webhook(job_id, {"url": receiver.url, "status": "PENDING"})  # the local receiver
            deliver_stream(stack, client)
            sfn = boto3.client("stepfunctions")
            [execution] = sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]
            finished = wait_for(sfn, execution["executionArn"])
        assert finished["status"] == "SUCCEEDED", finished
        job = store.get_job(job_id)
        assert job["status"] == "COMPLETED"  # whatever the receiver did
        if receiver_answers == [200]:
            [request] = receiver.requests
            secret = store.webhook_secret(OWNER)["secret"]
            verify_webhook(secret, request["body"], request["headers"]["Backdrop-Signature"])
            assert json.loads(request["body"])["status"] == "COMPLETED"
            assert job["webhook"]["status"] == "DELIVERED"
        else:
            assert len(receiver.requests) == job["webhook"]["attempts"] == contracts.WEBHOOK_ATTEMPTS
            assert job["webhook"]["status"] == "FAILED" and "HTTP 500" in job["webhook"]["lastError"]
            # each retry waited in the state machine, full jitter under 2, 8, 32, 128 s
            ceilings = [2.0 * 4**n for n in range(contracts.WEBHOOK_ATTEMPTS - 1)]
            waits = stack["retry_waits"].waits_for("WebhookRetry")  # not another step's retry under load
            assert len(waits) == len(ceilings) and all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    finally:
        receiver.close()


def test_a_cancel_stops_the_running_workflow(stack, token_for, photo, store) -> None:
    from chalice.test import Client

    import app as backdrop_app

    # model calls wait in a gate until the test opens it: the cancel lands mid-batch, with calls in flight
    gate = Gate()
    stack["bedrock"].latency_s, stack["bedrock"].sleep = 1.0, gate
    token = token_for(OWNER)
    earlier = interpreter_threads()  # the worker's earlier tests' (pytest-xdist runs several files in it)
    with Client(backdrop_app.app, stage_name="dev") as client:
        refs = [upload(OWNER, f"{i}.png", photo(320, 240), "png") for i in range(6)]
        job_id = _submit(client, token, refs)
        deliver_stream(stack, client)
        gate.wait_for_arrivals(1)
        wait_until(lambda: store.get_job(job_id)["counts"]["RUNNING"], "an image of the batch to be RUNNING")
        answer = client.http.post(f"/jobs/{job_id}/cancel", headers={"Authorization": token}, body=b"")
        assert answer.status_code == 200, answer.body
        # the model calls in flight finish after the cancel (the execution is ABORTED once the
        # Tasks they are in have ended), and every Task runs to its end: nothing they do changes
        # the outcome
        in_flight = gate.arrived
        gate.open()
        sfn = boto3.client("stepfunctions")
        [execution] = sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]
        assert wait_for(sfn, execution["executionArn"])["status"] == "ABORTED"
        wait_until_interpreter_idle(started_before=earlier)
        counts = answer.json_body["counts"]
        assert counts["CANCELLED"] >= 1 and counts["PENDING"] == counts["RUNNING"] == 0
        assert in_flight >= 1
        job = store.get_job(job_id)
        assert job["status"] == "CANCELLED" and job["counts"] == counts
        statuses = sorted(i["status"] for i in store.images(job_id))
        assert set(statuses) <= {"SUCCEEDED", "CANCELLED"} and statuses.count("CANCELLED") == counts["CANCELLED"]
