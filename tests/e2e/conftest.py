"""Fixtures shared by the executed-state-machine tests (moto's Step Functions interpreter)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from harness import deliver_stream, wait_for

RunJob = Callable[[str, dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


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
