"""Completion webhooks: submitted with a job, signed, retried with backoff, recorded on the job,
refused for unsafe destinations, delivered to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time
import types
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from builders import BUCKET
from harness import LOCAL_RECEIVER, Receiver, write_job_images

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.delivery import webhooks
from chalicelib.delivery.report import Reporter
from chalicelib.delivery.webhooks import WebhookSender
from chalicelib.store.jobs import JobStore, NewImage
from frontend.webhooks import verify_webhook


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


def _finished_job(store: JobStore, url: str, owner: str = "owner-1", outcomes: tuple[str, ...] = ("SUCCEEDED",)) -> str:
    job_id = contracts.new_job_id()
    images = [
        NewImage(
            image_id=contracts.new_opaque_id(), image_ref=f"r{i}", key=f"uploads/{owner}/x{i}.png", name=f"{i}.png"
        )
        for i in range(len(outcomes))
    ]
    store.put_job(
        job_id=job_id, owner=owner, model="stability-inpaint", settings={"prompt": "x"}, images=images, webhook_url=url
    )
    for image, outcome in zip(images, outcomes, strict=True):
        store.set_image_status(job_id, image.image_id, ImageStatus(outcome), outputs=[])
    Reporter(boto3.client("s3"), store).write(job_id, owner, BUCKET)
    return job_id


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"the webhook sender slept {seconds} s inside the Lambda")


@pytest.fixture(autouse=True)
def _never_sleeps(monkeypatch) -> None:
    # the waits between attempts are the caller's (the workflow's Retry, Lambda's async retries)
    monkeypatch.setattr(webhooks, "time", types.SimpleNamespace(sleep=_no_sleep, time=time.time))


def _invocations(sender: WebhookSender, job_id: str, limit: int = 20) -> tuple[dict[str, Any], list[str]]:
    """Invoke the sender again after each WebhookRetry, as its caller's retry would: the final
    outcome and the retry errors raised on the way."""
    raised: list[str] = []
    for _ in range(limit):
        try:
            return sender.deliver(job_id), raised
        except webhooks.WebhookRetry as exc:
            raised.append(str(exc))
    raise AssertionError("the sender never stopped asking for a retry")


def test_a_finished_job_posts_a_signed_body_the_receiver_can_verify(store, receiver) -> None:
    job_id = _finished_job(store, receiver.url, outcomes=("SUCCEEDED", "FAILED"))
    outcome = WebhookSender(store, policy=LOCAL_RECEIVER).deliver(job_id)
    assert outcome["status"] == "DELIVERED" and outcome["attempts"] == 1
    [request] = receiver.requests
    assert request["path"] == "/hooks/backdrop"
    headers = request["headers"]
    secret = store.webhook_secret("owner-1")["secret"]
    assert verify_webhook(secret, request["body"], headers["Backdrop-Signature"]) > 0
    payload = json.loads(request["body"])
    assert payload["event"] == headers["Backdrop-Event"] == "job.finished"
    assert payload["deliveryId"] == headers["Backdrop-Delivery"] == f"{job_id}.PARTIAL"
    assert (payload["jobId"], payload["status"]) == (job_id, "PARTIAL")
    assert payload["counts"] == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 1, "CANCELLED": 0}
    job = store.get_job(job_id)
    assert job["webhook"]["status"] == "DELIVERED" and job["webhook"]["responseStatus"] == 200
    assert job["status"] == "PARTIAL"
    # delivered once: a repeated invocation sends nothing
    assert WebhookSender(store, policy=LOCAL_RECEIVER).deliver(job_id)["status"] == "DELIVERED"
    assert len(receiver.requests) == 1


def test_a_failed_attempt_asks_its_caller_for_a_retry_and_the_next_invocation_continues(store, receiver) -> None:
    job_id = _finished_job(store, receiver.url)
    receiver.statuses = [500, 503, 200]
    sender = WebhookSender(store, policy=LOCAL_RECEIVER)
    with pytest.raises(webhooks.WebhookRetry, match="attempt 1 of 5: the receiver answered HTTP 500"):
        sender.deliver(job_id)
    assert len(receiver.requests) == 1  # one attempt per invocation, no wait inside it
    assert store.get_job(job_id)["webhook"]["status"] == "RETRYING"
    assert store.get_job(job_id)["webhook"]["attempts"] == 1
    outcome, raised = _invocations(sender, job_id)
    assert outcome["status"] == "DELIVERED" and outcome["attempts"] == 3 and len(raised) == 1
    deliveries = {r["headers"]["Backdrop-Delivery"] for r in receiver.requests}
    assert deliveries == {f"{job_id}.COMPLETED"}  # one id across retries: the receiver can drop duplicates


def test_a_receiver_that_keeps_failing_is_recorded_and_the_job_is_untouched(store, receiver) -> None:
    job_id = _finished_job(store, receiver.url)
    receiver.statuses = [500] * 10
    outcome, raised = _invocations(WebhookSender(store, policy=LOCAL_RECEIVER), job_id)
    assert outcome["status"] == "FAILED" and outcome["attempts"] == contracts.WEBHOOK_ATTEMPTS
    assert len(receiver.requests) == contracts.WEBHOOK_ATTEMPTS and len(raised) == contracts.WEBHOOK_ATTEMPTS - 1
    # the workflow's retrier allows exactly the retries the sender asks for
    assert webhooks.WEBHOOK_RETRY.max_attempts == len(raised)
    job = store.get_job(job_id)
    assert job["status"] == "COMPLETED"
    assert job["webhook"]["status"] == "FAILED" and "HTTP 500: nope" in job["webhook"]["lastError"]


def test_a_redirect_is_not_followed_and_an_unreachable_receiver_is_a_recorded_failure(store, receiver) -> None:
    job_id = _finished_job(store, receiver.url)
    receiver.statuses = [302] * 10
    outcome, _ = _invocations(WebhookSender(store, policy=LOCAL_RECEIVER, attempts=2), job_id)
    assert outcome["status"] == "FAILED" and outcome["responseStatus"] == 302
    assert [r["path"] for r in receiver.requests] == ["/hooks/backdrop"] * 2
    receiver.close()
    gone = _finished_job(store, receiver.url)
    outcome, _ = _invocations(WebhookSender(store, policy=LOCAL_RECEIVER, attempts=2), gone)
    assert outcome["status"] == "FAILED" and "Connection" in outcome["lastError"]


def test_destinations_are_checked_again_at_send_time(store, receiver) -> None:
    # a deployment's sender refuses the loopback receiver outright: no request, no retry
    job_id = _finished_job(store, receiver.url)
    outcome = WebhookSender(store).deliver(job_id)  # no WebhookRetry: a refusal is final
    assert outcome["status"] == "REFUSED" and receiver.requests == []
    # a public name that now resolves to a private address (DNS rebinding) is refused too
    rebound = _finished_job(store, "https://hooks.example.com/x")
    outcome = WebhookSender(store, resolve=lambda host, port: ["10.0.0.7"]).deliver(rebound)
    assert outcome["status"] == "REFUSED" and "resolves to 10.0.0.7" in outcome["lastError"]
    assert store.get_job(rebound)["webhook"]["status"] == "REFUSED"


def test_the_send_webhook_function_delivers_as_the_workflow_invokes_it(client, store, receiver, monkeypatch) -> None:
    job_id = _finished_job(store, receiver.url)
    monkeypatch.setattr(backdrop_app, "_webhook_sender", lambda: WebhookSender(store, policy=LOCAL_RECEIVER))
    answer = client.lambda_.invoke("send_webhook", {"jobId": job_id, "owner": "owner-1", "bucket": BUCKET})
    assert answer.payload["status"] == "DELIVERED"
    no_hook = _finished_job(store, "")
    assert client.lambda_.invoke("send_webhook", {"jobId": no_hook}).payload == {"status": "NONE"}


def test_an_asynchronously_invoked_sender_stops_at_the_budget_its_event_carries(
    client, store, receiver, monkeypatch
) -> None:
    # after a cancel, Lambda's asynchronous retries re-run the sender: the event's budget (three)
    # is the attempts those allow, and the last one records FAILED instead of raising
    job_id = _finished_job(store, receiver.url)
    receiver.statuses = [500] * 10
    monkeypatch.setattr(backdrop_app, "_webhook_sender", lambda: WebhookSender(store, policy=LOCAL_RECEIVER))
    event = {"jobId": job_id, "owner": "owner-1", "attempts": contracts.WEBHOOK_ASYNC_ATTEMPTS}
    for _ in range(contracts.WEBHOOK_ASYNC_ATTEMPTS - 1):  # a function error: Lambda retries the event
        with pytest.raises(webhooks.WebhookRetry):
            client.lambda_.invoke("send_webhook", event)
    assert client.lambda_.invoke("send_webhook", event).payload["status"] == "FAILED"
    assert len(receiver.requests) == contracts.WEBHOOK_ASYNC_ATTEMPTS


# ------------------------------------------------------------------------------ the API


def _public(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


def _upload(owner: str, photo: Any) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=photo())
    return ref


def _job(ref: str, url: Any) -> str:
    return json.dumps({"prompt": "a studio", "webhookUrl": url, "images": [{"imageRef": ref, "labels": ["Person"]}]})


def test_a_job_carries_its_webhook_and_the_owner_gets_a_stable_secret(client, token_for, photo, monkeypatch) -> None:
    monkeypatch.setattr(webhooks, "resolve_host", _public)
    token = token_for("owner-1")
    answer = client.http.post(
        "/jobs", headers=_h(token), body=_job(_upload("owner-1", photo), "https://hooks.example.com/b")
    )
    assert answer.status_code == 202, answer.body
    view = client.http.get(f"/jobs/{answer.json_body['jobId']}", headers=_h(token)).json_body
    assert view["webhook"] == {"url": "https://hooks.example.com/b", "status": "PENDING"}
    first = client.http.get("/webhooks/secret", headers=_h(token)).json_body
    assert first["secret"].startswith("whsec_")
    assert client.http.get("/webhooks/secret", headers=_h(token)).json_body == first
    assert client.http.get("/webhooks/secret", headers=_h(token_for("owner-2"))).json_body["secret"] != first["secret"]
    rotated = client.http.post("/webhooks/secret/rotate", headers=_h(token), body=b"").json_body
    assert rotated["secret"] != first["secret"]
    assert client.http.get("/webhooks/secret", headers=_h(token)).json_body == rotated


@pytest.mark.parametrize(
    ("url", "resolved", "why"),
    [
        ("http://hooks.example.com/b", ["93.184.215.14"], "https"),
        ("https://hooks.example.com/b", ["93.184.215.14", "172.16.0.4"], "resolves to 172.16.0.4"),
        ("https://169.254.169.254/latest", [], "not a public address"),
        # IPv4 written inside IPv6 (issue #26): compatible, NAT64, IPv4-translated
        ("https://[::a9fe:a9fe]/latest", [], "IPv4-compatible form of 169.254.169.254"),
        ("https://[64:ff9b::a9fe:a9fe]/latest", [], "NAT64 form of 169.254.169.254"),
        ("https://[::ffff:0:7f00:1]/", [], "IPv4-translated form of 127.0.0.1"),
        ("https://hooks.example.com/b", ["64:ff9b:1::a00:1"], "resolves to 64:ff9b:1::a00:1"),
        (42, [], "https"),
    ],
)
def test_unsafe_webhook_urls_are_refused_at_submit_and_nothing_is_written(
    client, token_for, photo, monkeypatch, url, resolved, why
) -> None:
    monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: resolved)
    answer = client.http.post("/jobs", headers=_h(token_for("owner-1")), body=_job(_upload("owner-1", photo), url))
    assert answer.status_code == 400, answer.body
    assert answer.json_body["code"] == "VALIDATION_FAILED"
    assert answer.json_body["details"][0]["field"] == "webhookUrl" and why in answer.json_body["message"]
    assert client.http.get("/jobs", headers=_h(token_for("owner-1"))).json_body["jobs"] == []


def test_a_cancelled_jobs_webhook_is_sent_by_the_sender_function(
    client, token_for, photo, store, receiver, monkeypatch
) -> None:
    from backend.local import sfn_hooks

    monkeypatch.setenv("WEBHOOK_FUNCTION_NAME", "backdrop-test-send_webhook")
    monkeypatch.setattr(webhooks, "resolve_host", _public)
    token = token_for("owner-1")
    answer = client.http.post(
        "/jobs", headers=_h(token), body=_job(_upload("owner-1", photo), "https://hooks.example.com/b")
    )
    job_id = answer.json_body["jobId"]
    write_job_images(job_id)  # its stream record reached the starter: a cancel closes it at once
    store.record_webhook(job_id, {"url": receiver.url, "status": "PENDING"})  # point it at the local receiver
    sender = WebhookSender(store, policy=LOCAL_RECEIVER)
    # the Lambda service's asynchronous Invoke, answered by the sender in-process
    uninstall = sfn_hooks.install({"backdrop-test-send_webhook": lambda event: sender.deliver(event["jobId"])}, None)
    try:
        assert client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"").status_code == 200
        deadline = time.monotonic() + 10
        while not receiver.requests:
            assert time.monotonic() < deadline, "the webhook of the cancelled job never arrived"
            time.sleep(0.05)
    finally:
        uninstall()
    payload = json.loads(receiver.requests[0]["body"])
    assert (payload["jobId"], payload["status"]) == (job_id, "CANCELLED")
    deadline = time.monotonic() + 10
    while store.get_job(job_id)["webhook"]["status"] != "DELIVERED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
