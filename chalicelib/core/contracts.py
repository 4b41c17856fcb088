"""Backdrop's contracts, defined once.

Status names, error codes, limits, identifiers and the S3/DynamoDB key layout live here and
nowhere else: the Chalice app, the workflow Lambdas, the state machine tooling, the front end,
the CLI and the tests all import them.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

# --------------------------------------------------------------------------------------------
# Statuses


class JobStatus(StrEnum):
    SUBMITTED = "SUBMITTED"  # written by POST /jobs; the stream handler has not started it yet
    RUNNING = "RUNNING"  # the state machine execution has started
    COMPLETED = "COMPLETED"  # every image SUCCEEDED
    PARTIAL = "PARTIAL"  # some images SUCCEEDED, some FAILED
    FAILED = "FAILED"  # no image SUCCEEDED (or the workflow could not start)
    CANCELLED = "CANCELLED"  # its owner cancelled it (POST /jobs/{jobId}/cancel); finished images are kept
    # its owner deleted it (DELETE /jobs/{jobId}); its files and records are being removed, then
    # GET answers 404. Not a final status: nothing may be started on it, and it never comes back.
    DELETING = "DELETING"


class ImageStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # the job was cancelled before this image finished


class NotificationStatus(StrEnum):
    """The job's email, as its `notification` says (chalicelib/delivery/notify.py)."""

    SENDING = "SENDING"  # claimed by a sender; the publish has not answered yet
    SENT = "SENT"
    FAILED = "FAILED"  # SNS refused: a later sender may try again
    SKIPPED = "SKIPPED"  # the owner asked for no email (POST /jobs with notify: false)
    # the owner has no job-email topic (a user made without `backend.deploy create-user`, or
    # one deleted): nobody to send to; final, and never a failure of the job
    NO_SUBSCRIPTION = "NO_SUBSCRIPTION"


class Verdict(StrEnum):
    """A finished image's quality verdict: the worst scorecard outcome of its outputs
    (chalicelib.imaging.quality.Outcome), stored on the image so a job's pages can be filtered by it."""

    FAIL = "FAIL"
    WARN = "WARN"
    PASS = "PASS"
    SKIPPED = "SKIPPED"  # no check could run (a model without a cut-out)
    NONE = "NONE"  # a query value only: images with no verdict (not finished, failed, or older jobs)


class ReviewDecision(StrEnum):
    """The owner's decision on one result of a job under review (chalicelib/jobs/review.py)."""

    APPROVED = "APPROVED"
    REJECTED = "REJECTED"  # not delivered: left out of the archive, marked in the report


class ReviewStatus(StrEnum):
    WAITING = "WAITING"  # the workflow waits on its task token for the owner's approval
    APPROVED = "APPROVED"  # the owner released it: the report and email follow
    EXPIRED = "EXPIRED"  # the deadline passed first: delivered as it was, rejections kept


# Review before delivery: the deadline the owner may give, in hours (the workflow's wait is a
# Standard execution's task, which may last up to a year; a week is Backdrop's choice).
MAX_REVIEW_HOURS: Final = 168
# Decisions one POST /jobs/{jobId}/review may carry (Backdrop's choice, not an AWS limit).
MAX_DECISIONS_PER_REQUEST: Final = 100
# a batch name (POST /jobs `name`): shown on the Jobs list, the job page and the CLI
MAX_JOB_NAME_CHARS: Final = 100
MIN_REVIEW_SECONDS: Final = 60


# The gallery's "doubtful first" order: failed images, then results by verdict, worst first.
DOUBTFUL_FIRST: Final = (Verdict.FAIL, Verdict.WARN, Verdict.SKIPPED, Verdict.PASS, Verdict.NONE)


class ClosingBy(StrEnum):
    """Who finishes closing a cancelled job (or deleting a job) that was too large for the request."""

    BACKGROUND = "BACKGROUND"  # the background run the cancel (or delete) started
    RECONCILER = "RECONCILER"  # the hand-off could not be started: the reconciler's sweep finishes it


class ClosingStatus(StrEnum):
    """The job's `closing.status`: the hand-off's state."""

    STARTED = "STARTED"
    FAILED = "FAILED"  # the background run could not be started; the sweep (or a repeat) tries again


TERMINAL_JOB_STATUSES: Final = frozenset(
    {JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED}
)
TERMINAL_IMAGE_STATUSES: Final = frozenset({ImageStatus.SUCCEEDED, ImageStatus.FAILED, ImageStatus.CANCELLED})


class Mode(StrEnum):
    PRECISE = "PRECISE"  # subject pixels are returned unchanged
    DEFAULT = "DEFAULT"  # the model may blend subject edges into the new background


class OutputFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"


class ShadowKind(StrEnum):
    """The shadow drawn under a composited subject (chalicelib.imaging.compose)."""

    NONE = "none"
    SOFT = "soft"  # a blurred drop shadow of the silhouette, offset along the angle
    CONTACT = "contact"  # a short, dark shadow where the subject meets the floor


class BackgroundSource(StrEnum):
    """What goes behind the subject (chalicelib.core.backgrounds has the schema)."""

    PROMPT = "prompt"  # remove-background, then inpaint from the prompt: two model calls
    COLOR = "color"  # a plain colour: remove-background only
    IMAGE = "image"  # the user's own background photo: remove-background only
    TRANSPARENT = "transparent"  # the cut-out with its alpha: remove-background only
    SCENE = "scene"  # one text-to-image background per batch, then remove-background per image


# --------------------------------------------------------------------------------------------
# Error codes: stable strings clients may branch on. The message next to them is for humans.


class ErrorCode(StrEnum):
    # request / API errors
    BAD_REQUEST = "BAD_REQUEST"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"  # API Gateway refused the request (its ACCESS_DENIED, WAF, ...)
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # over API Gateway's 10 MB
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    RATE_LIMITED = "RATE_LIMITED"  # API Gateway throttled the caller: slow down and retry
    GATEWAY_TIMEOUT = "GATEWAY_TIMEOUT"  # the API did not answer within API Gateway's 29 s
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"  # unknown, or end of life
    UPLOAD_MISSING = "UPLOAD_MISSING"  # the image was never uploaded (or has expired)
    REPORT_NOT_READY = "REPORT_NOT_READY"  # the job exists but its report is not written yet
    SERVICE_BUSY = "SERVICE_BUSY"  # an AWS service throttled the request: retry after a pause
    LABELS_UNAVAILABLE = "LABELS_UNAVAILABLE"  # label detection cannot read this image; it may still be processed
    BACKGROUND_INVALID = "BACKGROUND_INVALID"  # a background source, colour or photo Backdrop cannot use
    PLACEMENT_INVALID = "PLACEMENT_INVALID"  # an output size, aspect, fill, anchor or margin out of range
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"  # the key came before with another body
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"  # the first request with this key is still running
    # per-image workflow errors
    IMAGE_INVALID = "IMAGE_INVALID"  # not an image, truncated, animated, unsupported mode ...
    IMAGE_TOO_SMALL = "IMAGE_TOO_SMALL"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"  # bytes or pixels beyond what Backdrop accepts
    NO_SUBJECT = "NO_SUBJECT"  # nothing to keep: no foreground where the kept labels are
    PRESET_UNMET = "PRESET_UNMET"  # the original is too small to meet the job's marketplace preset
    CONTENT_FILTERED = "CONTENT_FILTERED"  # the model's safety filter blocked input or output
    MODEL_REJECTED_REQUEST = "MODEL_REJECTED_REQUEST"  # Bedrock ValidationException
    MODEL_ACCESS_DENIED = "MODEL_ACCESS_DENIED"
    MODEL_THROTTLED = "MODEL_THROTTLED"  # still throttled after every retry
    MODEL_TIMEOUT = "MODEL_TIMEOUT"
    MODEL_ERROR = "MODEL_ERROR"  # service unavailable / internal / model error after retries
    MODEL_RESPONSE_INVALID = "MODEL_RESPONSE_INVALID"  # 200 but no usable image
    STORAGE_ERROR = "STORAGE_ERROR"  # S3 read/write failed
    WORKFLOW_STOPPED = "WORKFLOW_STOPPED"  # the execution ended before the image finished (outage, abort, timeout)
    BUDGET_REACHED = "BUDGET_REACHED"  # the job's budget cap was spent before this image's next model call
    INTERNAL_ERROR = "INTERNAL_ERROR"


# Per-image failures that a second attempt with the same input can fix (throttling, timeouts,
# outages, a bad answer). The rest (an unreadable or too-small image, no subject, the content
# filter, a request the model refuses, no model access) fail the same way again.
RETRYABLE_ERROR_CODES: Final = frozenset(
    {
        ErrorCode.SERVICE_BUSY,
        ErrorCode.MODEL_THROTTLED,
        ErrorCode.MODEL_TIMEOUT,
        ErrorCode.MODEL_ERROR,
        ErrorCode.MODEL_RESPONSE_INVALID,
        ErrorCode.STORAGE_ERROR,
        ErrorCode.INTERNAL_ERROR,
    }
)


# --------------------------------------------------------------------------------------------
# Limits (where each comes from is said next to it)

# API Gateway caps payloads at 10 MB and Lambda's sync payload at 6 MB, so images never pass
# through the API: they go straight to S3 by presigned POST, whose policy enforces this size.
# 15 MB is Rekognition DetectLabels' limit for an S3 object (docs/aws-notes.md#n13-rekognition-detectlabels).
MAX_UPLOAD_BYTES: Final = 15 * 1024 * 1024
MIN_UPLOAD_BYTES: Final = 1
# Decoding more than this many pixels risks Lambda memory; Pillow's own bomb guard is ~89 MP.
MAX_SOURCE_PIXELS: Final = 50_000_000
MIN_SOURCE_SIDE: Final = 64  # Stability image services: every side >= 64 px
# A placed output (chalicelib.core.backgrounds.Placement): at most this many pixels and px per side,
# the size of the largest marketplace rules with room to spare, and what Finalize can hold.
MAX_OUTPUT_SIDE: Final = 10_000
MAX_OUTPUT_PIXELS: Final = 50_000_000
UPLOAD_URL_TTL_SECONDS: Final = 15 * 60  # short-lived presigned POST
DOWNLOAD_URL_TTL_SECONDS: Final = 60 * 60  # presigned GET of results and reports
MAX_FILES_PER_UPLOAD_REQUEST: Final = 100
# Request bodies: Lambda takes at most 6 MB per synchronous request, headers and all, so no larger
# body can reach the API on AWS; the same cap is enforced by the app, so every stack agrees. A
# 10,000-image job is about 1.5-3 MB of JSON.
MAX_REQUEST_BODY_BYTES: Final = 5 * 1024 * 1024
MAX_JSON_DEPTH: Final = 20  # the deepest body Backdrop reads is 4 levels (job → images → image → labels)
# POST /labels: refs per request. Detection of refs not cached yet runs on a bounded thread pool
# (chalicelib/jobs/labels.py), so 1,000 uncached refs stay inside API Gateway's 29 s.
MAX_LABEL_REFS_PER_REQUEST: Final = 1_000
# POST /jobs with an Idempotency-Key: a repeat within this time answers the first job.
IDEMPOTENCY_KEY_MAX_LENGTH: Final = 255
IDEMPOTENCY_TTL_SECONDS: Final = 24 * 60 * 60
MAX_IMAGES_PER_JOB: Final = 10_000  # the manifest lives in S3, so this is not a payload limit
MAX_LABELS_PER_IMAGE: Final = 50
MAX_LABEL_LENGTH: Final = 100
MAX_FILE_NAME_LENGTH: Final = 255
DETECT_LABELS_MAX_LABELS: Final = 25
# Rekognition DetectLabels reads JPEG and PNG of 80 to 10,000 px per side (Backdrop accepts 64 px):
# other images get no labels, with the reason, and are still processed.
REKOGNITION_MIN_SIDE: Final = 80
REKOGNITION_MAX_SIDE: Final = 10_000
DETECT_LABELS_MIN_CONFIDENCE: Final = 60.0
# Finalize's Rekognition checks (chalicelib/imaging/quality.py): DetectLabels on each result, DetectText on
# the original (once per image) and on each result. Both are Rekognition Image "Group 2" APIs,
# billed per image analysed (docs/aws-notes.md#n55-rekognition-image-prices).
REKOGNITION_USD_PER_IMAGE: Final = 0.001
# Automatic re-rolls (POST /jobs `reRolls`, `reRollOn`): an image whose best scorecard is
# `reRollOn` or worse is made again with a new seed, up to `reRolls` times (0 disables them).
DEFAULT_RE_ROLLS: Final = 1
MAX_RE_ROLLS: Final = 3
RE_ROLL_ON: Final = ("FAIL", "WARN")
DEFAULT_RE_ROLL_ON: Final = "FAIL"
# each re-roll's seed: the job's seed plus this step per attempt (mod the model's seed range), so
# a job's re-rolls are reproducible
RE_ROLL_SEED_STEP: Final = 104_729


def derived_seed(job_seed: int, attempt: int, seed_max: int) -> int:
    """The seed of attempt `attempt` (1 is the job's own) of an image: the job's seed moved on by
    RE_ROLL_SEED_STEP per attempt, within the model's range: variants, re-rolls and regenerations
    of a job can be made again."""
    return (job_seed + (attempt - 1) * RE_ROLL_SEED_STEP) % (seed_max + 1)


# Variants (POST /jobs `variants`): n results of each photo to choose from. A model that returns
# one image per call (every live model) makes them with n calls of its last step, each with its own
# seed (derived as a re-roll's is), all through the state machine's bounded re-roll loop. 4 because
# each variant is one more paid call and one more pass of that loop in the child's worst case, and
# four side by side still fit one gallery card; Titan / Nova (retired) made up to 5 in one call.
MAX_VARIANTS: Final = 4
# "Regenerate this one" (POST /jobs/{jobId}/images/{imageId}/regenerate): each makes a linked
# one-photo job whose result becomes one more variant of the image; at most this many per image,
# so an image's variants stay few enough to compare side by side.
MAX_REGENERATIONS: Final = 4
# The job settings of such a job name the image it regenerates: {"jobId", "imageId"}.
REGENERATES_SETTING: Final = "regenerates"


class PickedBy(StrEnum):
    """Who chose the delivered variant of an image (chalicelib/delivery/variants.py)."""

    BEST = "BEST"  # Backdrop: the best variant by the scorecards (quality.attempt_rank)
    OWNER = "OWNER"  # the owner: POST /jobs/{jobId}/images/{imageId}/pick


class VariantSource(StrEnum):
    """How a variant of an image was made."""

    JOB = "JOB"  # by the job's own run (its variants and re-rolls)
    REGENERATED = "REGENERATED"  # by POST /jobs/{jobId}/images/{imageId}/regenerate: a linked job's result


MAX_JOBS_PAGE_SIZE: Final = 100
# GET /jobs/{jobId} answers with one page of images (at most 100, chalicelib/store/jobs.py); the page
# is cut shorter when it would make the answer larger than this. Lambda's synchronous response
# limit is 6 MB; a poll every few seconds should cost far less.
DEFAULT_IMAGES_PAGE_SIZE: Final = 50
MAX_RESPONSE_BYTES: Final = 1_000_000
# Webhooks: one HTTPS POST per finished job, signed with the owner's secret (chalicelib/delivery/webhooks.py).
MAX_WEBHOOK_URL_LENGTH: Final = 2048
WEBHOOK_TIMEOUT_SECONDS: Final = 10  # connect + answer, per attempt
# One attempt per invocation of the sender; the waits between attempts are not spent inside a Lambda:
# the workflow's "Send the webhook" Task retries WebhookRetry itself (backend/statemachine.py,
# full jitter), and an asynchronously invoked sender (a cancel) is retried by Lambda's own
# asynchronous retries (docs/aws-notes.md#n110-retries-with-a-wait-that-is-not-a-sleep).
WEBHOOK_ATTEMPTS: Final = 5  # in the workflow: the first try and four retries, exponential backoff, full jitter
WEBHOOK_BACKOFF_BASE_SECONDS: Final = 2.0  # retry n waits up to base * 4**(n-1): 2, 8, 32, 128 s
WEBHOOK_BACKOFF_RATE: Final = 4.0
# after a cancel: the first try and Lambda's two asynchronous retries (about 1 and 2 minutes apart)
WEBHOOK_ASYNC_ATTEMPTS: Final = 3
WEBHOOK_SIGNATURE_TOLERANCE_SECONDS: Final = 300  # a receiver refuses a signature older (or newer) than this
# A deleted job leaves a tombstone, so a repeated DELETE answers what was removed; DynamoDB's TTL
# (the table's `expiresAt`) removes it after this long.
DELETED_JOB_RETENTION_SECONDS: Final = 30 * 24 * 3600
SNS_SUBJECT_MAX_LENGTH: Final = 99  # SNS Publish Subject: < 100 ASCII characters
SNS_MESSAGE_MAX_BYTES: Final = 200_000  # SNS allows 262,144 bytes; keep headroom
SNS_MAX_FAILURES_LISTED: Final = 50
# Job emails: each user has their own SNS topic, named after their Cognito `sub` and subscribed
# to their address only (backend/user_topics.py), so a job's email is published to its owner's
# topic and reaches nobody else; no filter policies (SNS allows 200 per topic:
# docs/aws-notes.md#n69-sns-filter-policy-and-topic-quotas). The email also carries the owner in
# this message attribute, which says whose it is (local inboxes, logs).
NOTIFY_OWNER_ATTRIBUTE: Final = "owner"
# SNS topic names: letters, digits, hyphens and underscores, 1 to 256 characters.
_TOPIC_NAME_CHARACTERS = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_TOPIC_NAME_LENGTH: Final = 256


def user_topic_name(name_prefix: str, owner: str) -> str:
    """The name of `owner`'s job-email topic, given the stage's prefix of every user topic name
    (backend.resource_names.user_topic_prefix: `backdrop-<stage>_user-`)."""
    name = name_prefix + owner
    if not _TOPIC_NAME_CHARACTERS.match(owner) or len(name) > MAX_TOPIC_NAME_LENGTH:
        raise ValueError(f"{owner!r} cannot name an SNS topic")
    return name


def user_topic_arn(arn_prefix: str, owner: str) -> str:
    """The ARN of `owner`'s job-email topic, given the stage's prefix of every user topic ARN
    (backend.resource_names.user_topic_arn_prefix: `arn:…:sns:<region>:<account>:backdrop-<stage>_user-`)."""
    base, name_prefix = arn_prefix.rsplit(":", 1)
    return f"{base}:{user_topic_name(name_prefix, owner)}"


# content types accepted for upload, and the file extension each is stored under. HEIC/HEIF
# (iPhone photos) and AVIF are decoded by chalicelib/imaging/images.py; the stored bytes, not the declared
# type, decide how an image is read (docs/aws-notes.md#n87-photo-formats-people-have).
UPLOAD_CONTENT_TYPES: Final = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
}
FORMAT_CONTENT_TYPES: Final = {
    OutputFormat.PNG: "image/png",
    OutputFormat.JPEG: "image/jpeg",
    OutputFormat.WEBP: "image/webp",
}
FORMAT_EXTENSIONS: Final = {OutputFormat.PNG: "png", OutputFormat.JPEG: "jpg", OutputFormat.WEBP: "webp"}
# Provenance: when a model's output image names what made it in PNG's standard "Source" text
# keyword, Finalize keeps that text in the result PNG and records it as the output's `producedBy`
# (reports and job views show it). Longer text is cut to MAX_PROVENANCE_LENGTH.
PROVENANCE_TEXT_KEY: Final = "Source"
MAX_PROVENANCE_LENGTH: Final = 300

# --------------------------------------------------------------------------------------------
# Identifiers

_HEX32 = r"[0-9a-f]{32}"
# Patterns end in \Z, not $: `$` also matches before a final newline, so "id\n" would pass
# (docs/aws-notes.md#n86-whole-string-patterns-and-cognito-sub); openapi.py writes \Z as $.
# Step Functions execution names: 1-80 chars of [0-9A-Za-z_-]; a job id is the execution name,
# so a second start of the same job is refused by the service itself.
JOB_ID_RE: Final = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}\Z")
IMAGE_ID_RE: Final = re.compile(rf"^{_HEX32}\Z")
# What a client names an uploaded image by: "{uploadId}/{imageId}.{ext}" as returned by
# POST /uploads. The server prefixes the owner itself, so a ref can never point elsewhere.
_EXTS = "|".join(sorted(set(UPLOAD_CONTENT_TYPES.values())))
IMAGE_REF_RE: Final = re.compile(rf"^(?P<upload_id>{_HEX32})/(?P<image_id>{_HEX32})\.(?P<ext>{_EXTS})\Z")
# An owner as it appears in keys; a caller's `sub` is checked to be a UUID (chalicelib/api/auth.py).
OWNER_RE: Final = re.compile(r"^[0-9A-Za-z_-]{1,128}\Z")


def new_job_id(now: datetime | None = None) -> str:
    """A sortable, unique job id that is also a valid Step Functions execution name."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


def new_opaque_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and bool(JOB_ID_RE.match(value))


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# S3 key layout (one private bucket). The top-level prefixes are also what the IAM policies
# (backend/policies.py), the templates (lifecycle rule, workflow role) and the state machine
# (its ResultWriter) are built from: every key below starts with one of them.

UPLOADS_PREFIX: Final = "uploads/"  # originals, never modified
SCRATCH_PREFIX: Final = "jobs/"  # workflow scratch space, expired by a lifecycle rule
RESULTS_PREFIX: Final = "results/"
REPORTS_PREFIX: Final = "reports/"
# The Distributed Map's ResultWriter writes under {this}/{MapRunId}/ (inside the expiring scratch
# space); its prefix is fixed when the state machine is rendered, not per job.
MAP_RESULTS_PREFIX: Final = f"{SCRATCH_PREFIX}map-results"
# The names the templates and the state machine use for them ("${ScratchPrefix}").
S3_LAYOUT: Final = {
    "UploadsPrefix": UPLOADS_PREFIX,
    "ScratchPrefix": SCRATCH_PREFIX,
    "ResultsPrefix": RESULTS_PREFIX,
    "ReportsPrefix": REPORTS_PREFIX,
    "MapResultsPrefix": MAP_RESULTS_PREFIX,
}


def upload_prefix(owner: str) -> str:
    return f"{UPLOADS_PREFIX}{owner}/"


def upload_key(owner: str, image_ref: str) -> str:
    """The key of an uploaded original. `image_ref` must already match IMAGE_REF_RE."""
    return f"{upload_prefix(owner)}{image_ref}"


def image_ref_of(upload_id: str, image_id: str, ext: str) -> str:
    return f"{upload_id}/{image_id}.{ext}"


UPLOAD_KEY_RE: Final = re.compile(
    rf"^{UPLOADS_PREFIX}(?P<owner>[0-9A-Za-z_-]{{1,128}})/(?P<ref>{_HEX32}/{_HEX32}\.(?:{_EXTS}))\Z"
)


def _scratch(job_id: str) -> str:
    return f"{SCRATCH_PREFIX}{job_id}/"


def job_scratch_prefix(job_id: str) -> str:
    """Every workflow scratch file of a job (manifest, requests, responses, work files)."""
    return _scratch(job_id)


def manifest_key(job_id: str) -> str:
    return f"{_scratch(job_id)}manifest.json"


def images_file_key(job_id: str) -> str:
    """The image records POST /jobs accepted, which the starter writes as the job's image items."""
    return f"{_scratch(job_id)}images.json"


def request_key(job_id: str, image_id: str, step: str) -> str:
    return f"{_scratch(job_id)}requests/{image_id}.{step}.json"


def response_key(job_id: str, image_id: str, step: str) -> str:
    return f"{_scratch(job_id)}responses/{image_id}.{step}.json"


def scene_request_key(job_id: str) -> str:
    """The batch's one text-to-image request (a `scene` background)."""
    return f"{_scratch(job_id)}requests/scene.text-to-image.json"


def scene_response_key(job_id: str) -> str:
    return f"{_scratch(job_id)}responses/scene.text-to-image.json"


def scene_key(job_id: str) -> str:
    """The decoded scene every image of the job is composed onto."""
    return f"{_scratch(job_id)}work/scene.png"


def work_key(job_id: str, image_id: str, name: str) -> str:
    return f"{_scratch(job_id)}work/{image_id}.{name}"


def job_results_prefix(owner: str, job_id: str) -> str:
    return f"{RESULTS_PREFIX}{owner}/{job_id}/"


def result_key(owner: str, job_id: str, image_id: str, variant: int, fmt: OutputFormat | str) -> str:
    ext = FORMAT_EXTENSIONS[OutputFormat(fmt)]
    return f"{job_results_prefix(owner, job_id)}{image_id}-{variant}.{ext}"


def job_reports_prefix(owner: str, job_id: str) -> str:
    return f"{REPORTS_PREFIX}{owner}/{job_id}/"


# Archives (chalicelib/delivery/archive.py): one zip per job and choice of contents, next to the results,
# with its build's progress beside it.
ARCHIVE_URL_TTL_SECONDS: Final = 15 * 60  # the zip's presigned link is short-lived


def archive_kind(originals: bool, report: bool) -> str:
    return "results" + ("-originals" if originals else "") + ("-report" if report else "")


def archive_key(owner: str, job_id: str, kind: str) -> str:
    return f"{job_results_prefix(owner, job_id)}archive/{kind}.zip"


def archive_progress_key(owner: str, job_id: str, kind: str) -> str:
    return f"{job_results_prefix(owner, job_id)}archive/{kind}.progress.json"


def report_key(owner: str, job_id: str, fmt: str) -> str:
    if fmt not in ("json", "csv"):
        raise ValueError(f"report format must be json or csv, not {fmt!r}")
    return f"{job_reports_prefix(owner, job_id)}report.{fmt}"


# The web app's job page is "{app URL}/job?job={job id}" (Streamlit names the page after job.py).
JOB_PAGE_PATH: Final = "job"
JOB_QUERY_PARAM: Final = "job"


def job_page_url(app_url: str, job_id: str) -> str:
    return f"{app_url.rstrip('/')}/{JOB_PAGE_PATH}?{JOB_QUERY_PARAM}={job_id}"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


# --------------------------------------------------------------------------------------------
# DynamoDB layout (one table, NEW_IMAGE stream). The table schema itself is below so that the
# templates, the local stack and the tests create exactly the same table.

JOB_SK: Final = "JOB"
DELETED_JOB_SK: Final = "DELETED"  # the tombstone of a deleted job, same pk
IMAGE_SK_PREFIX: Final = "IMAGE#"
LABELS_SK: Final = "LABELS"
WEBHOOK_SECRET_SK: Final = "WEBHOOK_SECRET"  # pk = user_pk(owner)
# Background work is noted under this one partition, one item per job and kind, so the sweep finds
# any run that never started or stopped half-way. A handful of items at a time: never a hot key.
BACKGROUND_WORK_PK: Final = "BACKGROUND"


class BackgroundWork(StrEnum):  # each one's recipe: chalicelib/workflow/background.py (START: the starter)
    CLOSE_CANCELLED = "CLOSE_CANCELLED"  # a cancelled job's unfinished images, report and webhook
    DELETE = "DELETE"  # a deleted job's files and records
    REWRITE_REPORT = "REWRITE_REPORT"  # a large finished job's report, written again after a pick
    START = "START"  # a submitted job's start (the stream's starter); done once it left SUBMITTED
    ARCHIVE = "ARCHIVE"  # a large job's zip (its progress object in S3 is its claim; never noted)


class ReportRefresh(StrEnum):
    """What a pick did to the job's report (POST /jobs/{jobId}/images/{imageId}/pick's `report`)."""

    REWRITTEN = "REWRITTEN"  # written again inside the request, with the pick
    REWRITING = "REWRITING"  # a large job: being written again in the background (the job's `reportRewrite`)
    REWRITE_PENDING = "REWRITE_PENDING"  # a large job: its rewrite could not be started now; the next
    # pick or the reconciler's sweep starts it (the job's `reportRewrite.lastError` says why)
    AT_NEXT_BUILD = "AT_NEXT_BUILD"  # the job has not finished: its report, when written, carries the pick


def background_work_sk(kind: BackgroundWork, job_id: str) -> str:
    return f"{kind.value}#{job_id}"


OWNER_INDEX: Final = "byOwner"
# A job's images by status and by scorecard verdict: sparse indexes (only image items carry their
# keys), so a filtered page is one Query of its own partition. A FilterExpression cannot do it:
# DynamoDB applies Limit before the filter (docs/aws-notes.md#n98-query-limit-before-filter).
STATUS_INDEX: Final = "byStatus"
VERDICT_INDEX: Final = "byVerdict"
STATUS_INDEX_PK: Final = "statusPk"  # JOB#<jobId>#<status>; the index's sort key is the table's sk
VERDICT_INDEX_PK: Final = "verdictPk"  # JOB#<jobId>#<verdict or NONE>
VERDICT_INDEX_SK: Final = "verdictSk"  # <status>#<imageId>: a status inside a verdict is a key prefix
# On a job item: its image items carry those keys (jobs written before them are filtered as before).
JOB_VIEW_KEYS_ATTRIBUTE: Final = "viewKeys"


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def image_sk(image_id: str) -> str:
    return f"{IMAGE_SK_PREFIX}{image_id}"


def status_index_pk(job_id: str, status: str) -> str:
    return f"{job_pk(job_id)}#{status}"


def verdict_index_pk(job_id: str, verdict: str | None) -> str:
    """An image without a verdict (not finished, failed, unscored) is under NONE."""
    return f"{job_pk(job_id)}#{verdict or Verdict.NONE.value}"


def verdict_index_sk(status: str, image_id: str) -> str:
    return f"{status}#{image_id}"


def image_view_keys(job_id: str, image_id: str, status: str, verdict: str | None) -> dict[str, str]:
    """The index keys of an image in `status` with `verdict`: written by every write that sets
    either, in the same request, so the indexes never disagree with the item."""
    return {
        STATUS_INDEX_PK: status_index_pk(job_id, status),
        VERDICT_INDEX_PK: verdict_index_pk(job_id, verdict),
        VERDICT_INDEX_SK: verdict_index_sk(status, image_id),
    }


def labels_pk(key: str) -> str:
    return f"LABELS#{key}"


def owner_index_pk(owner: str) -> str:
    return f"OWNER#{owner}"


def idempotency_pk(owner: str) -> str:
    """The partition of an owner's idempotency records (written by Powertools, sk = its key hash)."""
    return f"IDEMPOTENCY#{owner}"


def user_pk(owner: str) -> str:
    return f"USER#{owner}"


TABLE_KEY_SCHEMA: Final = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
TABLE_ATTRIBUTES: Final = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
    {"AttributeName": "gsi1pk", "AttributeType": "S"},
    {"AttributeName": "gsi1sk", "AttributeType": "S"},
    {"AttributeName": STATUS_INDEX_PK, "AttributeType": "S"},
    {"AttributeName": VERDICT_INDEX_PK, "AttributeType": "S"},
    {"AttributeName": VERDICT_INDEX_SK, "AttributeType": "S"},
]
TABLE_GSIS: Final = [
    {
        "IndexName": OWNER_INDEX,
        "KeySchema": [
            {"AttributeName": "gsi1pk", "KeyType": "HASH"},
            {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
    # ALL: a page is read from the index alone (KEYS_ONLY would cost a BatchGetItem per page)
    {
        "IndexName": STATUS_INDEX,
        "KeySchema": [
            {"AttributeName": STATUS_INDEX_PK, "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
    {
        "IndexName": VERDICT_INDEX,
        "KeySchema": [
            {"AttributeName": VERDICT_INDEX_PK, "KeyType": "HASH"},
            {"AttributeName": VERDICT_INDEX_SK, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
]
TABLE_STREAM: Final = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
# Items carry their deletion time (epoch seconds); the table's TTL deletes them after it.
TTL_ATTRIBUTE: Final = "expiresAt"
# The job item's running totals of model calls: answered (what the job cost, added as each image
# finishes) and started (reserved against the job's budget cap before each call is sent).
JOB_MODEL_CALLS_ATTRIBUTE: Final = "modelCalls"
JOB_CALLS_STARTED_ATTRIBUTE: Final = "modelCallsStarted"
# A scene background's one text-to-image call per batch (its model's price, not the job model's),
# set when the scene's answer was read: the job's cost counts it.
JOB_SCENE_MODEL_ATTRIBUTE: Final = "sceneModel"
# The job item's running total of what it cost, in US dollars (chalicelib/catalogue/costs.py): each finished
# image's attempts (model calls and Rekognition checks), a failed image's calls that answered, and
# the scene call, added once each (JobStore.add_cost); and the estimate POST /jobs answered, kept so
# every later view says the same figure (chalicelib/core/estimate.py).
JOB_COST_ATTRIBUTE: Final = "costUsd"
# A regeneration (POST .../regenerate) is billed to its own linked one-photo job; the job it adds a
# variant to keeps apart what its regenerations cost and how many there were, added once each when
# the variant is added (chalicelib/delivery/variants.py): shown beside its own cost, never in it.
JOB_REGENERATED_COST_ATTRIBUTE: Final = "regeneratedCostUsd"
JOB_REGENERATIONS_ATTRIBUTE: Final = "regenerationsAdded"  # (an image item's `regenerations` counts those asked)
JOB_ESTIMATE_ATTRIBUTE: Final = "estimate"
# On a job whose image items are still being written by the starter (chalicelib/workflow/starter.py): the
# S3 key of the records it writes them from; removed once every image item is written.
JOB_IMAGES_PENDING_ATTRIBUTE: Final = "imagesPending"


def verdict_count_attribute(verdict: Verdict | str) -> str:
    """The job item's count of finished images with this verdict (added as each one finishes)."""
    return f"verdictCount{Verdict(verdict).value}"


# Step Functions' EventBridge events for an execution that ended (the reconciler's trigger,
# docs/aws-notes.md#n39-step-functions-execution-status-events). Here, not in the reconciler, so
# app.py can declare the rule without importing the reconciler at cold start.
EXECUTION_STATUS_CHANGE: Final = "Step Functions Execution Status Change"
EXECUTION_ENDED_STATUSES: Final = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
