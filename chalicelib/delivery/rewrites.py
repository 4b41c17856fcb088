"""A finished job's report written again after a pick, inside the request or in the background.

The report is built from every image item (`Reporter.rewrite`): ~6 ms per image on moto
(`python -m bench.pick`, mostly the Query of the image items), so a 10,000-image job's rewrite
is about a minute there and tens of seconds at best on AWS, past API Gateway's 29 s. Up to `SYNC_REWRITE_LIMIT`
images the pick rewrites it itself; above, it marks the job's `reportRewrite` (when it asked, and
the hand-off's state) and hands the rewrite to the background worker (a `REWRITE_REPORT` task:
chalicelib/workflow/background.py notes, claims and starts it; the worker calls `run`).

Many picks in a row cause few rewrites: a pick made while a rewriter runs only moves
`reportRewrite.requestedAt`; the rewriter notes the request it started from and, when it is done,
clears the mark only if no newer request came (`JobStore.report_rewrite_done`), else it writes
the report once more. A start that fails leaves the mark FAILED and the work noted under the
background partition: the next pick, or the reconciler's sweep, starts it again. Nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundWork, ClosingStatus, ReportRefresh
from chalicelib.store.background import BackgroundStart, BackgroundTask
from chalicelib.store.jobs import JobStore

log = logging.getLogger(__name__)

# Above this many images a pick's report rewrite runs in the background: at ~6 ms per image
# (bench/pick.py) 500 images are ~3 s, inside 1/5 of API Gateway's 29 s; 10,000 are not.
SYNC_REWRITE_LIMIT: Final = 500
# A rewriter that has not moved for this long is taken as gone and started again by the next pick
# or the sweep: longer than the longest rewrite (~a minute for 10,000 images) with a margin.
REWRITE_STALE_AFTER_S: Final = 900
# What the pick's answer and the job's mark say when the rewrite could not be started
START_FAILED: Final = "the report rewrite could not be started"
# One run writes the report at most this many times; picks still arriving after that are left to
# the next pick (which finds the mark stale or done) or the sweep.
MAX_ROUNDS: Final = 5


def iso(moment: datetime) -> str:
    """The rewrite mark's timestamps, compared as strings: one format (microseconds) for all of them."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hand_off(
    store: JobStore, start: BackgroundStart | None, job_id: str, owner: str, bucket: str
) -> tuple[ReportRefresh, str | None]:
    """A pick on a large finished job: the rewrite recorded, and started unless one is running
    (`start`: chalicelib/workflow/background.py `Background.start`). Answers REWRITING, or
    REWRITE_PENDING with the reason the start failed."""
    if start is None:  # no background here: noted, so the sweep (or the next pick) writes it
        store.note_background_work(BackgroundWork.REWRITE_REPORT, job_id, owner, bucket)
        return ReportRefresh.REWRITE_PENDING, f"{START_FAILED}: no background worker is configured"
    handoff = start(BackgroundTask(BackgroundWork.REWRITE_REPORT, job_id, owner, bucket))
    if handoff.error is not None:  # noted and marked FAILED: the next pick or the sweep starts it
        return ReportRefresh.REWRITE_PENDING, f"{START_FAILED}: {handoff.error}"[:500]
    return ReportRefresh.REWRITING, None  # started, or the running rewriter writes it again after this pick


def run(store: JobStore, reporter: Any, job_id: str, owner: str, bucket: str) -> dict[str, Any]:
    """The background rewriter: write the report until it reflects every pick made before the
    write began (`reporter` is a chalicelib.delivery.report.Reporter). Idempotent: run twice, it writes
    the same report or finds nothing to do."""
    rounds = 0
    for _ in range(MAX_ROUNDS):
        job = store.get_job(job_id)
        pending: Mapping[str, Any] = (job or {}).get("reportRewrite") or {}
        finished = job is not None and job.get("status") in {s.value for s in contracts.TERMINAL_JOB_STATUSES}
        if job is None or job.get("owner") != owner or not pending or not finished or not job.get("reportKeys"):
            if job is not None and pending and not finished:  # deleting: its report is going anyway
                store.report_rewrite_done(job_id, str(pending.get("requestedAt")))
            store.background_work_done(BackgroundWork.REWRITE_REPORT, job_id)
            return {"jobId": job_id, "rewrites": rounds, "current": True}
        requested = str(pending.get("requestedAt"))
        # its sign of life: a pick made now waits for this run instead of starting another
        store.record_report_rewrite(job_id, status=ClosingStatus.STARTED.value, since=iso(datetime.now(UTC)))
        reporter.rewrite(job_id, owner, bucket)
        rounds += 1
        if store.report_rewrite_done(job_id, requested):
            store.background_work_done(BackgroundWork.REWRITE_REPORT, job_id)
            return {"jobId": job_id, "rewrites": rounds, "current": True}
        # a pick arrived while the report was written: write it again
    store.record_report_rewrite(job_id, status=ClosingStatus.FAILED.value, lastError="picks kept arriving")
    return {"jobId": job_id, "rewrites": rounds, "current": False}


def stranded(job: Mapping[str, Any] | None, now: datetime | None = None) -> bool:
    """Whether a job's pending rewrite needs starting again (its start failed, or it stopped)."""
    pending = (job or {}).get("reportRewrite") or {}
    if not pending:
        return False
    if pending.get("status") != ClosingStatus.STARTED.value:
        return True
    now = now or datetime.now(UTC)
    return str(pending.get("since") or "") < iso(datetime.fromtimestamp(now.timestamp() - REWRITE_STALE_AFTER_S, UTC))
