"""Helpers for tests that run the real workflow on moto (see the `stack` fixture in conftest.py)."""

from __future__ import annotations

import time
from typing import Any

import boto3

from chalicelib import contracts


def upload(owner: str, name: str, data: bytes, ext: str) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), ext)
    boto3.client("s3").put_object(Bucket="backdrop-test-bucket", Key=contracts.upload_key(owner, ref), Body=data)
    return ref


def deliver_stream(stack: dict[str, Any], client: Any) -> None:
    from backend.local.streams import StreamPoller

    streams = boto3.client("dynamodbstreams")
    poller = StreamPoller(streams, stack["stream_arn"], lambda event: client.lambda_.invoke("start_workflow", event))
    assert poller.poll_once() > 0


def wait_for(sfn: Any, execution_arn: str, timeout_s: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=execution_arn, maxResults=200)["events"]
    raise AssertionError(f"execution still RUNNING after {timeout_s}s; last events: {history[-5:]}")


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
