"""Background work, one mechanism (chalicelib/workflow/background.py): every kind has one recipe,
every start goes through the one worker function and is checked as its invoke by the IAM guard, a
failed run is shown on the job and started again by the sweep, and the reconcile function is no
longer fed hand-made events."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

# fixtures, used by name: `large` (more than two unfinished images), `large_delete` (more than one
# image to delete), `machine` (the stage's state machine, whose runs wait)
from test_cancel_delete import (  # noqa: F401
    BUCKET,
    _Context,
    _finished_job_with_files,
    _h,
    _images,
    _running_job,
    _starts,
    _task,
    large,
    large_delete,
    machine,
)

import app as backdrop_app
from backend.local import iam
from chalicelib.core.contracts import BackgroundWork
from chalicelib.core.functions import BACKGROUND_WORKER
from chalicelib.workflow.background import RECIPES


def _checked(into: list[dict[str, Any]]) -> Any:
    """The transport as the local stack makes it: checked as lambda:InvokeFunction of the worker by
    the calling function's policy (backend/local/iam.py), then collected instead of run."""

    def start(event: dict[str, Any]) -> None:
        iam.check_invoke(BACKGROUND_WORKER)
        into.append(event)

    return start


def test_every_kind_of_background_work_has_one_recipe_and_the_noted_ones_can_be_swept() -> None:
    # START is the stream starter's note (the sweep starts a job left SUBMITTED with its code)
    assert set(RECIPES) == set(BackgroundWork) - {BackgroundWork.START}
    for kind, recipe in RECIPES.items():
        assert recipe.kind is kind
    swept = {kind for kind, recipe in RECIPES.items() if recipe.finished is not None}
    assert swept == {BackgroundWork.CLOSE_CANCELLED, BackgroundWork.DELETE, BackgroundWork.REWRITE_REPORT}
    assert [kind for kind, recipe in RECIPES.items() if recipe.continues] == [BackgroundWork.DELETE]


@pytest.mark.usefixtures("large_delete")
def test_a_large_delete_goes_on_in_runs_each_started_on_the_worker_as_its_policy_allows(
    client, token_for, photo, store, monkeypatch
) -> None:
    """The API's start and the worker's own continuation are each an invoke of the worker, checked
    against the caller's policy: without `start-background` on either, this fails."""
    token = token_for("owner-1")
    job_id = _finished_job_with_files(client, token, store, photo)
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _checked(events))
    assert client.http.delete(f"/jobs/{job_id}", headers=_h(token)).status_code == 202  # as api_handler
    assert [(e["kind"], e["jobId"]) for e in events] == [("DELETE", job_id)]
    # a run that runs short of time starts the next one itself (as background_work)
    first = backdrop_app.app.handler_map["background_work"](events[0], _Context(batches=2))
    assert (first["kind"], first["done"]) == ("DELETE", False) and len(events) == 2 and events[1] == events[0]
    last = backdrop_app.app.handler_map["background_work"](events[1], _Context())
    assert last["done"] is True and len(events) == 2
    assert client.http.get(f"/jobs/{job_id}", headers=_h(token)).status_code == 404


@pytest.mark.usefixtures("machine", "large")
def test_a_failed_run_is_shown_on_the_job_and_the_sweep_starts_it_again(
    client, token_for, photo, store, monkeypatch
) -> None:
    sfn = boto3.client("stepfunctions")
    from chalicelib.delivery.report import Reporter

    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.CLOSE_CANCELLED, started))
    token = token_for("owner-1")
    job_id, _ = _running_job(client, token, photo, store, sfn, count=3)
    answer = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (answer.status_code, answer.json_body["closingBy"]) == (202, "BACKGROUND")

    write = Reporter.write

    def unavailable(self: Reporter, *args: Any) -> Any:
        raise RuntimeError("S3 is unavailable")

    monkeypatch.setattr(Reporter, "write", unavailable)
    with pytest.raises(RuntimeError, match="S3 is unavailable"):  # raised: Lambda's own retries run it again
        backdrop_app.app.handler_map["background_work"](_task(BackgroundWork.CLOSE_CANCELLED, *started[0]), _Context())
    # the failure is on the job at once (before, the closing stayed STARTED as if it were running)
    closing = store.get_job(job_id)["closing"]
    assert closing["status"] == "FAILED" and "S3 is unavailable" in closing["lastError"]
    # so a repeated cancel takes the failed claim and starts it again, as after a failed start
    again = client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"")
    assert (again.status_code, again.json_body["closing"], len(started)) == (202, True, 2)

    monkeypatch.setattr(Reporter, "write", write)
    restarted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.CLOSE_CANCELLED, restarted, run=True))
    # the repeated cancel above took the FAILED claim again; its run was lost: the sweep's 20 minutes
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(minutes=21)
    swept = backdrop_app._reconciler().sweep_background(backdrop_app._background(), now=later)
    assert swept == [{"kind": "CLOSE_CANCELLED", "jobId": job_id, "started": True}]
    assert [i["status"] for i in _images(store, job_id)] == ["CANCELLED"] * 3
    assert store.get_job(job_id)["reportKeys"] and store.background_work() == []


@pytest.mark.usefixtures("machine", "large")
def test_the_reconcile_function_is_sent_execution_ends_only(client, token_for, photo, store, monkeypatch) -> None:
    sfn = boto3.client("stepfunctions")
    """Before, a large cancel's closing was an EventBridge-shaped event the API made up and sent the
    reconcile function; now that function answers nothing to it and the worker does the closing."""
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _starts(BackgroundWork.CLOSE_CANCELLED, started))
    token = token_for("owner-1")
    job_id, _ = _running_job(client, token, photo, store, sfn, count=3)
    assert client.http.post(f"/jobs/{job_id}/cancel", headers=_h(token), body=b"").status_code == 202
    hand_made = {
        "version": "0",
        "id": f"cancel-{job_id}",
        "detail-type": "Backdrop Cancelled Job Closing",
        "source": "backdrop.api",
        "account": "",
        "time": "2026-12-08T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"jobId": job_id, "owner": "owner-1", "bucket": BUCKET},
    }
    assert client.lambda_.invoke("reconcile", hand_made).payload is None
    assert not store.get_job(job_id).get("reportKeys")
    closed = client.lambda_.invoke("background_work", _task(BackgroundWork.CLOSE_CANCELLED, *started[0])).payload
    assert closed == {"kind": "CLOSE_CANCELLED", "jobId": job_id, "jobStatus": "CANCELLED", "reportWritten": True}


def test_a_large_archive_whose_build_cannot_be_started_says_so_and_the_next_request_starts_it(
    client, token_for, store, monkeypatch
) -> None:
    import json

    from test_archive import OWNER, _finished_job, _headers

    from chalicelib.delivery import archive

    job_id = _finished_job(store, archive.SYNC_MAX_FILES + 1)
    token = token_for(OWNER)

    def refused(event: dict[str, Any]) -> None:
        raise RuntimeError("Rate exceeded")

    monkeypatch.setattr(backdrop_app, "start_background", refused)
    answer = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token), body=json.dumps({}))
    assert answer.status_code == 202 and answer.json_body["state"] == "FAILED"
    shown = client.http.get(f"/jobs/{job_id}/archive", headers=_headers(token)).json_body
    assert shown["state"] == "FAILED" and "Rate exceeded" in shown["cause"]
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(backdrop_app, "start_background", _checked(events))
    again = client.http.post(f"/jobs/{job_id}/archive", headers=_headers(token), body=json.dumps({}))
    assert again.json_body["state"] == "BUILDING" and [e["kind"] for e in events] == ["ARCHIVE"]
    built = backdrop_app.app.handler_map["background_work"](events[0], _Context())
    assert built["kind"] == "ARCHIVE" and built["state"] == "READY"
