"""Cancel and delete a job, for its owner only; both may be repeated safely.

Cancel: the job becomes CANCELLED (a condition on SUBMITTED / RUNNING, so a job that finished
first is never rewritten), its execution is stopped (StopExecution; the execution name is the job
id, so even a run that is only now starting is found), every image that had not finished ends
CANCELLED, and the report is written as for any finished job. Images that finished keep their
results. A second cancel answers the same.

Delete: a finished (or cancelled) job's results, reports and workflow scratch files go, then its
items in the table; `originals=True` also removes the uploaded originals of its images (another
job made from the same uploads, such as a retry, loses them too). The answer says what was
removed; a tombstone keeps that answer for a repeated DELETE. A job still running must be
cancelled first: its workflow would otherwise write results after the delete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib import contracts
from chalicelib.contracts import JobStatus
from chalicelib.errors import Conflict, NotFound, service_failure
from chalicelib.report import Reporter
from chalicelib.starter import execution_arn, stop_execution
from chalicelib.store import JobStore

log = logging.getLogger(__name__)

S3_DELETE_BATCH: Final = 1000  # DeleteObjects takes at most 1,000 keys
WebhookTrigger = Callable[[str, str], None]


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
    ) -> None:
        self.store = store
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
        # write the report. A repeat after a failure here finishes the work.
        arn = job.get("executionArn") or execution_arn(self.state_machine_arn, job_id)
        try:
            stop_execution(self.sfn, arn)
        except ClientError as exc:
            raise service_failure(
                exc, f"job {job_id} is marked CANCELLED but its workflow could not be stopped"
            ) from exc
        Reporter(self.s3, self.store).write(job_id, owner, self.bucket)
        job = self._own_job(owner, job_id)
        self._send_webhook(job)
        return self._cancelled_answer(job)

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
        return {
            "jobId": job["jobId"],
            "status": job["status"],
            "cancelledAt": job.get("cancelledAt"),
            "counts": job.get("counts"),
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
