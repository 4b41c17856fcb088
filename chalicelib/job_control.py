"""Cancel and delete a job, for its owner only; both may be repeated safely.

Cancel: the job becomes CANCELLED (a condition on SUBMITTED / RUNNING, so a job that finished
first is never rewritten), its execution is stopped (StopExecution; the execution name is the job
id, so even a run that is only now starting is found), every image that had not finished ends
CANCELLED, and the report is written as for any finished job. Images that finished keep their
results. A second cancel answers the same.

Closing an image is one DynamoDB transaction (plus its reads): a job with more unfinished images
than `SYNC_CLOSE_LIMIT` could not be closed within API Gateway's 29 s
(docs/aws-notes.md#n16-lambda-and-api-gateway-limits). Its closing, report and webhook are handed
to a background run (the reconciler's function, started without waiting) and the answer says
`closing: true`; the job's counts move to CANCELLED as it works. Only one hand-off is started
(a conditional claim on the job), so a repeated cancel answers the same. If the hand-off cannot
be started, the job is CANCELLED all the same and the reconciler closes it when the stopped
execution's end reaches it (`closingBy: "RECONCILER"`); a repeated cancel tries the hand-off again.

Delete: a finished (or cancelled) job's results, reports and workflow scratch files go, then its
items in the table; `originals=True` also removes the uploaded originals of its images (another
job made from the same uploads, such as a retry, loses them too). The answer says what was
removed; a tombstone keeps that answer for a repeated DELETE. A job still running must be
cancelled first: its workflow would otherwise write results after the delete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib import contracts
from chalicelib.contracts import JobStatus
from chalicelib.errors import Conflict, NotFound, service_failure
from chalicelib.report import Reporter
from chalicelib.starter import execution_arn, stop_execution
from chalicelib.store import JobStore

log = logging.getLogger(__name__)

_TERMINAL_IMAGE: Final = contracts.TERMINAL_IMAGE_STATUSES
S3_DELETE_BATCH: Final = 1000  # DeleteObjects takes at most 1,000 keys
WebhookTrigger = Callable[[str, str], None]
# Starts the closing of a cancelled job (job id, owner, bucket) without waiting for it.
ClosingStarter = Callable[[str, str, str], None]
# Closing one image is a read, a transaction and a re-read: ~3 DynamoDB calls of ~10-30 ms, so
# 100 images take at most ~9 s, leaving the rest of API Gateway's 29 s for stopping the execution
# and writing the report (docs/aws-notes.md#n16-lambda-and-api-gateway-limits). More go to the
# background.
SYNC_CLOSE_LIMIT: Final = 100


class ClosingBy(StrEnum):
    """Who finishes closing a cancelled job that was too large to close inside the request."""

    BACKGROUND = "BACKGROUND"  # the background run the cancel started
    RECONCILER = "RECONCILER"  # the hand-off could not be started: the reconciler finishes it


class ClosingStatus(StrEnum):
    """The job's `closing.status`: the hand-off's state."""

    STARTED = "STARTED"
    FAILED = "FAILED"  # the background run could not be started; a repeated cancel tries again


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
        start_closing: ClosingStarter | None = None,
        sync_close_limit: int | None = None,
    ) -> None:
        self.store = store
        self.start_closing = start_closing
        self.sync_close_limit = SYNC_CLOSE_LIMIT if sync_close_limit is None else sync_close_limit
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
        handed_off = (job.get("closing") or {}).get("status") == ClosingStatus.STARTED.value
        if self.start_closing is not None and (handed_off or self._unfinished(job) > self.sync_close_limit):
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
        """Start the background closing once (the claim); a start that fails is recorded, and the
        answer says the reconciler will finish the closing."""
        job_id, owner = job["jobId"], job["owner"]
        claim = {"status": ClosingStatus.STARTED.value, "since": contracts.utc_now_iso()}
        if self.store.claim_cancel_closing(job_id, claim, ClosingStatus.FAILED.value):
            assert self.start_closing is not None
            try:
                self.start_closing(job_id, owner, self.bucket)
            except Exception as exc:  # the cancellation stands; the reconciler closes the job
                log.warning("could not start the closing of cancelled job %s", job_id, exc_info=True)
                self.store.record_cancel_closing(
                    job_id, {**claim, "status": ClosingStatus.FAILED.value, "lastError": f"{exc}"[:500]}
                )
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
            by = (ClosingBy.RECONCILER if failed else ClosingBy.BACKGROUND).value
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
        if job["status"] not in contracts.TERMINAL_JOB_STATUSES:
            raise Conflict(
                f"job {job_id} is {job['status']}: cancel it first (POST /jobs/{job_id}/cancel), then delete it"
            )
        images = self.store.images(job_id)
        removed: dict[str, Any] = {
            "results": self._delete_prefix(contracts.job_results_prefix(owner, job_id)),
            "reports": self._delete_prefix(contracts.job_reports_prefix(owner, job_id)),
            "scratch": self._delete_prefix(contracts.job_scratch_prefix(job_id)),
            "originals": self._delete_keys(self._originals(owner, images)) if originals else 0,
        }
        tombstone = self.store.delete_job(job_id, owner, removed)
        return self._deleted_answer(tombstone, already=False)

    @staticmethod
    def _deleted_answer(tombstone: dict[str, Any], *, already: bool) -> dict[str, Any]:
        return {
            "jobId": tombstone["jobId"],
            "deleted": True,
            "alreadyDeleted": already,
            "deletedAt": tombstone["deletedAt"],
            "removed": tombstone["removed"],
        }

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except ClientError as exc:
            raise service_failure(exc, f"could not list {prefix}") from exc
        return keys

    def _delete_prefix(self, prefix: str) -> int:
        return self._delete_keys(self._list(prefix))

    def _originals(self, owner: str, images: list[dict[str, Any]]) -> list[str]:
        """The job's originals that still exist: one listing per upload batch, never a key
        outside the owner's uploads."""
        wanted = {str(i.get("key", "")) for i in images}
        batches = sorted({ref.split("/", 1)[0] for ref in (str(i.get("imageRef", "")) for i in images) if "/" in ref})
        present: set[str] = set()
        for upload_id in batches:
            present.update(self._list(f"{contracts.upload_prefix(owner)}{upload_id}/"))
        return sorted(wanted & present)

    def _delete_keys(self, keys: Iterable[str]) -> int:
        """Delete objects, 1,000 per call; counts those that existed or were deleted."""
        keys = list(keys)
        deleted = 0
        for start in range(0, len(keys), S3_DELETE_BATCH):
            batch = keys[start : start + S3_DELETE_BATCH]
            try:
                answer = self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": False}
                )
            except ClientError as exc:
                raise service_failure(exc, "could not delete the job's files") from exc
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise service_failure(
                    ClientError(
                        {"Error": {"Code": first.get("Code"), "Message": first.get("Message")}}, "DeleteObjects"
                    ),
                    f"could not delete {len(errors)} of the job's files (first: {first.get('Key')})",
                )
            deleted += len(answer.get("Deleted") or [])
        return deleted
