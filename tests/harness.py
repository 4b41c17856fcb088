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
