"""Review before delivery: a job submitted with `reviewHours` waits, after its images are done,
until its owner approves it (or the deadline passes); only then the report and the email.

The workflow's "Wait for the owner's review" task (`lambda:invoke.waitForTaskToken`) calls
`open()`, which keeps the task token on the job item; the owner decides per image (APPROVED or
REJECTED, chalicelib.core.contracts.ReviewDecision) and approves the job, which sends the token's
success. The wait's TimeoutSeconds is the owner's deadline; when it passes the workflow goes on to
the report with the decisions made so far (docs/aws-notes.md#n58-step-functions-task-tokens).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, ReviewDecision, ReviewStatus
from chalicelib.core.errors import BadRequest, Conflict, NotFound, ValidationError, client_error_code, service_failure
from chalicelib.core.wording import deadline_words as deadline_words  # re-exported
from chalicelib.store.jobs import JobStore

REVIEW_FIELD: Final = "reviewHours"
REVIEW_SECONDS_SETTING: Final = "reviewSeconds"
MAX_DECISIONS_PER_REQUEST: Final = contracts.MAX_DECISIONS_PER_REQUEST
# SendTaskSuccess errors meaning the wait is over (its deadline passed, or it was answered)
ENDED_WAIT_ERRORS: Final = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


def parse_review(body: Mapping[str, Any]) -> int | None:
    """POST /jobs `reviewHours`: the owner's deadline for reviewing the results, in hours (None:
    no review, delivered as soon as the images are done). Answers the wait's length in seconds."""
    value = body.get(REVIEW_FIELD)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _problem("reviewHours must be a number of hours, such as 24")
    seconds = round(value * 3600)
    if not contracts.MIN_REVIEW_SECONDS <= seconds <= contracts.MAX_REVIEW_HOURS * 3600:
        raise _problem(f"reviewHours must be from 1 minute to {contracts.MAX_REVIEW_HOURS} hours")
    return int(seconds)


def _decisions(body: Any) -> dict[str, str]:
    """POST /jobs/{jobId}/review's `decisions` (schemas.ReviewRequest is its published shape)."""
    decisions = body.get("decisions") if isinstance(body, dict) else None
    if not isinstance(decisions, dict) or not 1 <= len(decisions) <= MAX_DECISIONS_PER_REQUEST:
        message = f"decisions must map 1 to {MAX_DECISIONS_PER_REQUEST} image ids to APPROVED or REJECTED"
        raise BadRequest(message, details=[{"field": "decisions", "message": message}])
    allowed = {d.value for d in ReviewDecision}
    for image_id, decision in decisions.items():
        # a list or an object is not hashable: `in allowed` alone would raise (a 500)
        if not contracts.IMAGE_ID_RE.match(str(image_id)) or not isinstance(decision, str) or decision not in allowed:
            message = f"decision for {str(image_id)[:40]!r} must be APPROVED or REJECTED"
            raise BadRequest(message, details=[{"field": f"decisions.{image_id}", "message": message}])
    return decisions


def _problem(message: str) -> ValidationError:
    return ValidationError(message, details=[{"field": REVIEW_FIELD, "message": message}])


class ReviewService:
    """Reviews of one owner's jobs, given the job store and the Step Functions client."""

    def __init__(self, store: JobStore, sfn: Any) -> None:
        self.store = store
        self.sfn = sfn

    def open(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The workflow's wait began: keep its token and deadline on the job."""
        job_id = str(event["jobId"])
        if not contracts.is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        seconds = int(event["seconds"])
        deadline = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")
        self.store.open_review(job_id, str(event["taskToken"]), deadline.replace("+00:00", "Z"))
        return {"review": ReviewStatus.WAITING.value, "deadline": deadline}

    def _waiting_job(self, owner: str, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        if not job or job.get("owner") != owner:
            raise NotFound(f"no job {job_id}")
        review = job.get("review") or {}
        if review.get("status") != ReviewStatus.WAITING.value:
            state = review.get("status") or (
                "not under review"
                if not job.get("settings", {}).get(REVIEW_SECONDS_SETTING)
                else "not ready for review yet"
            )
            raise Conflict(f"job {job_id} is {str(state).lower()}: there is nothing to review now")
        return job

    def decide(self, owner: str, job_id: str, body: Any) -> dict[str, Any]:
        """POST /jobs/{jobId}/review: `{"decisions": {imageId: APPROVED|REJECTED}}`."""
        from chalicelib.catalogue import schemas  # pydantic: imported by the routes that write only

        # the body is judged before the job is read: a refused request reads and writes nothing
        decisions = schemas.refuse_with(schemas.ReviewRequest, body, "the review request is not valid", _decisions)
        self._waiting_job(owner, job_id)
        refused = self.store.set_review_decisions(job_id, {k: ReviewDecision(v) for k, v in decisions.items()})
        if refused:
            raise BadRequest(
                f"{len(refused)} image(s) are not results of job {job_id}: {', '.join(refused[:5])}",
                details=[{"imageId": i, "message": "not a succeeded image of this job"} for i in refused],
            )
        return {"jobId": job_id, "decided": len(decisions)}

    def approve(self, owner: str, job_id: str) -> dict[str, Any]:
        """POST /jobs/{jobId}/review/approve: deliver now (rejected results stay out)."""
        job = self._waiting_job(owner, job_id)
        token = job["review"]["token"]
        rejected = self.store.count_review_decisions(job_id).get(ReviewDecision.REJECTED.value, 0)
        # APPROVED is written before the release: the workflow resumes at once, and its report
        # step reads a review still WAITING as a deadline that passed (EXPIRED)
        self.store.close_review(job_id, ReviewStatus.APPROVED)
        try:
            self.sfn.send_task_success(taskToken=token, output=json.dumps({"approved": True, "rejected": rejected}))
        except ClientError as exc:
            if client_error_code(exc) in ENDED_WAIT_ERRORS:
                self.store.close_review(job_id, ReviewStatus.EXPIRED)
                raise Conflict(f"the review of job {job_id} is over: its deadline passed") from exc
            self.store.open_review(job_id, token, job["review"].get("deadline", ""))  # not released: ask again
            raise service_failure(exc, f"could not release job {job_id}") from exc
        return {"jobId": job_id, "review": ReviewStatus.APPROVED.value, "rejected": rejected}

    @staticmethod
    def view(job: Mapping[str, Any]) -> dict[str, Any] | None:
        """What a job view says of its review (never the token)."""
        review = job.get("review")
        if not review and not (job.get("settings") or {}).get(REVIEW_SECONDS_SETTING):
            return None
        out: dict[str, Any] = {"status": (review or {}).get("status", "PENDING")}
        if review and review.get("deadline"):
            out["deadline"] = review["deadline"]
        return out


def is_delivered(image: Mapping[str, Any]) -> bool:
    """A result that goes out: succeeded and not rejected in review."""
    return image.get("status") == ImageStatus.SUCCEEDED.value and image.get("reviewDecision") != (
        ReviewDecision.REJECTED.value
    )
