"""Helpers for tests that run the real workflow on moto (see the `stack` fixture in conftest.py), and a
webhook receiver on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from builders import BUCKET, TABLE

from chalicelib.core import contracts
from chalicelib.delivery.webhooks import DeliveryPolicy


def upload(owner: str, name: str, data: bytes, ext: str) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), ext)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=data)
    return ref


def deliver_stream(stack: dict[str, Any], client: Any) -> None:
    from backend.local.streams import StreamPoller

    streams = boto3.client("dynamodbstreams")
    poller = StreamPoller(streams, stack["stream_arn"], lambda event: client.lambda_.invoke("start_workflow", event))
    assert poller.poll_once() > 0


def write_job_images(job_id: str, bucket: str = BUCKET, table: str = TABLE) -> None:
    """What the starter does first when an accepted job's stream record arrives: write its image
    items from the records POST /jobs left in S3 (chalicelib/workflow/starter.py). For functional tests,
    which have no state machine to start; `deliver_stream` runs the whole starter."""
    from chalicelib.store.jobs import JobStore
    from chalicelib.workflow.starter import WorkflowStarter

    store = JobStore(boto3.resource("dynamodb").Table(table))
    job = store.get_job(job_id)
    assert job is not None and job.get(contracts.JOB_IMAGES_PENDING_ATTRIBUTE), f"job {job_id} has no images to write"
    starter = WorkflowStarter(boto3.client("s3"), store, boto3.client("stepfunctions"), bucket, "unused")
    assert starter.write_images(job) is not None


def wait_for(sfn: Any, execution_arn: str, timeout_s: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=execution_arn, maxResults=200)["events"]
    raise AssertionError(f"execution still RUNNING after {timeout_s}s; last events: {history[-5:]}")


def wait_until_mid_batch(client: Any, job_id: str, timeout_s: float = 30.0) -> None:
    """Wait (through the API client) until one of the job's images is RUNNING: the batch is under way."""
    deadline = time.monotonic() + timeout_s
    while client.job(job_id)["counts"].get("RUNNING", 0) == 0:
        assert time.monotonic() < deadline, "the batch never started"
        time.sleep(0.05)


def deliver_execution_events(stack: dict[str, Any], client: Any) -> int:
    """EventBridge's "Execution Status Change" events for every ended execution, to the
    reconciler Lambda (a new poller delivers them all again: at least once)."""
    from backend.local.executions import ExecutionEventPoller

    poller = ExecutionEventPoller(
        boto3.client("stepfunctions"),
        stack["state_machine_arn"],
        lambda event: client.lambda_.invoke("reconcile", event),
    )
    return poller.poll_once()


def inbox(queue_url: str) -> list[dict[str, Any]]:
    """Every email (SNS message delivered to the SQS stand-in inbox) waiting, removed as read."""
    import json

    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return messages
        for message in got:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# the only way to let a webhook reach 127.0.0.1 over plain HTTP: an argument, in tests
LOCAL_RECEIVER = DeliveryPolicy(allow_loopback=True, allow_plain_http=True)


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers each POST with the next status given."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.end_headers()
                self.wfile.write(b"nope" if status >= 300 else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/backdrop"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SnsOutage:
    """SNS refusing every Publish (InternalError, HTTP 500) while `active`: a failure that a
    later try can get past (an owner without a topic is not one: that is NO_SUBSCRIPTION). Patches
    moto's SNS backend for the test; `end()` lets publishes through again."""

    def __init__(self, monkeypatch: Any) -> None:
        from moto.sns.exceptions import InternalError
        from moto.sns.models import SNSBackend

        self.active = True
        real = SNSBackend.publish

        def publish(backend: Any, *args: Any, **kwargs: Any) -> Any:
            if self.active:
                raise InternalError("simulated SNS outage")
            return real(backend, *args, **kwargs)

        monkeypatch.setattr(SNSBackend, "publish", publish)

    def end(self) -> None:
        self.active = False
