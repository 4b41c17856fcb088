"""Fixtures shared by the executed-state-machine tests (moto's Step Functions interpreter)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from harness import deliver_stream, wait_for

from backend.local.sfn_hooks import RetryWaits, install_retry_waits

RunJob = Callable[[str, dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


@pytest.fixture
def retry_waits() -> Iterator[RetryWaits]:
    """moto's interpreter sleeps every Retry wait for real (minutes, in an outage): here each is
    recorded and not slept (scale 0). `retry_waits.waits` are the waits the definition asked
    for, in seconds, which a test asserts instead of spending them (issue #28 point 7)."""
    waits = RetryWaits(scale=0)
    undo = install_retry_waits(waits)
    try:
        yield waits
    finally:
        undo()


@pytest.fixture
def stack(stack: dict[str, Any], retry_waits: RetryWaits) -> dict[str, Any]:
    """The suite's executed-workflow `stack` (tests/conftest.py), its Retry waits recorded
    instead of slept; `stack["retry_waits"]` is the record."""
    return {**stack, "retry_waits": retry_waits}


@pytest.fixture
def run_job(stack: dict[str, Any], token_for: Callable[..., str]) -> RunJob:
    """`run_job(owner, body)`: submit the job through the API as `owner`, deliver the stream
    record that starts it, run its execution to its end (it must succeed: each image's failure is
    the job's to say) and answer (the POST answer, the job view)."""

    def run(owner: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        from chalice.test import Client

        import app as backdrop_app

        headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
        with Client(backdrop_app.app, stage_name="dev") as client:
            submitted = client.http.post("/jobs", headers=headers, body=json.dumps(body))
            assert submitted.status_code == 202, submitted.body
            job_id = submitted.json_body["jobId"]
            deliver_stream(stack, client)
            sfn = boto3.client("stepfunctions")
            execution = next(
                e
                for e in sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"]
                if e["name"] == job_id
            )
            finished = wait_for(sfn, execution["executionArn"])
            assert finished["status"] == "SUCCEEDED", finished
            view = client.http.get(f"/jobs/{job_id}", headers=headers).json_body
        return submitted.json_body, view

    return run
