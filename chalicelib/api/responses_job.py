"""The answers about a job and its images (GET /jobs, GET /jobs/{jobId}), as pydantic models: see
chalicelib/api/responses.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, create_model

from chalicelib.api.responses_base import (
    Count,
    Counts,
    ImageRef,
    JobId,
    OpenView,
    PassFail,
    Removed,
    ReviewState,
    Time,
    Url,
    VerdictName,
    Verdicts,
    View,
    absent,
)
from chalicelib.catalogue import costs
from chalicelib.catalogue.schemas import JobRequest
from chalicelib.core import contracts
from chalicelib.core.contracts import (
    BackgroundSource,
    ClosingBy,
    ErrorCode,
    ImageStatus,
    JobStatus,
    NotificationStatus,
    PickedBy,
    ReviewDecision,
    VariantSource,
)
from chalicelib.core.scorecard import CheckName, Outcome
from chalicelib.jobs.review import REVIEW_SECONDS_SETTING
from chalicelib.models.base import settings_fields
from chalicelib.store.jobs import MAX_IMAGES_PAGE_SIZE


class Eta(View):
    """when the job's images will be done: planned from the deployment's pace (the Map's concurrency,
    set from the model quota) until enough images finished, then the job's measured rate
    (chalicelib/core/eta.py)"""

    seconds: Count
    finish_at: Time
    images_per_minute: float
    basis: Literal["planned", "measured"]
    remaining: Count
    words: str = absent()


# ---------------------------------------------------------------------------------- a job


class WebhookDelivery(View):
    """what happened to the job's webhook; it never changes the job's status"""

    url: Url
    status: Literal["PENDING", "RETRYING", "DELIVERED", "FAILED", "REFUSED"] = Field(
        description="REFUSED: the URL resolved to a non-public address at send time"
    )
    event: str = absent()
    attempts: Count = absent()
    last_attempt_at: Time = absent()
    delivered_at: Time = absent()
    response_status: int = absent()
    last_error: str = absent()


class Notification(View):
    """what happened to the job's summary email (once one was tried)"""

    status: NotificationStatus = absent()
    by: str = absent("what sent it (the workflow's step or the reconciler)")
    message_id: str = absent("SENT: SNS's message id")
    error: str = absent()
    cause: str = absent()
    at: Time = absent()


class JobCost(View):
    """what the job cost so far, in US dollars"""

    model_calls: Count
    actual_usd: float = absent("what was done so far: the model calls that answered and the quality checks")
    estimate_usd: float = absent("the whole job, as POST /jobs estimated it (`estimate.usd`)")
    budget_usd: float = absent()
    price_per_image_usd: float = absent()
    price_source: str = absent()
    regenerations: Count = absent("regenerations of this job's images added as variants (POST .../regenerate)")
    regenerated_usd: float = absent(
        "what those regenerations cost: billed to their own linked jobs, not in `actualUsd`"
    )


class Review(View):
    """a job submitted with reviewHours: PENDING until its images are done, then WAITING"""

    status: ReviewState
    deadline: Time = absent()


class JobSummary(View):
    name: str | None = None
    closing: bool = absent(
        "a CANCELLED job whose unfinished images and report are still being closed (in the background for a large "
        "job): keep refreshing until false"
    )
    eta: Eta = absent()
    job_id: JobId
    status: JobStatus
    model: str
    created_at: Time
    finished_at: Time | None = None
    image_count: Count
    counts: Counts
    prompt: str | None = None
    cause: str = absent("why a job FAILED without running")
    notify: bool = absent("false: no email when this job is done (POST /jobs `notify`)")
    cancelled_at: Time = absent()
    notification: Notification = absent()
    webhook: WebhookDelivery = absent()
    verdicts: Verdicts = absent()
    cost: JobCost = absent()
    review: Review = absent()
    retry_of: JobId = absent("the job whose failed images this one sends again")
    retried_as: JobId = absent("the one retry of this job's failed images")


class JobPage(View):
    jobs: list[JobSummary]
    next_cursor: str | None


class ScorecardCheck(OpenView):
    """one check; its measured figures (e.g. `psnrDb`) are further properties"""

    check: CheckName
    outcome: Outcome
    reason: str = Field(description="one line a person understands")


class ReRoll(View):
    """present when a check is at reRollOn or worse (docs/quality.md#what-a-re-roll-can-fix)"""

    helps: bool = Field(description="whether a new background can fix the failing checks")
    review: bool = Field(description="sent to review instead of re-rolled")
    reason: str = Field(description="why, in one line")


class Scorecard(View):
    """the result's quality scorecard (docs/quality.md)"""

    outcome: Outcome = Field(description="the worst outcome of the checks that ran (SKIPPED only if none ran)")
    checks: list[ScorecardCheck]
    re_roll: ReRoll = absent()


class ComplianceCheck(View):
    rule: str = absent()
    outcome: PassFail = absent()
    reason: str = absent()
    requirement: str = absent()
    source: str = absent()
    confirmed: bool = absent()


class Compliance(View):
    """the output against every rule of the job's preset"""

    preset: str
    outcome: PassFail
    fill: float = absent()
    checks: list[ComplianceCheck]


class Output(View):
    key: str
    variant: int = Field(ge=1)
    seed: int = absent()
    url: Url
    delivered: bool = absent("the variant that is delivered (archive, report): one per image")
    picked_by: PickedBy = absent("who chose the delivered variant")
    attempt: int = absent("the attempt that made it", ge=1)
    cost_usd: float = absent("its model call and checks")
    source: VariantSource = absent("REGENERATED: made by a regenerate request")
    job_id: JobId = absent("a regenerated variant: the job that made it")
    prompt: str = absent("a regenerated variant: its prompt")
    quality: Scorecard = absent()
    produced_by: str = absent("the model that made it")
    background: BackgroundSource = absent()
    width: int = absent()
    height: int = absent()
    notes: list[str] = absent("what Backdrop did: re-framing, enlargement of the subject or scene")
    compliance: Compliance = absent()
    consistency: dict[str, Any] = absent("what the report compares across a color or scene batch")


class Attempt(View):
    attempt: int = Field(ge=1)
    seed: int = absent()
    outcome: Outcome = absent()
    score: float = absent("colour error (ΔE), lower is better")
    cost_usd: float = absent("its model call(s) and checks")
    quality: list[Scorecard] = absent()
    error_code: ErrorCode = absent("its model call failed (never kept)")
    cause: str = absent()
    kept: bool = Field(description="the attempt whose results are delivered")


class ImageView(View):
    image_id: str
    image_ref: ImageRef = absent()
    name: str
    status: ImageStatus
    error_code: ErrorCode | None = None
    cause: str | None = None
    labels: list[str] = absent()
    prompt: str | None = None
    background: dict[str, Any] | None = Field(None, description="the image's own background, if any")
    verdict: VerdictName | None = None
    review_decision: ReviewDecision | None = None
    original_url: Url = absent()
    outputs: list[Output]
    attempts: list[Attempt] = absent("every attempt at the image (automatic re-rolls; docs/quality.md)")


class Reports(View):
    """presigned, once the job has finished"""

    json_: Url = absent(alias="json")
    csv: Url = absent()


class ReportRewrite(View):
    """while a pick's change is being written into the report (a large job): the report links still
    give the earlier one"""

    status: Literal["STARTED", "FAILED"] = Field(description="STARTED: being written; FAILED: waiting to be started")
    requested_at: str
    last_error: str = absent()


class Deletion(View):
    originals: bool = Field(description="the uploaded originals go too")
    requested_at: Time = absent()
    updated_at: Time = absent("the last batch removed")
    removed: Removed
    deleting_by: ClosingBy = Field(
        description="what finishes the deletion: BACKGROUND (the background_work run the DELETE started) or RECONCILER "
        "(that start failed, or the run stopped: the reconciler's periodic sweep starts it again)"
    )


def _stored_settings() -> Any:
    """What a job stores as its settings: every JobSettings field under its POST /jobs name, of the
    type JobRequest gives it (chalicelib/models/base.py `settings_fields`), with the default filled
    in, and what the server adds (the budget's call cap, the review's wait, a regeneration's link).
    The background is shown as stored: an image background carries its server-derived S3 key."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in JobRequest.model_fields.items()
        if name in settings_fields() and name != "background"
    }
    return create_model(
        "JobSettings",
        __base__=View,
        __doc__="the validated settings the job runs with: its POST /jobs settings, complete",
        background=(dict[str, Any], absent("the job's background (an image's with its S3 key)")),
        budget_usd=(float, absent("the job's budget (POST /jobs `budgetUsd`)", alias=costs.BUDGET_FIELD)),
        max_model_calls=(
            int,
            absent("the model calls the budget pays for (counted by the workflow)", alias=costs.MAX_CALLS_SETTING),
        ),
        review_seconds=(int, absent("POST /jobs `reviewHours`, in seconds", alias=REVIEW_SECONDS_SETTING)),
        regenerates=(
            RegenerateOf,
            absent("a regeneration: the job and image it adds a variant to", alias=contracts.REGENERATES_SETTING),
        ),
        **fields,
    )


class RegenerateOf(View):
    job_id: JobId
    image_id: str


if TYPE_CHECKING:
    StoredSettings = View
else:
    StoredSettings = _stored_settings()


class JobView(JobSummary):
    settings: StoredSettings
    images: list[ImageView] = absent(
        "one page of the job's images, in image-id order (absent with `limit=0`)", max_length=MAX_IMAGES_PAGE_SIZE
    )
    next_cursor: str | None = absent(
        "the `cursor` of the next page of images; null on the last page (absent with `limit=0`)"
    )
    reports: Reports = absent()
    report_rewrite: ReportRewrite = absent()
    deletion: Deletion = absent(
        "a DELETING job's progress (then `images` is empty, with no cursor and no reports); once it is gone, GET "
        "answers 404"
    )
    images_preparing: bool = absent(
        "true while a just-accepted job's images are being written (a few seconds; `counts` already counts them): "
        "`images` is empty and `message` says so"
    )
    message: str = absent("what `imagesPreparing` means, in words")
