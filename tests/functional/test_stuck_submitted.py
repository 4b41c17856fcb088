"""No job is left SUBMITTED: the reconciler's sweep starts a job whose start never came (the
stream trigger failing, its records parked in the failure queue) with the starter's own entry
point, and fails one still waiting past its deadline (chalicelib/workflow/reconciler.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from builders import STATE_MACHINE
from chalice.test import Client
from test_cancel_delete import BUCKET, MACHINE_ARN, _Context, _h, _submit

import app as backdrop_app
from backend import resource_names
from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundWork, JobStatus
from chalicelib.workflow import reconciler
from chalicelib.workflow.starter import WorkflowStarter

OWNER = "owner-1"


@pytest.fixture
def client(client: Client, monkeypatch: pytest.MonkeyPatch) -> Client:
    # each user's job emails go to their own topic (backend/user_topics.py): the sweep's reconciler reads the prefix
    monkeypatch.setenv(
        "USER_TOPIC_ARN_PREFIX", resource_names.user_topic_arn_prefix("test", "us-east-1", "123456789012", "aws")
    )
    return client


@pytest.fixture
def machine(resources: dict[str, Any]) -> Any:
    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "Work", "States": {"Work": {"Type": "Wait", "Seconds": 600, "End": True}}}
    sfn.create_state_machine(
        name=STATE_MACHINE, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )
    return sfn


def _scheduled_sweep(client: Client) -> dict[str, Any]:
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule/sweep"]
    )
    answer: dict[str, Any] = backdrop_app.app.handler_map["reconcile_sweep"](event, _Context())
    return answer


def _sweep_at(later: datetime) -> list[dict[str, Any]]:
    """The sweep's background pass as app.py wires it, as if run at `later`."""
    return backdrop_app._reconciler().sweep_background(
        backdrop_app._background(), now=later, start_job=lambda job: backdrop_app._starter().start(job)
    )


def _start_notes(store: Any) -> list[str]:
    return [n["jobId"] for n in store.background_work() if n["kind"] == BackgroundWork.START.value]


def _executions(sfn: Any) -> list[str]:
    return sorted(e["name"] for e in sfn.list_executions(stateMachineArn=MACHINE_ARN)["executions"])


def test_a_job_whose_start_never_came_is_started_by_the_sweep(
    client, token_for, photo, store, machine, monkeypatch
) -> None:
    token = token_for(OWNER)
    # the stream never delivers these INSERTs (the trigger is failing): nothing starts them
    jobs = sorted(_submit(client, token, OWNER, photo, count=2) for _ in range(2))
    assert sorted(_start_notes(store)) == jobs  # each noted at submit, before its job item
    assert _scheduled_sweep(client)["background"] == []  # young: the stream's starter may still come
    assert all(store.get_job(j)["status"] == JobStatus.SUBMITTED.value for j in jobs) and _executions(machine) == []

    monkeypatch.setattr(reconciler, "SUBMITTED_RESTART_AFTER", timedelta(0))  # now overdue
    swept = _scheduled_sweep(client)["background"]
    assert sorted(o["jobId"] for o in swept) == jobs
    assert all(o["kind"] == "START" and o["started"] and o["status"] == JobStatus.RUNNING.value for o in swept)
    # the starter's own start: an execution named after each job, its manifest, the job RUNNING
    assert _executions(machine) == jobs
    for job_id in jobs:
        view = client.http.get(f"/jobs/{job_id}", headers=_h(token)).json_body
        assert view["status"] == JobStatus.RUNNING.value
        manifest = boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.manifest_key(job_id))["Body"].read()
        assert len(json.loads(manifest)) == 2
    assert _start_notes(store) == []
    # a late stream record, or another sweep, starts nothing twice
    assert _scheduled_sweep(client)["background"] == []
    WorkflowStarter(boto3.client("s3"), store, machine, BUCKET, MACHINE_ARN).start(store.get_job(jobs[0]))
    assert _executions(machine) == jobs


def test_a_job_the_stream_started_is_left_alone_and_its_note_goes(client, token_for, photo, store, machine) -> None:
    token = token_for(OWNER)
    job_id = _submit(client, token, OWNER, photo)
    assert WorkflowStarter(boto3.client("s3"), store, machine, BUCKET, MACHINE_ARN).start(store.get_job(job_id))
    later = datetime.now(UTC) + timedelta(hours=3)  # past every threshold: only the status counts
    assert _sweep_at(later) == []
    assert _start_notes(store) == [] and _executions(machine) == [job_id]
    assert store.get_job(job_id)["status"] == JobStatus.RUNNING.value


def test_a_job_still_submitted_past_its_deadline_fails_with_a_clear_cause(
    client, token_for, photo, store, machine
) -> None:
    token = token_for(OWNER)
    job_id = _submit(client, token, OWNER, photo)
    later = datetime.now(UTC) + reconciler.SUBMITTED_DEADLINE + timedelta(minutes=1)
    (outcome,) = _sweep_at(later)
    assert outcome["kind"] == "START" and outcome["jobId"] == job_id
    assert outcome["failed"] is True and outcome["started"] is False
    view = client.http.get(f"/jobs/{job_id}", headers=_h(token)).json_body
    assert view["status"] == JobStatus.FAILED.value
    assert "could not start" in view["cause"] and "still waiting to start 121 minutes" in view["cause"]
    assert _start_notes(store) == [] and _executions(machine) == []


def test_a_start_that_fails_in_the_sweep_is_kept_and_tried_again(
    client, token_for, photo, store, machine, monkeypatch
) -> None:
    token = token_for(OWNER)
    job_id = _submit(client, token, OWNER, photo)
    later = datetime.now(UTC) + reconciler.SUBMITTED_RESTART_AFTER + timedelta(minutes=1)
    real_start = WorkflowStarter.start

    def table_unavailable(self: WorkflowStarter, job: Any) -> str | None:
        raise RuntimeError("the table is unavailable")

    monkeypatch.setattr(WorkflowStarter, "start", table_unavailable)
    (outcome,) = _sweep_at(later)
    assert outcome == {"kind": "START", "jobId": job_id, "started": False, "error": "the table is unavailable"} | {
        "waitedMinutes": outcome["waitedMinutes"]
    }
    assert _start_notes(store) == [job_id] and store.get_job(job_id)["status"] == JobStatus.SUBMITTED.value
    monkeypatch.setattr(WorkflowStarter, "start", real_start)
    (outcome,) = _sweep_at(later + timedelta(minutes=30))
    assert outcome["started"] is True and _executions(machine) == [job_id] and _start_notes(store) == []


def test_a_note_without_its_job_goes(client, store) -> None:
    """The submit noted the start, then failed before writing its job: nothing to start."""
    job_id = contracts.new_job_id()
    store.note_background_work(BackgroundWork.START, job_id, OWNER, BUCKET)
    assert _sweep_at(datetime.now(UTC) + timedelta(hours=1)) == []
    assert _start_notes(store) == []
