"""Start the workflow when a job is inserted (DynamoDB stream → image items → manifest in S3 →
StartExecution).

POST /jobs writes the job item alone, with the S3 key of its image records (`imagesPending`): the
starter writes the image items first, at the partition's pace (JobStore.write_images), then says
so on the job, then writes the manifest and starts the execution. Until then no one else writes
an image item (a cancel leaves the closing to this: chalicelib/jobs/control.py), so writing them
again is safe. A job cancelled before or while its images are written gets them CANCELLED, its
counts set, and its closing (the report) started; a job deleted meanwhile loses what was written.

Streams deliver at least once, so this is idempotent: images already written are not written
again (the job says so), the manifest is written to the same key with the same content, and the
execution name is the job id, so Step Functions itself refuses a second run of the same job. A job that cannot start ends FAILED with the reason; the stream only
sees an error when that cannot be recorded (and then retries a bounded number of times, bisects
the batch and sends what is left to the failure queue: backend/stream_trigger.py).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, JobStatus
from chalicelib.core.errors import THROTTLING_CODES, RetryPolicy, client_error_code, client_error_message
from chalicelib.store.jobs import CANCELLED_CAUSE, IMAGE_WRITE_UNITS_PER_S, JobStore, NewImage, plain

log = logging.getLogger(__name__)
_deserializer = TypeDeserializer()


def job_inserts(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The new job items among stream records (event name INSERT, sort key JOB); others are ignored."""
    jobs = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        new_image = (record.get("dynamodb") or {}).get("NewImage") or {}
        if new_image.get("sk", {}).get("S") != contracts.JOB_SK:
            continue
        jobs.append(plain({k: _deserializer.deserialize(v) for k, v in new_image.items()}))
    return jobs


# StartExecution errors that waiting may cure (docs/aws-notes.md#n47-step-functions-startexecution-errors);
# any other refusal (a missing or deleted state machine, access denied, bad input) fails the job
# at once, with the error in its cause.
RETRYABLE_START_ERRORS: Final = THROTTLING_CODES | {
    "ExecutionLimitExceeded",  # too many open executions: some will finish
    "KmsThrottlingException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "InternalError",
}
# On top of the SDK's own retries; well inside the starter's 300 s (chalicelib/core/functions.py).
START_RETRY: Final = RetryPolicy(interval_s=2, max_attempts=4, max_delay_s=16)


class StartRefused(Exception):
    """Step Functions did not start the execution; the message says why."""


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:...:stateMachine:M + name → arn:...:execution:M:name."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def _describe(exc: BaseException) -> str:
    code = client_error_code(exc)
    return f"{code}: {client_error_message(exc)}" if code else f"{type(exc).__name__}: {exc}"


# A job in one of these statuses is never started (nor left running if it started meanwhile).
_NOT_TO_START: Final = frozenset({JobStatus.CANCELLED.value, JobStatus.DELETING.value})
# While a job's images are written, its status is read again after this many items (a cancel or a
# delete meanwhile stops the PENDING writes): every ~2 s at a partition's 1,000 items a second.
STATUS_CHECK_ITEMS: Final = 2000
# Starts the closing (report, webhook) of a cancelled job: (job id, owner, bucket), not waiting.
ClosingStarter = Callable[[str, str, str], None]
CANCEL_ERROR = "Backdrop.Cancelled"  # the error name a stopped execution carries


def stop_execution(stepfunctions: Any, execution_arn: str, cause: str = "cancelled by its owner") -> bool:
    """StopExecution; False when there is no such execution (it never started)."""
    try:
        stepfunctions.stop_execution(executionArn=execution_arn, error=CANCEL_ERROR, cause=cause)
    except ClientError as exc:
        if client_error_code(exc) == "ExecutionDoesNotExist":
            return False
        raise
    return True


class WorkflowStarter:
    def __init__(
        self,
        s3: Any,
        store: JobStore,
        stepfunctions: Any,
        bucket: str,
        state_machine_arn: str,
        sleep: Callable[[float], None] = time.sleep,
        start_closing: ClosingStarter | None = None,
        write_units_per_s: float = IMAGE_WRITE_UNITS_PER_S,
    ) -> None:
        self.s3 = s3
        self.store = store
        self.sfn = stepfunctions
        self.bucket = bucket
        self.state_machine_arn = state_machine_arn
        self.sleep = sleep
        self.start_closing = start_closing
        self.write_units_per_s = write_units_per_s

    @staticmethod
    def _entries(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for item in items:
            entry = {"imageId": item["imageId"], "key": item["key"], "name": item.get("name") or item["imageId"]}
            for optional in ("labels", "boxes", "prompt", "background"):
                if item.get(optional):
                    entry[optional] = item[optional]
            entries.append(entry)
        entries.sort(key=lambda e: e["imageId"])  # same records, same manifest bytes
        return entries

    def manifest(self, job_id: str) -> list[dict[str, Any]]:
        return self._entries(plain(item) for item in self.store.images(job_id))

    def start(self, job: Mapping[str, Any]) -> str | None:
        """Write the manifest and start the execution; returns its ARN (None if it already ran, or
        could not start). A job that cannot start ends FAILED with its cause, never stays
        SUBMITTED: only a failure to record that (the table itself failing) is raised, for the
        stream to deliver the record again."""
        job = plain(dict(job))
        job_id = job["jobId"]
        current = self.store.get_job(job_id)
        manifest: list[dict[str, Any]] | None = None
        if current is not None and current.get(contracts.JOB_IMAGES_PENDING_ATTRIBUTE):
            written = self.write_images(current)
            if written is None:
                return None
            current, manifest = written
        if current is None or current.get("status") in _NOT_TO_START:
            # cancelled before it started (the cancel closes it, or hands its closing off), or
            # deleted, or being deleted
            log.info("job %s is %s; not started", job_id, (current or {}).get("status", "gone"))
            return None
        if manifest is None:  # its images were written before (a repeated record), or by put_job
            manifest = self.manifest(job_id)
        if not manifest:
            self.store.fail_job(job_id, "the job has no images")
            return None
        manifest_key = contracts.manifest_key(job_id)
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=manifest_key, Body=json.dumps(manifest).encode(), ContentType="application/json"
            )
        except (ClientError, BotoCoreError) as exc:  # after the SDK's own retries
            self._could_not_start(job_id, f"its image list could not be written to S3 ({_describe(exc)})")
            return None
        execution_input = {
            "jobId": job_id,
            "owner": job["owner"],
            "bucket": self.bucket,
            "manifestKey": manifest_key,
            "settings": job["settings"],
            "imageCount": len(manifest),
            "notify": job.get("notify") is not False,  # the owner's email, unless they declined it
        }
        try:
            # UTF-8, not \\u escapes: Step Functions counts the input's bytes (at most 262,144), and an
            # escaped 4-byte character takes 12 (docs/aws-notes.md#n73-the-256-kib-state-payload-as-emulated)
            text = json.dumps(execution_input, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            execution_arn = self._start_execution(job_id, text)
        except StartRefused as exc:
            self._could_not_start(job_id, str(exc))
            return None
        # False when the workflow has already finished and written its final status (kept), or
        # when the job was cancelled while it started: then the run is stopped at once
        if not self.store.mark_running(job_id, execution_arn):
            latest = self.store.get_job(job_id)
            if latest is None or latest.get("status") in _NOT_TO_START:
                stop_execution(self.sfn, execution_arn)
                return None
        return execution_arn

    def write_images(self, job: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """Write the job's image items from the records POST /jobs left in S3; the job as it is
        afterwards and its manifest entries, or None when there is nothing more to do (it cannot
        start, or it is gone)."""
        job_id = job["jobId"]
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=job[contracts.JOB_IMAGES_PENDING_ATTRIBUTE])["Body"]
            images = [NewImage.from_record(r) for r in json.loads(body.read())]
        except (ClientError, BotoCoreError, ValueError, KeyError, TypeError) as exc:
            # after the SDK's own retries; the job cannot run without its images
            self._could_not_start(job_id, f"its image list could not be read from S3 ({_describe(exc)})")
            return None
        expires = int(job[contracts.TTL_ATTRIBUTE])
        status = JobStatus(job["status"])
        while True:
            cancelled = status is JobStatus.CANCELLED
            items = self.store.image_items(
                job_id,
                images,
                expires=expires,
                status=ImageStatus.CANCELLED if cancelled else ImageStatus.PENDING,
                cause=CANCELLED_CAUSE if cancelled else None,
            )
            if status not in (JobStatus.SUBMITTED, JobStatus.CANCELLED):
                self._remove(job_id, items)  # gone, or failed: no image items without a job to run
                return None
            if not self._write(job_id, items, cancelled):
                status = self._status(job_id)  # it changed while the PENDING items were written
                continue
            counts = None
            if cancelled:
                counts = {s.value: (len(items) if s is ImageStatus.CANCELLED else 0) for s in ImageStatus}
            done = self.store.images_written(job_id, status, counts)
            if done is not None:
                break
            latest = self.store.get_job(job_id)
            if latest is not None and not latest.get(contracts.JOB_IMAGES_PENDING_ATTRIBUTE):
                done = latest  # already said by an earlier delivery of this record
                status = JobStatus(latest["status"])
                break
            status = self._status(job_id)  # cancelled (or gone) meanwhile: once more as that
        if status is JobStatus.CANCELLED:
            if counts is not None:  # this run wrote them CANCELLED: the closing is started here
                self._close_cancelled(done)
            return None
        return done, self._entries(plain(item) for item in items)

    def _write(self, job_id: str, items: list[dict[str, Any]], cancelled: bool) -> bool:
        """Write the items; PENDING ones in slices with the job's status read after each: False
        as soon as it is no longer SUBMITTED. CANCELLED ones all at once (earlier PENDING ones
        are written again as CANCELLED: no one else writes a job's images before they are all
        written)."""
        step = len(items) if cancelled else STATUS_CHECK_ITEMS
        pacer = self.store.write_pacer(self.write_units_per_s)  # one pace across the slices
        for start in range(0, len(items), step):
            self.store.write_images(items[start : start + step], pacer=pacer)
            if not cancelled and self._status(job_id) is not JobStatus.SUBMITTED:
                return False
        return True

    def _status(self, job_id: str) -> JobStatus:
        """The job's status now; a job that is gone counts as DELETING."""
        latest = self.store.get_job(job_id)
        return JobStatus(latest["status"]) if latest else JobStatus.DELETING

    def _remove(self, job_id: str, items: list[dict[str, Any]]) -> None:
        """The job went (or is going) while its images were written: what was written goes too."""
        log.info("job %s went while its images were written; removing %d image item(s)", job_id, len(items))
        self.store.delete_items([{"pk": i["pk"], "sk": i["sk"]} for i in items])

    def _close_cancelled(self, job: Mapping[str, Any]) -> None:
        """Cancelled before its images were written: the cancel left the closing (report, webhook)
        to be started here; if it cannot be, the reconciler's sweep does it (the cancel noted it)."""
        log.info("job %s was cancelled before it started; its images were written CANCELLED", job["jobId"])
        if self.start_closing is None or not job.get("closing"):
            return  # the cancel has not handed its closing over yet: it, or the sweep, closes it
        try:
            self.start_closing(job["jobId"], job["owner"], self.bucket)
        except Exception:  # the sweep closes it: the cancel noted the closing as background work
            log.warning("could not start the closing of cancelled job %s", job["jobId"], exc_info=True)

    def _start_execution(self, job_id: str, execution_input: str) -> str:
        """StartExecution, retrying what waiting may cure (throttling, a service fault) with
        backoff and full jitter. ExecutionAlreadyExists means the job is running: its ARN is
        the state machine's with the job id as the name."""
        for attempt in range(START_RETRY.max_attempts + 1):
            if attempt:
                self.sleep(random.uniform(0, START_RETRY.delays_s()[attempt - 1]))
            try:
                response = self.sfn.start_execution(
                    stateMachineArn=self.state_machine_arn, name=job_id, input=execution_input
                )
            except (ClientError, BotoCoreError) as exc:
                code = client_error_code(exc) or type(exc).__name__
                if code == "ExecutionAlreadyExists":
                    log.info("job %s already has an execution; repeated stream record ignored", job_id)
                    return execution_arn(self.state_machine_arn, job_id)
                if code not in RETRYABLE_START_ERRORS and not isinstance(exc, BotoCoreError):
                    raise StartRefused(f"Step Functions refused to start it ({_describe(exc)})") from exc
                last = exc
                continue
            return str(response["executionArn"])
        raise StartRefused(
            f"Step Functions kept refusing to start it ({_describe(last)}): retried {START_RETRY.max_attempts} "
            f"times over about {START_RETRY.expected_wait_s():.0f} s; submit it again"
        )

    def _could_not_start(self, job_id: str, why: str) -> None:
        log.warning("job %s could not start: %s", job_id, why)
        self.store.fail_job(job_id, f"the job could not start: {why}")

    def handle_records(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        started = []
        for job in job_inserts(records):
            arn = self.start(job)
            if arn:
                started.append(arn)
        return started
