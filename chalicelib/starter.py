"""Start the workflow when a job is inserted (DynamoDB stream → manifest in S3 → StartExecution).

Streams deliver at least once, so this is idempotent: the manifest is written to the same key
with the same content, and the execution name is the job id, so Step Functions itself refuses a
second run of the same job. A job that cannot start ends FAILED with the reason; the stream only
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

from chalicelib import contracts
from chalicelib.contracts import JobStatus
from chalicelib.errors import THROTTLING_CODES, RetryPolicy, client_error_code, client_error_message
from chalicelib.store import JobStore, plain

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
# On top of the SDK's own retries; well inside the starter's 300 s (chalicelib/functions.py).
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
    ) -> None:
        self.s3 = s3
        self.store = store
        self.sfn = stepfunctions
        self.bucket = bucket
        self.state_machine_arn = state_machine_arn
        self.sleep = sleep

    def manifest(self, job_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for item in self.store.images(job_id):
            entry = {"imageId": item["imageId"], "key": item["key"], "name": item.get("name") or item["imageId"]}
            for optional in ("labels", "boxes", "prompt", "background"):
                if item.get(optional):
                    entry[optional] = item[optional]
            items.append(entry)
        items.sort(key=lambda e: e["imageId"])  # same records, same manifest bytes
        return items

    def start(self, job: Mapping[str, Any]) -> str | None:
        """Write the manifest and start the execution; returns its ARN (None if it already ran, or
        could not start). A job that cannot start ends FAILED with its cause, never stays
        SUBMITTED: only a failure to record that (the table itself failing) is raised, for the
        stream to deliver the record again."""
        job = plain(dict(job))
        job_id = job["jobId"]
        current = self.store.get_job(job_id)
        if current is None or current.get("status") in _NOT_TO_START:
            # cancelled before it started (the cancel closes it, or hands its closing off), or
            # deleted, or being deleted
            log.info("job %s is %s; not started", job_id, (current or {}).get("status", "gone"))
            return None
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
