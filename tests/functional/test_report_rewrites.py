"""A pick on a large finished job (above rewrites.SYNC_REWRITE_LIMIT images) through the HTTP API on
moto: the report is written again by the background worker (a REWRITE_REPORT task), started without
waiting; many picks cause few rewrites, and a failed start is retried by the next pick or the sweep."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from builders import STATE_MACHINE
from test_cancel_delete import MACHINE_ARN
from test_variants_api import BUCKET, _finished_job, _pick

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundWork
from chalicelib.delivery import rewrites


@pytest.fixture
def machine(resources: dict[str, Any]) -> None:
    """The stage's state machine, which the sweep lists the executions of (none here)."""
    definition = {"StartAt": "Work", "States": {"Work": {"Type": "Pass", "End": True}}}
    arn = boto3.client("stepfunctions").create_state_machine(
        name=STATE_MACHINE, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    assert arn == MACHINE_ARN


@pytest.fixture
def large(resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every job counts as large (a one-image job stands in for 10,000); answers the rewrites started."""
    started: list[dict[str, Any]] = []
    # the sweep's reconciler also sends emails: it is built with the users' job-email topics
    monkeypatch.setenv("USER_TOPIC_ARN_PREFIX", "arn:aws:sns:us-east-1:123456789012:backdrop-test_user-")
    monkeypatch.setattr(rewrites, "SYNC_REWRITE_LIMIT", 0)
    monkeypatch.setattr(backdrop_app, "start_background", started.append)
    return started


def _delivered_in_report(job_id: str, owner: str) -> list[int]:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key(owner, job_id, "json"))["Body"]
    report = json.loads(body.read())
    return [o["variant"] for i in report["images"] for o in i["outputs"] if o["delivered"]]


def _view(client: Any, token: str, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.http.get(f"/jobs/{job_id}?limit=0", headers={"Authorization": token}).json_body
    return answer


def test_a_pick_on_a_large_job_is_answered_at_once_and_the_report_follows_in_the_background(
    client, token_for, store, large
) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    image_id = _finished_job(store, variants=3)
    token = token_for(OWNER)
    (best,) = _delivered_in_report(JOB_ID, OWNER)
    chosen = next(v for v in (1, 2, 3) if v != best)

    picked = _pick(client, token, JOB_ID, image_id, {"variant": chosen})
    assert picked.status_code == 200, picked.body
    assert picked.json_body["report"] == "REWRITING" and picked.json_body["delivered"] == chosen
    # the rewrite is handed off, not done: the report still delivers the earlier variant
    assert [(e["kind"], e["jobId"], e["owner"], e["bucket"]) for e in large] == [
        ("REWRITE_REPORT", JOB_ID, OWNER, BUCKET)
    ]
    assert _delivered_in_report(JOB_ID, OWNER) == [best]
    assert _view(client, token, JOB_ID)["reportRewrite"]["status"] == "STARTED"

    # the background worker, with the event the API sent
    done = client.lambda_.invoke("background_work", large[0]).payload
    assert done == {"kind": "REWRITE_REPORT", "jobId": JOB_ID, "rewrites": 1, "current": True}
    assert _delivered_in_report(JOB_ID, OWNER) == [chosen]
    assert "reportRewrite" not in _view(client, token, JOB_ID)
    assert store.background_work() == []
    # run again (Lambda may deliver an asynchronous event twice): nothing left to do
    assert client.lambda_.invoke("background_work", large[0]).payload["rewrites"] == 0


def test_many_picks_in_a_row_cause_few_rewrites_and_the_last_pick_wins(
    client, token_for, store, large, monkeypatch
) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    from chalicelib.delivery.report import Reporter

    image_id = _finished_job(store, variants=3)
    token = token_for(OWNER)
    for variant in (1, 2, 3, 1):
        assert _pick(client, token, JOB_ID, image_id, {"variant": variant}).json_body["report"] == "REWRITING"
    assert len(large) == 1  # one rewriter started for four picks

    # a pick lands while the rewriter is writing: it writes once more, from a reading after that pick
    rewrite = Reporter.rewrite
    picked_meanwhile: list[int] = []

    def rewrite_with_a_pick_meanwhile(self: Reporter, *args: Any) -> dict[str, Any]:
        report = rewrite(self, *args)
        if not picked_meanwhile:
            picked_meanwhile.append(_pick(client, token, JOB_ID, image_id, {"variant": 2}).json_body["delivered"])
        return report

    monkeypatch.setattr(Reporter, "rewrite", rewrite_with_a_pick_meanwhile)
    done = client.lambda_.invoke("background_work", large[0]).payload
    assert picked_meanwhile == [2] and len(large) == 1  # that pick started no second rewriter
    assert done == {"kind": "REWRITE_REPORT", "jobId": JOB_ID, "rewrites": 2, "current": True}
    assert _delivered_in_report(JOB_ID, OWNER) == [2]
    assert "reportRewrite" not in _view(client, token, JOB_ID)


def test_a_rewrite_that_could_not_be_started_is_said_and_started_by_the_next_pick(
    client, token_for, store, large, monkeypatch
) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    def refused(event: dict[str, Any]) -> None:
        raise RuntimeError("Rate exceeded")

    image_id = _finished_job(store, variants=2)
    token = token_for(OWNER)
    monkeypatch.setattr(backdrop_app, "start_background", refused)
    picked = _pick(client, token, JOB_ID, image_id, {"variant": 1})
    assert picked.status_code == 200  # the pick itself is recorded
    assert picked.json_body["report"] == "REWRITE_PENDING" and "Rate exceeded" in picked.json_body["reportError"]
    pending = _view(client, token, JOB_ID)["reportRewrite"]
    assert pending["status"] == "FAILED" and "Rate exceeded" in pending["lastError"]

    monkeypatch.setattr(backdrop_app, "start_background", large.append)
    assert _pick(client, token, JOB_ID, image_id, {"variant": 2}).json_body["report"] == "REWRITING"
    assert len(large) == 1
    client.lambda_.invoke("background_work", large[0])
    assert _delivered_in_report(JOB_ID, OWNER) == [2]


def test_the_sweep_writes_a_report_whose_rewrite_never_started(
    client, token_for, store, large, machine, monkeypatch
) -> None:
    from test_cancel_delete import _starts, _sweep
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    def refused(event: dict[str, Any]) -> None:
        raise RuntimeError("Lambda is unavailable")

    image_id = _finished_job(store, variants=2)
    token = token_for(OWNER)
    monkeypatch.setattr(backdrop_app, "start_background", refused)
    assert _pick(client, token, JOB_ID, image_id, {"variant": 1}).json_body["report"] == "REWRITE_PENDING"
    assert [n["kind"] for n in store.background_work()] == [BackgroundWork.REWRITE_REPORT.value]

    # the sweep starts it again on the background worker (here run at once, as its start would)
    restarted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.REWRITE_REPORT, restarted, run=True))
    swept = _sweep(client)["background"]
    assert swept == [{"kind": "REWRITE_REPORT", "jobId": JOB_ID, "started": True}]
    assert restarted == [(JOB_ID, OWNER, BUCKET)]
    assert _delivered_in_report(JOB_ID, OWNER) == [1]
    assert "reportRewrite" not in _view(client, token, JOB_ID) and store.background_work() == []


def test_a_regeneration_added_to_a_large_job_has_its_report_written_in_the_background(
    client, token_for, store, large, monkeypatch
) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER
    from test_variants_api import _run_job

    from chalicelib.workflow import steps as workflow

    image_id = _finished_job(store, variants=2)
    parent = store.get_image(JOB_ID, image_id)
    store.put_labels(parent["key"], [{"name": "Bottle", "confidence": 96.0, "instances": []}])
    token = token_for(OWNER)
    headers = {"Authorization": token, "Content-Type": "application/json"}
    path = f"/jobs/{JOB_ID}/images/{image_id}/regenerate"
    linked_id = client.http.post(path, headers=headers, body=json.dumps({"seed": 779})).json_body["jobId"]
    # the linked job's finalize, as the app builds its steps: with the background work's start
    steps = workflow.Steps
    start = backdrop_app._start_background_work
    monkeypatch.setattr(workflow, "Steps", lambda s3, job_store: steps(s3, job_store, start_report_rewrite=start))
    _run_job(store, linked_id)

    def sources() -> list[str | None]:
        body = boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key(OWNER, JOB_ID, "json"))["Body"]
        return [o.get("source") for o in json.loads(body.read())["images"][0]["outputs"]]

    assert len(large) == 1 and sources() == [None, None]  # handed off: the finalize did not write it
    client.lambda_.invoke("background_work", large[0])
    assert sources() == [None, None, "REGENERATED"]
