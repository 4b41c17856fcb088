"""The response bodies of Backdrop's API, declared once as pydantic models.

The request bodies are chalicelib/catalogue/schemas.py; these are what the routes answer. The
OpenAPI document's response components are generated from them (`RESPONSE_MODELS`, chalicelib/api/openapi.py), and the
functional tests validate the API's real answers against them (`problems_in()`), so the document
and the views cannot drift: every model is closed (`extra="forbid"`), and a view that emits a field
no model declares is caught. Where an answer is open on purpose (a scorecard check's measured
figures, a preset's rules) the model says so (`extra="allow"` or a dict). Closed answers and the
`$ref` siblings pydantic writes are OpenAPI 3.1's
(docs/aws-notes.md#n118-openapi-31-schema-ref-siblings-and-closed-answers).

A field that may be absent is declared with `absent()` (its own type, not nullable: absent is not
null); a field that may be null says `| None`.

Three modules: chalicelib/api/responses_base.py (the closed object, `absent()`, identifiers,
counts), chalicelib/api/responses_job.py (a job and its images: GET /jobs and GET /jobs/{jobId}) and
this one (every other answer, the list the document is generated from, `problems_in()`). Here
rather than beside the request models (chalicelib/catalogue/) because the answers carry limits
owned by the packages above the catalogue (the store's page size, the deleter's kinds, the report
rewrite's threshold). Imported by the OpenAPI document and the tests only, never by a route.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final, Literal

from pydantic import BaseModel, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from chalicelib.api.responses_base import Count, Counts, ImageRef, JobId, Removed, Time, Url, View, absent
from chalicelib.api.responses_job import (
    Compliance,
    Deletion,
    Eta,
    ImageView,
    JobPage,
    JobSummary,
    JobView,
    RegenerateOf,
    Scorecard,
    WebhookDelivery,
)
from chalicelib.core.contracts import ClosingBy, ErrorCode, JobStatus, PickedBy, ReportRefresh
from chalicelib.delivery.rewrites import SYNC_REWRITE_LIMIT

# -------------------------------------------------------------------------------- errors


class ErrorDetail(View):
    field: str = absent("where, e.g. `images[3].prompt`")
    message: str = absent()
    code: str = absent("a stable reason where one applies, e.g. BACKGROUND_INVALID, PLACEMENT_INVALID")
    index: Count = absent()
    name: str = absent()
    image_ref: str = absent()
    reasons: list[str] = absent()
    labels: list[str] = absent()


class Error(View):
    code: ErrorCode = Field(description="stable: branch on it")
    message: str = Field(description="for humans; may change")
    details: list[ErrorDetail] = Field(
        description="every problem found, e.g. one per field or per file (empty when none)"
    )


# ------------------------------------------------------------------------------- catalogue


class Health(View):
    status: Literal["ok"]
    app_url: str | None = absent("the deployment's web app (a job's page is <appUrl>/job?job=<jobId>), or null")


class Lifecycle(View):
    status: Literal["ACTIVE", "LEGACY", "EOL"]
    legacy_date: str | None = None
    eol_date: str | None = None
    source: str = absent()
    checked_with: str = absent()


class ModelLimits(View):
    prompt_max: int = absent()
    prompt_required: bool = absent()
    negative_prompt_max: int = absent()
    seed_max: int = absent()
    max_variants: int = absent("variants a job may ask for")
    variants_per_call: int = absent("variants one model call returns")
    cfg_scale: list[float] | None = None
    qualities: list[str] = absent()
    style_presets: list[str] = absent()
    image: dict[str, Any] = absent()


class Model(View):
    key: str
    family: str
    display_name: str = absent()
    model_ids: dict[str, str] = absent()
    lifecycle: Lifecycle
    limits: ModelLimits
    price_per_image_usd: float = absent()
    compose_price_per_image_usd: float = absent(
        "per image with a color, image, transparent or scene background (one call)"
    )
    call_prices_usd: dict[str, float] = absent()
    re_roll_price_usd: float = absent("what one re-roll of an image costs (its last model call again)")
    price_source: str = absent()
    price_date: str = absent()
    notes: str = absent()
    role: Literal["job", "scene"] = absent("scene: generates a scene background once per batch")
    selectable: bool = Field(
        description="accepted by POST /jobs now: not at end of life, and callable from this Region"
    )
    regions: list[str] = absent("the Regions the model can be called from (models.json)")
    unavailable_here: str | None = None


class ModelList(View):
    models: list[Model]
    default: str
    region: str = absent("the deployment's Region, which `selectable` is for")
    images_in_flight: Count = absent(
        "images the workflow works on at once (its Map's MaxConcurrency, set from the model quota at deploy): what "
        "an ETA before submit is planned from (chalicelib/core/eta.py)"
    )


class PresetList(View):
    """each preset's key, displayName, what it applies and its rules (source, date, confirmed)"""

    presets: list[dict[str, Any]]


# --------------------------------------------------------------------------- uploads, labels


class Rejection(View):
    field: str = absent()
    index: Count
    name: str
    message: str
    reasons: list[str]


class Upload(View):
    index: int = Field(description="the file's position in the request")
    image_ref: ImageRef
    name: str
    url: Url = Field(description="POST the file here as multipart/form-data")
    fields: dict[str, str] = Field(description="form fields to send before the `file` field, unchanged")


class UploadGrant(View):
    upload_id: str
    expires_in: int = absent("seconds the upload URLs stay valid")
    uploads: list[Upload]
    rejected: list[Rejection]


class Box(View):
    """fractions of the image's width and height"""

    left: float = Field(ge=0, le=1)
    top: float = Field(ge=0, le=1)
    width: float = Field(ge=0, le=1)
    height: float = Field(ge=0, le=1)


class Instance(View):
    box: Box
    confidence: float


class Label(View):
    name: str
    confidence: float = Field(ge=0, le=100)
    instances: list[Instance]
    parents: list[str]


class Unavailable(View):
    code: Literal[ErrorCode.LABELS_UNAVAILABLE]
    message: str


class Labels(View):
    labels: dict[str, list[Label]]
    unavailable: dict[str, Unavailable] = Field(
        description="images label detection cannot read, and why; they can still be processed"
    )
    pending: list[ImageRef] = Field(
        description="refs not answered this time (still being detected, or past one answer's size): ask again for these"
    )


# ------------------------------------------------------------------------------ submitting


class ModelCalls(View):
    per_image_prompt: Count = absent()
    per_image_compose: Count = absent()
    scene: Count = absent()
    total: Count = absent()


class Estimate(View):
    """what the job will cost: its model calls (before retries) and quality checks (registry prices;
    docs/models.md)"""

    images: Count = absent()
    prompt_images: Count = absent()
    compose_images: Count = absent()
    model_calls: ModelCalls = absent()
    usd: float = Field(description="the model calls and the quality checks")
    model_usd: float = absent()
    checks_usd: float = absent("Rekognition's checks, at most")
    re_rolls: Count = absent()
    max_usd: float = Field(
        description="if every prompt image were re-rolled `reRolls` times (composed backgrounds are not)"
    )
    sentence: str = Field(description="the same, in words")


class Submitted(View):
    job_id: JobId
    status: Literal[JobStatus.SUBMITTED]
    image_count: Count
    model: str
    retry_of: JobId = absent("POST /jobs/{jobId}/retry: the job retried")
    estimate: Estimate = absent()
    eta: Eta = absent()
    name: str | None = None


# ------------------------------------------------------------------------ acting on a job


class ReportLink(View):
    format: Literal["json", "csv"]
    url: Url
    expires_in: int


class Cancelled(View):
    job_id: JobId
    status: Literal[JobStatus.CANCELLED]
    cancelled_at: Time = absent()
    counts: Counts
    closing: bool = Field(
        description="true (with 202) while a large job's unfinished images are still being closed and its report "
        "written after the answer; its counts move to CANCELLED meanwhile"
    )
    closing_by: ClosingBy | None = Field(
        None,
        description="what finishes the closing: BACKGROUND (started by the cancel) or RECONCILER (the background "
        "run could not be started or stopped: the reconciler closes the job when the stopped workflow's end "
        "reaches it, or at its periodic sweep); null when not closing",
    )


class Deleted(View):
    job_id: JobId
    deleted: bool = Field(description="true once the job and its files are gone (200)")
    deleting: bool = Field(
        description="true (with 202) while a large job's files and records are removed in the background; repeat "
        "the DELETE (or GET the job) for its progress"
    )
    status: Literal[JobStatus.DELETING] = absent("while deleting")
    deleting_by: ClosingBy = absent("while deleting: what finishes it (see `Deletion`)")
    already_deleted: bool = Field(description="true when an earlier DELETE removed it")
    deleted_at: Time | None = Field(description="null while deleting")
    image_count: Count = absent()
    originals: bool = absent("while deleting: the uploaded originals go too")
    requested_at: Time = absent()
    updated_at: Time = absent()
    removed: Removed


class Archive(View):
    state: Literal["NONE", "BUILDING", "READY", "FAILED"]
    kind: str
    url: Url = absent("presigned, short-lived (READY)")
    expires_in: int = absent()
    bytes: Count = absent()
    done: Count = absent()
    total: Count = absent()
    cause: str = absent()
    missing_originals: list[str] = absent(
        "originals left out because S3 no longer has them (uploads expire before results); names in the zip, the "
        "first 100 (the zip's MISSING-ORIGINALS.txt lists all)"
    )
    missing_originals_count: Count = absent()


class ReviewRecorded(View):
    job_id: JobId
    decided: Count


class Regenerating(View):
    job_id: JobId = Field(description="the linked one-photo job making it: follow it")
    status: Literal[JobStatus.SUBMITTED]
    image_count: Literal[1] = absent()
    model: str = absent()
    estimate: Estimate = absent()
    eta: Eta = absent()
    name: str | None = None
    regenerate_of: RegenerateOf
    seed: int
    prompt: str = absent()
    follow: str = Field(description="GET this path for the linked job's progress")


class Picked(View):
    job_id: JobId
    image_id: str
    delivered: int = Field(ge=1, description="the variant now delivered")
    picked_by: Literal[PickedBy.OWNER]
    outputs: list[dict[str, Any]] = Field(description="the image's variants as stored (GET the job for their links)")
    report: ReportRefresh = Field(
        description="REWRITTEN: the finished job's report was written again with the pick; REWRITING: a job of more "
        f"than {SYNC_REWRITE_LIMIT} images, its report is being written again in the background (the job's "
        "`reportRewrite` until it is done); REWRITE_PENDING: that rewrite could not be started (`reportError` says "
        "why), the next pick or the reconciler's sweep starts it; AT_NEXT_BUILD: the report is not written yet and "
        "will carry it"
    )
    report_error: str = absent("with REWRITE_PENDING: why the rewrite did not start")


class ReviewApproved(View):
    job_id: JobId
    review: Literal["APPROVED"]
    rejected: Count


class WebhookSecret(View):
    secret: str = Field(pattern="^whsec_")
    created_at: Time


class Links(View):
    job: str = absent()
    report: str = absent()


class WebhookEvent(View):
    event: Literal["job.finished"]
    delivery_id: str = Field(description="the same on every retry of this event")
    job_id: JobId
    status: JobStatus
    model: str = absent()
    image_count: Count = absent()
    counts: Counts
    created_at: Time = absent()
    finished_at: Time | None = None
    links: Links = absent()


RESPONSE_MODELS: Final[tuple[type[BaseModel], ...]] = (
    Error,
    JobId,
    ImageRef,
    Health,
    ModelList,
    PresetList,
    UploadGrant,
    Label,
    Labels,
    Estimate,
    Compliance,
    Submitted,
    WebhookDelivery,
    Counts,
    JobSummary,
    JobPage,
    ImageView,
    Scorecard,
    JobView,
    Removed,
    Deletion,
    ReportLink,
    Cancelled,
    Deleted,
    Archive,
    ReviewRecorded,
    Regenerating,
    Picked,
    ReviewApproved,
    WebhookSecret,
    WebhookEvent,
)
BY_NAME: Final = {model.__name__: model for model in RESPONSE_MODELS}


@functools.cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def problems_in(model: type[BaseModel], answer: Any) -> list[str]:
    """Every way `answer` (a decoded JSON answer) is not `model`: `where: what` each, empty when it fits."""
    try:
        _adapter(model).validate_json(json.dumps(answer), strict=True)
    except PydanticValidationError as exc:
        return [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)]
    return []
