"""Cancel and delete a job, for its owner only; both may be repeated safely.

Cancel: the job becomes CANCELLED (a condition on SUBMITTED / RUNNING, so a job that finished
first is never rewritten), its execution is stopped (StopExecution; the execution name is the job
id, so even a run that is only now starting is found), every image that had not finished ends
CANCELLED, and the report is written as for any finished job. Images that finished keep their
results. A second cancel answers the same.

Closing an image is one DynamoDB transaction (plus its reads): a job with more unfinished images
than `SYNC_CLOSE_LIMIT` could not be closed within API Gateway's 29 s
(docs/aws-notes.md#n16-lambda-and-api-gateway-limits). Its closing, report and webhook are handed
to the background worker (chalicelib/workflow/background.py, started without waiting) and the answer says
`closing: true`; the job's counts move to CANCELLED as it works. Only one hand-off is started
(a conditional claim on the job), so a repeated cancel answers the same. If the hand-off cannot
be started, the job is CANCELLED all the same and the reconciler closes it: when the stopped
execution's end reaches it, or at its next periodic sweep, which also closes a job cancelled
before its execution existed (`closingBy: "RECONCILER"`); a repeated cancel tries the hand-off
again.

Delete: a finished (or cancelled) job becomes DELETING (so GET answers it as such, and nothing
can be started on it), then its originals (only with `originals=True`: another job made from the
same uploads, such as a retry, loses them too), results, reports, workflow scratch files and
image items go in bounded batches (chalicelib/workflow/deletion.py), and the job item gives way to a
tombstone that keeps the answer (what was removed) for a repeated DELETE. A job of at most
`SYNC_DELETE_LIMIT` images is deleted inside the request (within a deadline: what does not fit
goes to the background too); a larger one is handed to the background worker, started without
waiting, and the answer is 202 `deleting: true` with the progress, as is a repeated DELETE until
it is done. If that start fails, the reconciler's sweep starts it again (`deletingBy:
"RECONCILER"`). A job still running must be cancelled first: its workflow would otherwise write
results after the delete; so must a cancelled job's background closing have finished (its report).

Both hand-offs are noted under the table's background partition before they start (by
`Background.start`, and the delete's note also before the job is marked), so the reconciler's
sweep finds any that never started or stopped half-way (chalicelib/workflow/background.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundWork, ClosingBy, ClosingStatus, JobStatus
from chalicelib.core.errors import Conflict, NotFound, service_failure
from chalicelib.delivery.report import Reporter
from chalicelib.store.background import BackgroundStart, BackgroundTask
from chalicelib.store.jobs import JobStore
from chalicelib.workflow.deletion import JobDeleter, deleting_view, new_deletion
from chalicelib.workflow.starter import execution_arn, stop_execution

log = logging.getLogger(__name__)

_TERMINAL_IMAGE: Final = contracts.TERMINAL_IMAGE_STATUSES
WebhookTrigger = Callable[[str, str], None]
# Closing one image is a read, a transaction and a re-read: ~3 DynamoDB calls of ~10-30 ms, so
# 100 images take at most ~9 s, leaving the rest of API Gateway's 29 s for stopping the execution
# and writing the report (docs/aws-notes.md#n16-lambda-and-api-gateway-limits). More go to the
# background.
SYNC_CLOSE_LIMIT: Final = 100
# Deleting is per batch, not per image: a listing and one DeleteObjects per 1,000 files, one query
# and 40 BatchWriteItem calls per 1,000 image items, so 1,000 images (their results, reports and
# scratch files, their items, and originals if asked) are a few such batches: seconds. Measured on
# moto, 10,000 images took 26 s without originals and 215 s with them, against API Gateway's 29 s
# (docs/aws-notes.md#n16-lambda-and-api-gateway-limits): larger jobs go to the background worker.
SYNC_DELETE_LIMIT: Final = 1000
# ... and even a small one stops starting batches inside the request after this long and goes to
# the background: one more batch (chalicelib/workflow/deletion.py BATCH_SECONDS) still ends well before 29 s.
INLINE_DELETE_SECONDS: Final = 15.0


class JobControl:
    def __init__(
        self,
        store: JobStore,
        s3: Any,
        stepfunctions: Any,
        bucket: str,
        state_machine_arn: str,
        *,
        webhook_trigger: WebhookTrigger | None = None,
        start_background: BackgroundStart | None = None,
        sync_close_limit: int | None = None,
        sync_delete_limit: int | None = None,
    ) -> None:
        self.store = store
        # a large job's closing and deletion: noted, claimed and started without waiting
        # (chalicelib/workflow/background.py); None: both are done inside the request
        self.start_background = start_background
        self.sync_close_limit = SYNC_CLOSE_LIMIT if sync_close_limit is None else sync_close_limit
        self.sync_delete_limit = SYNC_DELETE_LIMIT if sync_delete_limit is None else sync_delete_limit
        self.s3 = s3
        self.sfn = stepfunctions
        self.bucket = bucket
        self.state_machine_arn = state_machine_arn
        self.webhook_trigger = webhook_trigger

    def _own_job(self, owner: str, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        if not job or job.get("owner") != owner:  # another owner's job looks like no job
            raise NotFound(f"no job {job_id}")
        return job

    # ------------------------------------------------------------------ cancel

    def cancel(self, owner: str, job_id: str) -> dict[str, Any]:
        job = self._own_job(owner, job_id)
        if job["status"] == JobStatus.DELETING.value:
            raise Conflict(f"job {job_id} is being deleted; there is nothing to cancel")
        if job["status"] != JobStatus.CANCELLED.value:
            if job["status"] in contracts.TERMINAL_JOB_STATUSES:
                raise Conflict(f"job {job_id} has already finished ({job['status']}); there is nothing to cancel")
            if not self.store.cancel_job(job_id):
                job = self._own_job(owner, job_id)  # it finished, or another cancel won
                if job["status"] != JobStatus.CANCELLED.value:
                    raise Conflict(f"job {job_id} finished ({job['status']}) before it could be cancelled")
        elif job.get("reportKeys"):
            return self._cancelled_answer(self._own_job(owner, job_id))
        # Stop the run (found by name even if it is only now starting:
        # docs/aws-notes.md#n50-step-functions-stopexecution), close the unfinished images and
        # write the report (here, or in the background for a large job). A repeat after a failure
        # here finishes the work.
        arn = job.get("executionArn") or execution_arn(self.state_machine_arn, job_id)
        try:
            stop_execution(self.sfn, arn)
        except ClientError as exc:
            raise service_failure(
                exc, f"job {job_id} is marked CANCELLED but its workflow could not be stopped"
            ) from exc
        job = self._own_job(owner, job_id)
        if job.get(contracts.JOB_IMAGES_PENDING_ATTRIBUTE):
            # its image items are still being written by the starter, the one writer of them until
            # they all are: it writes them CANCELLED and starts the closing (chalicelib/workflow/starter.py);
            # noted first, so the reconciler's sweep closes it if that never happens
            if not job.get("closing"):
                self.store.note_background_work(BackgroundWork.CLOSE_CANCELLED, job_id, owner, self.bucket)
                claim = {"status": ClosingStatus.STARTED.value, "since": contracts.utc_now_iso()}
                self.store.hand_closing_to_starter(job_id, claim)
                job = self._own_job(owner, job_id)
            if job.get(contracts.JOB_IMAGES_PENDING_ATTRIBUTE):
                return self._cancelled_answer(job)
            # written meanwhile (before the hand-over): closed here, as usual
        handed_off = (job.get("closing") or {}).get("status") == ClosingStatus.STARTED.value
        if self.start_background is not None and (handed_off or self._unfinished(job) > self.sync_close_limit):
            return self._hand_off(job)  # a repeat while the background run works answers the same
        Reporter(self.s3, self.store).write(job_id, owner, self.bucket)
        job = self._own_job(owner, job_id)
        self._send_webhook(job)
        return self._cancelled_answer(job)

    @staticmethod
    def _unfinished(job: dict[str, Any]) -> int:
        counts = job.get("counts") or {}
        return sum(int(counts.get(s.value) or 0) for s in contracts.ImageStatus if s not in _TERMINAL_IMAGE)

    def _hand_off(self, job: dict[str, Any]) -> dict[str, Any]:
        """Start the background closing once (noted, then claimed); a start that fails is
        recorded, and the answer says the reconciler will finish the closing."""
        job_id, owner = job["jobId"], job["owner"]
        assert self.start_background is not None
        self.start_background(BackgroundTask(BackgroundWork.CLOSE_CANCELLED, job_id, owner, self.bucket))
        return self._cancelled_answer(self._own_job(owner, job_id))

    def _send_webhook(self, job: dict[str, Any]) -> None:
        if not (job.get("webhook") or {}).get("url"):
            return
        if self.webhook_trigger is None:
            self.store.record_webhook(
                job["jobId"], {**job["webhook"], "status": "FAILED", "lastError": "webhooks are not configured here"}
            )
            return
        try:
            self.webhook_trigger(job["jobId"], job["owner"])
        except Exception as exc:  # the cancellation stands; the webhook's failure is recorded
            log.warning("could not start the webhook of job %s", job["jobId"], exc_info=True)
            self.store.record_webhook(
                job["jobId"], {**job["webhook"], "status": "FAILED", "lastError": f"could not be sent: {exc}"[:500]}
            )

    @staticmethod
    def _cancelled_answer(job: dict[str, Any]) -> dict[str, Any]:
        """`closing`: the unfinished images are still being closed (and the report written) after
        this answer; `closingBy` says by what."""
        closing = (job.get("closing") or {}) if not job.get("reportKeys") else {}
        by = None
        if closing:
            failed = closing.get("status") == ClosingStatus.FAILED.value
            by = (
                ClosingBy.RECONCILER if failed or closing.get("by") == ClosingBy.RECONCILER else ClosingBy.BACKGROUND
            ).value
        return {
            "jobId": job["jobId"],
            "status": job["status"],
            "cancelledAt": job.get("cancelledAt"),
            "counts": job.get("counts"),
            "closing": bool(closing),
            "closingBy": by,
        }

    # ------------------------------------------------------------------ delete

    def delete(self, owner: str, job_id: str, *, originals: bool = False) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        if not job or job.get("owner") != owner:
            tombstone = self.store.deleted_job(job_id)
            if tombstone and tombstone.get("owner") == owner:
                return self._deleted_answer(tombstone, already=True)
            raise NotFound(f"no job {job_id}")
        if job["status"] != JobStatus.DELETING.value:
            if job["status"] not in contracts.TERMINAL_JOB_STATUSES:
                raise Conflict(
                    f"job {job_id} is {job['status']}: cancel it first (POST /jobs/{job_id}/cancel), then delete it"
                )
            if job.get("closing") and not job.get("reportKeys"):
                # its closing would write the report after the delete removed the job's files
                raise Conflict(
                    f"job {job_id} is CANCELLED and its unfinished images are still being closed: delete it once "
                    f"GET /jobs/{job_id} shows its reports"
                )
            # noted first: if this request dies after marking the job, the reconciler's sweep finds it
            self.store.note_background_work(BackgroundWork.DELETE, job_id, owner, self.bucket)
            if not self.store.mark_deleting(job_id, owner, new_deletion(originals, ClosingBy.BACKGROUND.value)):
                return self.delete(owner, job_id, originals=originals)  # changed meanwhile: answer as it is now
            job = self._own_job(owner, job_id)
        elif (job.get("deletion") or {}).get("status") == ClosingStatus.STARTED.value and self._handed_off(job):
            return self._deleting_answer(job)  # a background run is on it: its progress
        if int(job.get("imageCount") or 0) <= self.sync_delete_limit or self.start_background is None:
            # small: inside the request, with a deadline; what does not fit goes to the background
            started = time.monotonic()
            run = JobDeleter(self.store, self.s3, self.bucket).run(
                job_id, owner, lambda: INLINE_DELETE_SECONDS - (time.monotonic() - started)
            )
            if run.done and run.tombstone is not None:
                return self._deleted_answer(run.tombstone, already=False)
            if run.done:  # gone meanwhile, not as this owner's: as if it never was
                raise NotFound(f"no job {job_id}")
        return self._hand_off_deletion(self._own_job(owner, job_id))

    @staticmethod
    def _handed_off(job: dict[str, Any]) -> bool:
        return bool((job.get("deletion") or {}).get("handedOffAt"))

    def _hand_off_deletion(self, job: dict[str, Any]) -> dict[str, Any]:
        """Start the background deletion without waiting; a start that fails is recorded and the
        answer says the reconciler's sweep will start it again."""
        job_id, owner = job["jobId"], job["owner"]
        if self.start_background is None:  # no background here: a repeated DELETE goes on
            self.store.record_deletion(job_id, status=ClosingStatus.FAILED.value, lastError="no background deleter")
            return self._deleting_answer(self._own_job(owner, job_id))
        self.start_background(BackgroundTask(BackgroundWork.DELETE, job_id, owner, self.bucket))
        return self._deleting_answer(self._own_job(owner, job_id))

    @staticmethod
    def _deleting_answer(job: dict[str, Any]) -> dict[str, Any]:
        view = deleting_view(job)
        return {
            "jobId": job["jobId"],
            "status": JobStatus.DELETING.value,
            "deleted": False,
            "deleting": True,
            "deletingBy": view.pop("deletingBy"),
            "alreadyDeleted": False,
            "deletedAt": None,
            "imageCount": int(job.get("imageCount") or 0),
            **view,
        }

    @staticmethod
    def _deleted_answer(tombstone: dict[str, Any], *, already: bool) -> dict[str, Any]:
        return {
            "jobId": tombstone["jobId"],
            "deleted": True,
            "deleting": False,
            "alreadyDeleted": already,
            "deletedAt": tombstone["deletedAt"],
            "removed": tombstone["removed"],
        }
