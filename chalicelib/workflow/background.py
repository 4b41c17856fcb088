"""Background work, one mechanism: a recipe per kind, one start, one worker, one sweep.

Work that outlives an API request or a workflow step (a large cancelled job's closing, a large
job's deletion, its report rewritten after a pick, its archive) is a `BackgroundTask` (kind, job,
options) and a `Recipe` in `RECIPES`, which says

- how it is claimed (a conditional write on the job, so one run works on it at a time),
- what the user sees when it fails (`failed`: the job's mark goes FAILED with the error, which the
  API shows as `closingBy`/`deletingBy: RECONCILER`, `report: REWRITE_PENDING` or an archive's
  `FAILED` state),
- when it is finished and when it is stranded (the sweep's two questions about a note),
- whether it continues itself (deletion: a run that runs short of time starts the next one).

`Background.start` notes the work under the table's background partition, claims it and starts
the one worker function (`background_work`) with the task's event: today's transport is Lambda's
asynchronous `Invoke` (docs/aws-notes.md#n51-lambda-asynchronous-invocation, N120 for why not a
queue). `Background.run` is that worker: it dispatches by kind, records a failure through the
recipe before Lambda's own retries, and sends a continuation. `Background.resume` is the sweep's
part (chalicelib/workflow/reconciler.py `sweep_background` reads the notes once): a note whose
work is finished goes, one whose work is stranded is started again, by the same `start`.

Adding a kind is a `BackgroundWork` member (chalicelib/core/contracts.py) and a recipe here; its
IAM is the worker's one declaration (chalicelib/core/functions.py). The webhook is not a recipe:
its retries are the workflow's Retry, and after a cancel Lambda's own (docs/reliability.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundWork, ClosingBy, ClosingStatus, JobStatus
from chalicelib.delivery import rewrites
from chalicelib.delivery.archive import ArchiveRequest, ArchiveService, ArchiveState
from chalicelib.delivery.report import Reporter
from chalicelib.store.background import BackgroundTask, Handoff
from chalicelib.store.jobs import JobStore
from chalicelib.workflow.deletion import JobDeleter

log = logging.getLogger(__name__)

Transport = Callable[[dict[str, Any]], None]  # starts the worker on a task's event, without waiting
TimeLeft = Callable[[], float]
WebhookTrigger = Callable[[str, str], None]
Job = Mapping[str, Any] | None

# Background work that has not moved for this long is taken as stranded and started again: longer
# than one run of the worker (900 s, Lambda's longest) with a margin. Starting a run that is in
# fact still alive is safe (every recipe is idempotent), only wasteful.
STRANDED_AFTER: Final = timedelta(minutes=20)
MAX_ERROR: Final = 500


def _moved_before(progress: Mapping[str, Any], field: str, now: datetime, after: timedelta) -> bool:
    """Whether the last sign of life `progress[field]` (an ISO time) is older than `after`."""
    try:
        moved = datetime.fromisoformat(str(progress.get(field)).replace("Z", "+00:00"))
    except ValueError:
        return True
    if moved.tzinfo is None:
        moved = moved.replace(tzinfo=UTC)
    return now - moved > after


def start_webhook(store: JobStore, trigger: WebhookTrigger | None, job_id: str, owner: str) -> None:
    """Start the job's webhook when it has one that nothing sent yet; a failure to start it is
    recorded on the job and never stops the caller."""
    webhook = (store.get_job(job_id) or {}).get("webhook") or {}
    if not webhook.get("url") or webhook.get("status") not in (None, "PENDING"):
        return
    if trigger is None:
        store.record_webhook(job_id, {**webhook, "status": "FAILED", "lastError": "webhooks are not configured"})
        return
    try:
        trigger(job_id, owner)
    except Exception as exc:
        log.warning("could not start the webhook of job %s", job_id, exc_info=True)
        store.record_webhook(job_id, {**webhook, "status": "FAILED", "lastError": f"could not be sent: {exc}"[:500]})


@dataclass(frozen=True)
class Recipe:
    kind: BackgroundWork
    run: Callable[[Background, BackgroundTask, TimeLeft | None], dict[str, Any]]
    # the claim: False when a run is already on it (nothing is started); None: the caller claimed it
    claim: Callable[[Background, BackgroundTask, ClosingBy], bool] | None
    failed: Callable[[Background, BackgroundTask, str], None]  # what the user sees when it fails
    finished: Callable[[Job], bool] | None  # None: not noted, so never swept (an archive)
    stranded: Callable[[Mapping[str, Any], datetime], bool]
    continues: bool = False  # a run answering `done: False` starts the next one


class Background:
    """Given the JobStore, the transport that starts the worker, an S3 client and the webhook trigger."""

    def __init__(
        self, store: JobStore, transport: Transport, s3: Any = None, webhook_trigger: WebhookTrigger | None = None
    ) -> None:
        self.store = store
        self.transport = transport
        self.s3 = s3
        self.webhook_trigger = webhook_trigger

    def start(self, task: BackgroundTask, by: ClosingBy = ClosingBy.BACKGROUND, *, note: bool = True) -> Handoff:
        """Note the work (first: if the start never happens, the sweep finds it), claim it, start
        the worker. A start that fails is recorded through the recipe and answered, never raised.
        `note` False: started again from its note (the sweep)."""
        recipe = RECIPES[task.kind]
        if note and recipe.finished is not None:
            self.store.note_background_work(task.kind, task.job_id, task.owner, task.bucket)
        if recipe.claim is not None and not recipe.claim(self, task, by):
            return Handoff(claimed=False)
        try:
            self.transport(task.to_event())
        except Exception as exc:
            log.warning("could not start %s of job %s", task.kind.value, task.job_id, exc_info=True)
            error = f"{exc}"[:MAX_ERROR]
            recipe.failed(self, task, error)
            return Handoff(claimed=True, error=error)
        return Handoff(claimed=True)

    def run(self, event: Mapping[str, Any], time_left: TimeLeft | None = None) -> dict[str, Any]:
        """The worker: one task, dispatched by kind. A failure is recorded (the user sees it, the
        sweep restarts it) and raised, so Lambda's asynchronous retries run it again first."""
        task = BackgroundTask.from_event(event)
        recipe = RECIPES[task.kind]
        try:
            result = recipe.run(self, task, time_left)
        except Exception as exc:
            log.exception("%s of job %s failed", task.kind.value, task.job_id)
            recipe.failed(self, task, f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
            raise
        if recipe.continues and result.get("done") is False:
            # the next run goes on; if this start fails the error makes Lambda retry this event
            self.transport(task.to_event())
        return {"kind": task.kind.value, **result}

    def resume(self, note: Mapping[str, Any], job: Job, now: datetime) -> dict[str, Any] | None:
        """The sweep's part for one note: finished work's note goes; stranded work is started
        again (by the reconciler); None when nothing was done."""
        task = BackgroundTask(BackgroundWork(note["kind"]), str(note["jobId"]), str(note["owner"]), str(note["bucket"]))
        recipe = RECIPES[task.kind]
        if recipe.finished is None or recipe.finished(job):
            self.store.background_work_done(task.kind, task.job_id)
            return None
        assert job is not None  # finished(None) is True for every recipe
        if not recipe.stranded(job, now):
            return None  # its run is (or may still be) on it
        handoff = self.start(task, by=ClosingBy.RECONCILER, note=False)
        return {
            "kind": task.kind.value,
            "jobId": task.job_id,
            "started": handoff.started,
            **({"error": handoff.error} if handoff.error else {}),
        }

    # ------------------------------------------------------------------ what runs need

    def reporter(self) -> Reporter:
        return Reporter(self.s3, self.store)

    def archives(self, bucket: str) -> ArchiveService:
        return ArchiveService(self.s3, bucket, self.store)


# ---------------------------------------------------------------------- cancel closing


def _close_cancelled(bg: Background, task: BackgroundTask, time_left: TimeLeft | None) -> dict[str, Any]:
    """A cancelled job's unfinished images end CANCELLED, its report is written and its webhook
    started; nothing when it is not (or no longer) a cancelled job without a report."""
    job = bg.store.get_job(task.job_id)
    if job is None or job.get("owner") != task.owner or job.get("status") != JobStatus.CANCELLED.value:
        return {"jobId": task.job_id, "reportWritten": False}
    if job.get("reportKeys"):
        bg.store.background_work_done(task.kind, task.job_id)
        return {"jobId": task.job_id, "jobStatus": job["status"], "reportWritten": False}
    if job.get(contracts.JOB_IMAGES_PENDING_ATTRIBUTE):
        # cancelled before its image items were all written: the starter still writes them (the
        # only writer until then) and starts this closing when it is done; the note stays
        return {"jobId": task.job_id, "reportWritten": False}
    bg.reporter().write(task.job_id, task.owner, task.bucket)
    log.info("cancelled job %s closed in the background", task.job_id)
    start_webhook(bg.store, bg.webhook_trigger, task.job_id, task.owner)
    bg.store.background_work_done(task.kind, task.job_id)
    return {"jobId": task.job_id, "jobStatus": JobStatus.CANCELLED.value, "reportWritten": True}


def _claim_closing(bg: Background, task: BackgroundTask, by: ClosingBy) -> bool:
    claim = {"status": ClosingStatus.STARTED.value, "since": contracts.utc_now_iso()}
    if by is ClosingBy.RECONCILER:  # the sweep found it stranded: it takes it over
        closing = (bg.store.get_job(task.job_id) or {}).get("closing") or {}
        bg.store.record_cancel_closing(task.job_id, {**closing, **claim, "by": by.value})
        return True
    return bg.store.claim_cancel_closing(task.job_id, claim, ClosingStatus.FAILED.value)


def _closing_failed(bg: Background, task: BackgroundTask, error: str) -> None:
    closing = (bg.store.get_job(task.job_id) or {}).get("closing") or {}
    bg.store.record_cancel_closing(task.job_id, {**closing, "status": ClosingStatus.FAILED.value, "lastError": error})


def _closing_finished(job: Job) -> bool:
    return job is None or job.get("status") != JobStatus.CANCELLED.value or bool(job.get("reportKeys"))


def _closing_stranded(job: Mapping[str, Any], now: datetime) -> bool:
    closing = job.get("closing") or {}
    started = closing.get("status") == ClosingStatus.STARTED.value
    return not started or _moved_before(closing, "since", now, STRANDED_AFTER)


# ---------------------------------------------------------------------- deletion


def _delete(bg: Background, task: BackgroundTask, time_left: TimeLeft | None) -> dict[str, Any]:
    # a run that is alive says so (a failed one said FAILED): the API shows BACKGROUND again
    bg.store.record_deletion(task.job_id, status=ClosingStatus.STARTED.value)
    return JobDeleter(bg.store, bg.s3, task.bucket).run(task.job_id, task.owner, time_left).to_dict()


def _claim_deletion(bg: Background, task: BackgroundTask, by: ClosingBy) -> bool:
    fields: dict[str, Any] = {"by": by.value} if by is ClosingBy.RECONCILER else {}
    return bg.store.record_deletion(
        task.job_id, status=ClosingStatus.STARTED.value, handedOffAt=contracts.utc_now_iso(), **fields
    )


def _deletion_failed(bg: Background, task: BackgroundTask, error: str) -> None:
    bg.store.record_deletion(task.job_id, status=ClosingStatus.FAILED.value, lastError=error)


def _deletion_finished(job: Job) -> bool:
    return job is None or job.get("status") != JobStatus.DELETING.value  # deleted (its tombstone), or never marked


def _deletion_stranded(job: Mapping[str, Any], now: datetime) -> bool:
    deletion = job.get("deletion") or {}
    started = deletion.get("status") == ClosingStatus.STARTED.value
    return not started or _moved_before(deletion, "updatedAt", now, STRANDED_AFTER)


# ---------------------------------------------------------------------- report rewrite


def _rewrite(bg: Background, task: BackgroundTask, time_left: TimeLeft | None) -> dict[str, Any]:
    return rewrites.run(bg.store, bg.reporter(), task.job_id, task.owner, task.bucket)


def _claim_rewrite(bg: Background, task: BackgroundTask, by: ClosingBy) -> bool:
    now = datetime.now(UTC)
    stale = datetime.fromtimestamp(now.timestamp() - rewrites.REWRITE_STALE_AFTER_S, UTC)
    return bg.store.request_report_rewrite(task.job_id, rewrites.iso(now), rewrites.iso(stale))


def _rewrite_failed(bg: Background, task: BackgroundTask, error: str) -> None:
    bg.store.record_report_rewrite(
        task.job_id, status=ClosingStatus.FAILED.value, lastError=f"{rewrites.START_FAILED}: {error}"[:MAX_ERROR]
    )


def _rewrite_finished(job: Job) -> bool:
    return not (job or {}).get("reportRewrite")  # written, or the job is gone


# ---------------------------------------------------------------------- archive


def _archive_request(task: BackgroundTask) -> ArchiveRequest:
    options = task.options
    return ArchiveRequest(task.owner, task.job_id, bool(options.get("originals")), bool(options.get("report")))


def _build_archive(bg: Background, task: BackgroundTask, time_left: TimeLeft | None) -> dict[str, Any]:
    return bg.archives(task.bucket).build(_archive_request(task))


def _archive_failed(bg: Background, task: BackgroundTask, error: str) -> None:
    bg.archives(task.bucket).record_progress(_archive_request(task), ArchiveState.FAILED, cause=error[:300])


RECIPES: Final[Mapping[BackgroundWork, Recipe]] = {
    recipe.kind: recipe
    for recipe in (
        Recipe(
            BackgroundWork.CLOSE_CANCELLED,
            _close_cancelled,
            _claim_closing,
            _closing_failed,
            _closing_finished,
            _closing_stranded,
        ),
        Recipe(
            BackgroundWork.DELETE,
            _delete,
            _claim_deletion,
            _deletion_failed,
            _deletion_finished,
            _deletion_stranded,
            continues=True,
        ),
        Recipe(
            BackgroundWork.REWRITE_REPORT,
            _rewrite,
            _claim_rewrite,
            _rewrite_failed,
            _rewrite_finished,
            lambda job, now: rewrites.stranded(job, now),
        ),
        # its claim is the BUILDING progress object the API writes first (chalicelib/delivery/archive.py);
        # not noted: the next request restarts a build whose progress stopped
        Recipe(BackgroundWork.ARCHIVE, _build_archive, None, _archive_failed, None, lambda job, now: False),
    )
}
