"""No job left behind: when an execution ends, its job ends too, with a true report and one email.

The workflow reports and emails by itself. But a step can be unavailable for longer than every
retry budget (the app side down for minutes, S3 or SNS refusing), and an execution can be
stopped or time out: then images stay PENDING or RUNNING, the report is never written and the
job never leaves RUNNING. Step Functions sends an "Execution Status Change" event for every
execution that ends (SUCCEEDED, FAILED, TIMED_OUT, ABORTED); an EventBridge rule hands it to
the reconciler, which

1. closes every image that never finished: FAILED, WORKFLOW_STOPPED, with a cause naming how the
   execution ended;
2. writes the report and the job's final status if the workflow did not (the same Reporter, so
   the report is the one the workflow would have written);
3. sends the job's one email if the workflow did not publish it (the execution history says
   whether its Notify step succeeded), claimed by a conditional write so a repeated event sends
   nothing twice;
4. when it closed the job itself, starts the job's webhook (if it has one that was not sent):
   the workflow ended before its webhook step.

EventBridge delivers Step Functions events on a best-effort basis, so a scheduled sweep also
reconciles every execution that ended within its look-back window (`sweep`); the event, the
history and the delivery are described in docs/aws-notes.md#n39-step-functions-execution-status-events.

The sweep also finishes work handed to the background worker that never ran or stopped half-way
(`sweep_background`): every hand-off is noted under the table's background partition before it
starts, and each note's recipe (chalicelib/workflow/background.py) says whether its work is
finished (the note goes) or stranded (started again by the same `Background.start`): a cancelled
job left without its closing (its start failed, or it was cancelled before its execution existed,
so no execution's end will come), a job left DELETING, a large job's report rewrite after a pick.

Nothing is left SUBMITTED either. POST /jobs notes every job's start under the same partition
before it writes the job (a Query of one partition finds them: no table scan, no index on the
status). The stream's starter normally starts it within seconds; a job still SUBMITTED
SUBMITTED_RESTART_AFTER later (the trigger failing, its records parked in the stream-failures
queue, the starter refused) is started by the sweep through the starter's own entry point
(`WorkflowStarter.start`: the same idempotent start, its execution named after the job), and one
still SUBMITTED past SUBMITTED_DEADLINE is failed with a cause that says so. The note goes once
the job has left SUBMITTED. The operator hears of it from the alarms on the stream-failures queue
and the starter's errors (docs/aws-notes.md#n76-jobs-left-submitted-and-the-alarms-that-say-so).

Running it again changes nothing: every write is conditional or rewrites the same content.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundWork, ErrorCode, JobStatus, NotificationStatus
from chalicelib.core.errors import client_error_code
from chalicelib.delivery.notify import NotificationSender, Notifier
from chalicelib.delivery.report import Reporter
from chalicelib.store.jobs import JobStore
from chalicelib.workflow.background import Background, start_webhook

log = logging.getLogger(__name__)

EXECUTION_STATUS_CHANGE: Final = contracts.EXECUTION_STATUS_CHANGE
ENDED_STATUSES: Final = contracts.EXECUTION_ENDED_STATUSES
MAX_CAUSE_LENGTH: Final = 2000
# Backdrop's executions run minutes to hours; the sweep stops listing at executions started this
# long before its window.
MAX_EXECUTION_AGE: Final = timedelta(days=7)
# The sweep starts a job left SUBMITTED itself only with this much of its own time left.
SWEEP_CLOSE_SECONDS: Final = 300.0
# A job the stream's starter should have started within seconds: started by the sweep once it
# has waited this long. Longer than the starter's own run (300 s) and a few of the stream's
# retries; starting a job that is being started meanwhile is safe (the execution is named after
# the job: Step Functions refuses a second one, chalicelib/workflow/starter.py).
SUBMITTED_RESTART_AFTER: Final = timedelta(minutes=15)
# ... and failed, with its cause, when it is still SUBMITTED this long after its submit: four
# sweeps have tried to start it, and its owner is told rather than left waiting.
SUBMITTED_DEADLINE: Final = timedelta(hours=2)
_TERMINAL_JOB: Final = frozenset(s.value for s in contracts.TERMINAL_JOB_STATUSES)
# an email that was sent, that the owner declined, or that has nobody to go to: nothing left to do
_EMAIL_SETTLED: Final = frozenset(
    s.value for s in (NotificationStatus.SENT, NotificationStatus.SKIPPED, NotificationStatus.NO_SUBSCRIPTION)
)
# The error of statemachine/backdrop.asl.json's "Report could not be written" Fail state
REPORT_FAILED_ERROR: Final = "Backdrop.ReportFailed"
_HOW_IT_ENDED: Final = {
    "SUCCEEDED": "the workflow ended without finishing this image: its steps could not run or record their "
    "outcome (a service was unavailable for longer than every retry)",
    "FAILED": "the workflow failed before this image finished",
    "TIMED_OUT": "the workflow timed out before this image finished",
    "ABORTED": "the workflow was stopped before this image finished",
}


@dataclass(frozen=True)
class ExecutionEnd:
    """An execution that ended, as the reconciler needs it (from the event or DescribeExecution)."""

    execution_arn: str
    status: str
    job_id: str
    owner: str
    bucket: str
    error: str | None = None
    cause: str | None = None

    @classmethod
    def from_description(cls, described: Mapping[str, Any]) -> ExecutionEnd | None:
        """From an event's `detail` or a DescribeExecution answer; None if it is not an ended
        Backdrop execution (another state machine's, still running, or an input we did not write)."""
        status = str(described.get("status") or "")
        if status not in ENDED_STATUSES:
            return None
        try:
            execution_input = json.loads(described.get("input") or "{}")
        except ValueError:
            return None
        if not isinstance(execution_input, dict):
            return None
        job_id = execution_input.get("jobId")
        owner, bucket = execution_input.get("owner"), execution_input.get("bucket")
        if not isinstance(job_id, str) or not contracts.is_job_id(job_id):
            return None
        if not isinstance(owner, str) or not isinstance(bucket, str):
            return None
        if described.get("name") not in (None, job_id) or described.get("mapRunArn"):
            return None  # a Distributed Map child (its input names the job too): only the job's own execution counts
        return cls(
            execution_arn=str(described.get("executionArn") or ""),
            status=status,
            job_id=job_id,
            owner=owner,
            bucket=bucket,
            error=described.get("error") or None,
            cause=described.get("cause") or None,
        )

    def unfinished_cause(self) -> str:
        if self.status == "FAILED" and self.error == REPORT_FAILED_ERROR:
            # the report's Fail state ends an execution only after every image's branch ended: an
            # image still unfinished then was stopped by its own steps, not by the report; blame
            # what failed (issue #26: a 400 s outage's images were blamed on the report)
            return f"{_HOW_IT_ENDED['SUCCEEDED']}; the workflow could not write the report either"[:MAX_CAUSE_LENGTH]
        text = _HOW_IT_ENDED[self.status]
        if self.error or self.cause:
            detail = ": ".join(part for part in (self.error, self.cause) if part)
            text = f"{text} ({detail})"
        return text[:MAX_CAUSE_LENGTH]


@dataclass(frozen=True)
class Outcome:
    job_id: str
    execution_status: str
    job_status: str | None
    report_written: bool
    email: str  # what happened to the email: SENT, WORKFLOW (it sent it), HELD (another sender), SKIPPED, NO_JOB

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "executionStatus": self.execution_status,
            "jobStatus": self.job_status,
            "reportWritten": self.report_written,
            "email": self.email,
        }


class Reconciler:
    """Given the JobStore, a Reporter, a Notifier and a Step Functions client."""

    def __init__(
        self,
        store: JobStore,
        reporter: Reporter,
        notifier: Notifier,
        stepfunctions: Any,
        webhook_trigger: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.reporter = reporter
        self.notifier = notifier
        self.sfn = stepfunctions
        self.webhook_trigger = webhook_trigger

    # ------------------------------------------------------------------ entry points

    def handle_event(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        """An EventBridge "Execution Status Change" event (the only events this function is sent)."""
        if event.get("detail-type") != EXECUTION_STATUS_CHANGE:
            return None
        detail = dict(event.get("detail") or {})
        if detail.get("status") in ENDED_STATUSES and not detail.get("input") and detail.get("executionArn"):
            # the event leaves out an input over its size limit: ask for it
            detail = {**detail, **self.sfn.describe_execution(executionArn=detail["executionArn"])}
        end = ExecutionEnd.from_description(detail)
        if end is None:
            log.info("not an ended Backdrop execution: %s", detail.get("executionArn"))
            return None
        return self.reconcile(end).to_dict()

    def sweep(self, state_machine_arn: str, since: datetime) -> list[dict[str, Any]]:
        """Reconcile every execution that ended since `since` (events are best effort)."""
        outcomes = []
        for status in ENDED_STATUSES:
            for listed in self._executions(state_machine_arn, status, since):
                if self._settled(str(listed.get("name"))):  # the execution name is the job id
                    continue
                end = ExecutionEnd.from_description(self.sfn.describe_execution(executionArn=listed["executionArn"]))
                if end is not None:
                    outcomes.append(self.reconcile(end).to_dict())
        return outcomes

    def sweep_background(
        self,
        background: Background | None,
        time_left: Callable[[], float] | None = None,
        now: datetime | None = None,
        start_job: Callable[[Mapping[str, Any]], str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Finish the work noted under the background partition: a job left SUBMITTED is started
        (`start_job(job)`: the starter's entry point) or failed past its deadline; every other
        note goes to its recipe (`background.resume`: finished → the note goes, stranded → started
        again)."""
        now = now or datetime.now(UTC)
        outcomes = []
        for note in self.store.background_work():
            job_id = str(note["jobId"])
            kind = BackgroundWork(note["kind"])
            job = self._job(job_id)
            if kind is BackgroundWork.START:
                outcome = self._start_submitted(note, job, now, start_job, time_left)
                if outcome is not None:
                    outcomes.append({"kind": kind.value, "jobId": job_id, **outcome})
            elif background is None:
                outcomes.append(
                    {"kind": kind.value, "jobId": job_id, "started": False, "error": "no background worker"}
                )
            else:
                resumed = background.resume(note, job, now)
                if resumed is not None:
                    outcomes.append(resumed)
        return outcomes

    def _start_submitted(
        self,
        note: Mapping[str, Any],
        job: Mapping[str, Any] | None,
        now: datetime,
        start_job: Callable[[Mapping[str, Any]], str | None] | None,
        time_left: Callable[[], float] | None,
    ) -> dict[str, Any] | None:
        """A job noted at submit: nothing when it has left SUBMITTED (the note goes) or is young;
        started when its start is overdue; failed past its deadline. None: nothing was done."""
        job_id = str(note["jobId"])
        if job is None or job.get("status") != JobStatus.SUBMITTED.value:
            self.store.background_work_done(BackgroundWork.START, job_id)  # started, ended, or never written
            return None
        waited = now - _moment(note.get("notedAt") or job.get("createdAt"), now)
        if waited <= SUBMITTED_RESTART_AFTER:
            return None  # the stream's starter is (or may still be) on it
        minutes = int(waited.total_seconds() // 60)
        if waited > SUBMITTED_DEADLINE:
            cause = (
                f"the job could not start: it was still waiting to start {minutes} minutes after it was submitted "
                f"(the starter never started it and the sweep could not either; the operator's alarms say why). "
                f"Submit it again."
            )
            failed = self.store.fail_job(job_id, cause)
            if failed:
                log.warning("job %s failed: still SUBMITTED after %s minutes", job_id, minutes)
            self.store.background_work_done(BackgroundWork.START, job_id)
            return {"started": False, "failed": failed, "waitedMinutes": minutes}
        if start_job is None:
            return {"started": False, "error": "no starter is configured"}
        if time_left is not None and time_left() < SWEEP_CLOSE_SECONDS:
            return None  # the next sweep
        log.warning("job %s still SUBMITTED after %s minutes: the sweep starts it", job_id, minutes)
        try:
            arn = start_job(job)
        except Exception as exc:  # noted still: the next sweep tries again, until the deadline
            log.warning("the sweep could not start job %s", job_id, exc_info=True)
            return {"started": False, "error": f"{exc}"[:500], "waitedMinutes": minutes}
        after = self._job(job_id)
        if after is None or after.get("status") != JobStatus.SUBMITTED.value:
            self.store.background_work_done(BackgroundWork.START, job_id)
        return {
            "started": arn is not None,
            "waitedMinutes": minutes,
            "status": (after or {}).get("status", "GONE"),
            **({"executionArn": arn} if arn else {}),
        }

    # ------------------------------------------------------------------ the work

    def reconcile(self, end: ExecutionEnd) -> Outcome:
        job = self._job(end.job_id)
        if job is None or job.get("owner") != end.owner:
            log.warning("execution %s ended but job %s is not in the table", end.execution_arn, end.job_id)
            return Outcome(end.job_id, end.status, None, False, "NO_JOB")
        if job.get("status") == JobStatus.DELETING.value:  # its owner deleted it: nothing to report
            return Outcome(end.job_id, end.status, job["status"], False, "SKIPPED")
        report_written = False
        summary: dict[str, Any] | None = None
        if job.get("status") not in _TERMINAL_JOB or not job.get("reportKeys"):
            summary = self.reporter.build(
                {
                    "jobId": end.job_id,
                    "owner": end.owner,
                    "bucket": end.bucket,
                    # what the report and the email say happened to the workflow
                    "mapError": {"Error": f"Execution.{end.status}", "Cause": end.unfinished_cause()},
                },
                unfinished_code=ErrorCode.WORKFLOW_STOPPED,
                unfinished_cause=end.unfinished_cause(),
            )
            report_written = True
            log.info("job %s closed after its execution ended %s", end.job_id, end.status)
            self._webhook(end.job_id, end.owner)
        email = self._email(end, job, summary)
        return Outcome(
            end.job_id, end.status, (summary or {}).get("status") or job.get("status"), report_written, email
        )

    def _webhook(self, job_id: str, owner: str) -> None:
        start_webhook(self.store, self.webhook_trigger, job_id, owner)

    def _email(self, end: ExecutionEnd, job: Mapping[str, Any], summary: Mapping[str, Any] | None) -> str:
        if job.get("notify") is False:
            self.notifier.record(end.job_id, NotificationStatus.SKIPPED, NotificationSender.RECONCILER)
            return NotificationStatus.SKIPPED.value
        notification = job.get("notification") or {}
        if notification.get("status") == NotificationStatus.SENT.value:
            return "WORKFLOW" if notification.get("by") == NotificationSender.WORKFLOW.value else notification["status"]
        if notification.get("status") == NotificationStatus.NO_SUBSCRIPTION.value:
            return NotificationStatus.NO_SUBSCRIPTION.value  # the owner has no topic: nothing to send to
        if end.execution_arn and self._workflow_published(end.execution_arn):
            self.notifier.record(end.job_id, NotificationStatus.SENT, NotificationSender.WORKFLOW)
            return "WORKFLOW"
        if summary is None:  # the workflow's report stands: mail what it says
            report = self.reporter.load(end.bucket, end.owner, end.job_id)
            if report is None:  # listed but missing: write it again
                summary = self.reporter.build({"jobId": end.job_id, "owner": end.owner, "bucket": end.bucket})
                subject, message = summary["subject"], summary["message"]
            else:
                subject, message = Reporter.summary(report, end.bucket, end.owner)
        else:
            subject, message = summary["subject"], summary["message"]
        sent = self.notifier.send_once(end.job_id, end.owner, subject, message, NotificationSender.RECONCILER)
        return sent.value if sent else "HELD"

    # ------------------------------------------------------------------ reads

    def _job(self, job_id: str) -> dict[str, Any] | None:
        return self.store.get_job(job_id)

    def _settled(self, job_id: str) -> bool:
        """Final status, a report and an email that was sent, declined or has nobody to go to: nothing to do."""
        job = self._job(job_id)
        if job is None or job.get("status") == JobStatus.DELETING.value:
            return True  # not a Backdrop job, long gone or being deleted: nothing to reconcile
        notification = (job.get("notification") or {}).get("status")
        return job.get("status") in _TERMINAL_JOB and bool(job.get("reportKeys")) and notification in _EMAIL_SETTLED

    def _workflow_published(self, execution_arn: str) -> bool:
        """Whether the execution's Notify step published (an SNS publish task succeeded)."""
        try:
            for event in self._history(execution_arn):
                details = event.get("taskSucceededEventDetails") or {}
                if event.get("type") == "TaskSucceeded" and details.get("resourceType") == "sns":
                    return True
        except ClientError as exc:
            if client_error_code(exc) != "ExecutionDoesNotExist":
                raise
        return False

    def _history(self, execution_arn: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            yield from page.get("events", [])
            if not page.get("nextToken"):
                return
            kwargs["nextToken"] = page["nextToken"]

    def _executions(self, state_machine_arn: str, status: str, since: datetime) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "statusFilter": status, "maxResults": 1000}
        while True:
            page = self.sfn.list_executions(**kwargs)
            executions = page.get("executions", [])
            yield from (e for e in executions if e.get("stopDate") is None or e["stopDate"] >= since)
            # newest first: once a page reaches executions started long before the window, stop
            oldest_start = min((e["startDate"] for e in executions if e.get("startDate")), default=None)
            if not page.get("nextToken") or (oldest_start is not None and oldest_start < since - MAX_EXECUTION_AGE):
                return
            kwargs["nextToken"] = page["nextToken"]


def _moment(value: Any, default: datetime) -> datetime:
    """An ISO time as an aware datetime (`default` when it is missing or not a time)."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return default
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
