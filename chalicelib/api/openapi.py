"""Backdrop's OpenAPI 3.1 document, generated from the code.

Nothing here repeats a contract by hand: the request and response bodies are pydantic models
(chalicelib/catalogue/schemas.py validates the requests, chalicelib/api/responses.py declares the
answers; `schemas()` generates every component from them); statuses, error codes, limits,
identifier patterns and content types come from chalicelib/core/contracts.py; the HTTP status of each
error code comes from the error classes (chalicelib/core/errors.py) and the gateway's table
(chalicelib/api/http_errors.py); the paths, methods, path parameters and which routes need a token come
from the Chalice app's route table. `document(app.routes)` refuses a route without a description
here, and a description without a route. What is written here is what a schema cannot derive:
wording, which error codes each operation can answer, query parameters and examples.

GET /openapi.json serves it; `python -m backend.openapi` writes docs/openapi.json (a test checks
that the committed file is the generated one, validates it with openapi-spec-validator, and
checks live answers of every route against their schemas and models).

pydantic is imported when the document is built (GET /openapi.json, `python -m backend.openapi`)
and by the routes that write, never by the polling routes' cold start.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib.api import http_errors
from chalicelib.core import contracts, errors
from chalicelib.core.contracts import ErrorCode
from chalicelib.jobs.control import SYNC_DELETE_LIMIT
from chalicelib.store.jobs import MAX_IMAGES_PAGE_SIZE

OPENAPI_VERSION: Final = "3.1.0"
API_VERSION: Final = "1.0.0"
SECURITY_SCHEME: Final = "CognitoIdToken"

# the example refusal, worded as chalicelib/jobs/uploads.py words it, from the one list of accepted types
_TEXT_PLAIN_REFUSED = (
    f"content type 'text/plain' is not accepted; use one of {', '.join(contracts.UPLOAD_CONTENT_TYPES)}"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _enum(values: Iterable[Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": [getattr(v, "value", v) for v in values]}
    if description:
        schema["description"] = description
    return schema


_STRING: Final = {"type": "string"}


# -------------------------------------------------------------------------------------- schemas


def schemas() -> dict[str, Any]:
    """Every component: the request bodies (chalicelib/catalogue/schemas.py) and the answers
    (chalicelib/api/responses.py), generated from the models in one pass (an enum or a model both
    use is one component)."""
    from chalicelib.api.responses import RESPONSE_MODELS
    from chalicelib.catalogue.json_schema import components
    from chalicelib.catalogue.schemas import REQUEST_MODELS

    return components((*REQUEST_MODELS, *RESPONSE_MODELS))


# -------------------------------------------------------------------------------------- errors


def error_status(code: ErrorCode) -> int:
    """The HTTP status an error code is answered with, from the error classes (then the gateway)."""
    for cls in _api_error_classes():
        if cls.code is code:
            return cls.http_status
    for status, mapped in http_errors.STATUS_CODES.items():
        if mapped is code:
            return status
    return 500


def _api_error_classes() -> list[type[errors.BackdropError]]:
    found: list[type[errors.BackdropError]] = []
    stack = list(errors.BackdropError.__subclasses__())
    while stack:
        cls = stack.pop()
        if not issubclass(cls, errors.StepError):
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


_ERROR_EXAMPLES: Final = {
    ErrorCode.BAD_REQUEST: (
        "the request body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        [{"field": "body", "message": "..."}],
    ),
    ErrorCode.VALIDATION_FAILED: (
        "the job request is not valid: images[0].imageRef: imageRef must be a ref returned by POST /uploads",
        [{"field": "images[0].imageRef", "message": "imageRef must be a ref returned by POST /uploads"}],
    ),
    ErrorCode.UNAUTHORIZED: (
        "sign in first: this route needs a valid Cognito ID token in the Authorization header",
        [],
    ),
    ErrorCode.NOT_FOUND: ("no job 20261125T101500Z-3f9a1c2b7d4e", []),
    ErrorCode.CONFLICT: ("job 20261125T101500Z-3f9a1c2b7d4e is RUNNING: cancel it first", []),
    ErrorCode.MODEL_UNAVAILABLE: ("model titan-image-v2 reached end of life; usable models: stability-inpaint", []),
    ErrorCode.UPLOAD_MISSING: (
        "1 image(s) were never uploaded or have expired: 'shoe.jpg'",
        [{"imageRef": "0123456789abcdef0123456789abcdef/fedcba9876543210fedcba9876543210.jpg", "name": "shoe.jpg"}],
    ),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: (
        "Idempotency-Key 'b1946ac9-2c6b-4d0e-9f7a-5c3e2d1f0a9b' was used before with a different request body; "
        "use a new key for a new job (nothing was created)",
        [],
    ),
    ErrorCode.REQUEST_IN_PROGRESS: (
        "the first request with Idempotency-Key 'b1946ac9-2c6b-4d0e-9f7a-5c3e2d1f0a9b' is still being processed; "
        "repeat it in a few seconds",
        [],
    ),
    ErrorCode.REPORT_NOT_READY: ("job 20261125T101500Z-3f9a1c2b7d4e is RUNNING and has no report yet", []),
    ErrorCode.RATE_LIMITED: ("too many requests: wait a moment and retry", []),
    ErrorCode.SERVICE_BUSY: ("could not look up the uploads: AWS is busy (SlowDown); try again in a few seconds", []),
    ErrorCode.STORAGE_ERROR: ("could not look up the uploads: AccessDenied", []),
    ErrorCode.INTERNAL_ERROR: (http_errors.INTERNAL_MESSAGE, []),
}


def _error_responses(codes: Iterable[ErrorCode]) -> dict[str, Any]:
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(error_status(code), []).append(code)
    responses = {}
    for status in sorted(by_status):
        listed = by_status[status]
        examples = {}
        for code in listed:
            message, details = _ERROR_EXAMPLES.get(code, (code.value.replace("_", " ").lower(), []))
            examples[code.value] = {"value": {"code": code.value, "message": message, "details": details}}
        responses[str(status)] = {
            "description": "error: " + ", ".join(c.value for c in listed),
            "content": {"application/json": {"schema": _ref("Error"), "examples": examples}},
        }
    return responses


# -------------------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    summary: str
    answer: str  # the success schema's name
    status: int = 200
    description: str = ""
    body: str | None = None  # the request schema's name
    query: tuple[dict[str, Any], ...] = ()
    errors: tuple[ErrorCode, ...] = ()
    example: Any = None
    tags: tuple[str, ...] = ("jobs",)
    header_params: tuple[dict[str, Any], ...] = ()  # request headers
    headers: dict[str, Any] = field(default_factory=dict)  # success response headers
    # other success statuses answering the same schema (202: the work goes on in the background)
    also: tuple[int, ...] = ()


_JOB_ID: Final = "20261125T101500Z-3f9a1c2b7d4e"
_REF: Final = "5d41402abc4b2a76b9719d911017c592/7d793037a0760186574b0282f2f435e7.jpg"
_COUNTS: Final = {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 2, "FAILED": 1, "CANCELLED": 0}
_FAILED_IMAGE_EXAMPLE: Final[dict[str, Any]] = {
    "imageId": "9e107d9d372bb6826bd81d3542a419d6",
    "imageRef": "5d41402abc4b2a76b9719d911017c592/9e107d9d372bb6826bd81d3542a419d6.png",
    "name": "tiny.png",
    "status": "FAILED",
    "errorCode": "IMAGE_TOO_SMALL",
    "cause": "the image is 40x40 px; the smallest side must be at least 64 px",
    "labels": [],
    "prompt": None,
    "originalUrl": "https://bucket.s3.amazonaws.com/uploads/...",
    "outputs": [],
}
_SUMMARY_EXAMPLE: Final[dict[str, Any]] = {
    "jobId": _JOB_ID,
    "status": "PARTIAL",
    "model": "stability-inpaint",
    "createdAt": "2026-11-25T10:15:00.000Z",
    "finishedAt": "2026-11-25T10:16:12.000Z",
    "imageCount": 3,
    "counts": _COUNTS,
    "prompt": "a sunlit marble studio",
}


def _labels() -> Any:
    from chalicelib.jobs import labels

    return labels


def idempotency_header() -> str:
    from chalicelib.api import idempotency

    return idempotency.HEADER


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_BODY_ERRORS: Final = (ErrorCode.BAD_REQUEST, ErrorCode.VALIDATION_FAILED)

OPERATIONS: Final[dict[tuple[str, str], Operation]] = {
    ("GET", "/health"): Operation(
        "Liveness",
        "Health",
        example={"status": "ok", "appUrl": "https://backdrop-dev-webapp.ecs.us-east-1.on.aws"},
        tags=("meta",),
    ),
    ("GET", "/openapi.json"): Operation(
        "This document",
        "OpenApiDocument",
        description="The API's OpenAPI 3.1 document, generated from the code.",
        tags=("meta",),
    ),
    ("GET", "/models"): Operation(
        "Models, their limits, prices and lifecycle",
        "ModelList",
        description=(
            "Which models exist, which are `selectable` now (not at end of life, and callable from this "
            "deployment's Region), and each one's limits."
        ),
        tags=("models",),
    ),
    ("GET", "/presets"): Operation(
        "Marketplace presets and their rules",
        "PresetList",
        description="Amazon main image, Shopify, Etsy, eBay and Google Merchant Center: what each preset applies "
        "and each rule with the public page it comes from (chalicelib/core/presets.json).",
        tags=("models",),
    ),
    ("POST", "/uploads"): Operation(
        "Presigned uploads",
        "UploadGrant",
        status=201,
        body="UploadRequest",
        description="A presigned S3 POST per good file (keys chosen by the server) and each bad file with its "
        "reasons, in one answer; 400 VALIDATION_FAILED (with the same per-file `details`) only when no file is "
        "good. Send each file to its `url` as multipart/form-data: every `fields` entry, then `file` last.",
        errors=_BODY_ERRORS,
        example={
            "uploadId": "5d41402abc4b2a76b9719d911017c592",
            "expiresIn": contracts.UPLOAD_URL_TTL_SECONDS,
            "uploads": [
                {
                    "index": 0,
                    "imageRef": _REF,
                    "name": "shoe.jpg",
                    "url": "https://bucket.s3.amazonaws.com/",
                    "fields": {"key": "uploads/.../7d793037a0760186574b0282f2f435e7.jpg", "Content-Type": "image/jpeg"},
                }
            ],
            "rejected": [
                {
                    "field": "notes.txt",
                    "index": 1,
                    "name": "notes.txt",
                    "message": _TEXT_PLAIN_REFUSED,
                    "reasons": [_TEXT_PLAIN_REFUSED],
                }
            ],
        },
        tags=("uploads",),
    ),
    ("POST", "/labels"): Operation(
        "Labels of uploaded images",
        "Labels",
        body="LabelsRequest",
        description=f"Labels with confidence and boxes per image, for up to {contracts.MAX_LABEL_REFS_PER_REQUEST:,} "
        "refs. An image label detection cannot read (under 80 px or over 10,000 px a side, WEBP, not an image) has "
        f"no labels and says why; it can still be processed. Labels not cached yet are detected {_labels().DETECT_WORKERS} "
        f"at a time for up to {_labels().DETECT_BUDGET_SECONDS:.0f} s; refs not answered by then (or past "
        f"{contracts.MAX_RESPONSE_BYTES // 1_000_000} MB of answer) are `pending`: ask again for those.",
        errors=(*_BODY_ERRORS, ErrorCode.NOT_FOUND),
        example={
            "labels": {
                _REF: [
                    {
                        "name": "Shoe",
                        "confidence": 98.2,
                        "instances": [
                            {"box": {"left": 0.2, "top": 0.3, "width": 0.5, "height": 0.4}, "confidence": 97.9}
                        ],
                        "parents": ["Clothing"],
                    }
                ]
            },
            "unavailable": {},
            "pending": [],
        },
        tags=("uploads",),
    ),
    ("POST", "/jobs"): Operation(
        "Submit a job",
        "Submitted",
        status=202,
        body="JobRequest",
        description="Validated against the model's limits (every problem listed at once), written, and started "
        "by the workflow. Kept `labels` must be among the image's detected labels. With an `Idempotency-Key`, a "
        f"repeat with the same body within {contracts.IDEMPOTENCY_TTL_SECONDS // 3600} h answers the same job "
        "(header `Idempotent-Replayed: true`), never a second one; the same key with another body is a 409 "
        "IDEMPOTENCY_KEY_REUSED, and a repeat while the first is still running a 409 REQUEST_IN_PROGRESS.",
        header_params=(
            {
                "name": idempotency_header(),
                "in": "header",
                "required": False,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": contracts.IDEMPOTENCY_KEY_MAX_LENGTH,
                    "pattern": "^[ -~]+$",
                },
                "description": "any printable ASCII (a UUID, say): retries of this request answer the same job",
            },
        ),
        headers={
            "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer of an earlier request with the same key",
                "schema": {"const": "true"},
            }
        },
        errors=(
            *_BODY_ERRORS,
            ErrorCode.MODEL_UNAVAILABLE,
            ErrorCode.UPLOAD_MISSING,
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            ErrorCode.REQUEST_IN_PROGRESS,
        ),
        example={"jobId": _JOB_ID, "status": "SUBMITTED", "imageCount": 3, "model": "stability-inpaint"},
    ),
    ("GET", "/jobs"): Operation(
        "Your jobs, newest first",
        "JobPage",
        query=(
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": contracts.MAX_JOBS_PAGE_SIZE, "default": 20},
                "jobs per page",
            ),
            _query("cursor", _STRING, "`nextCursor` of the previous page"),
        ),
        errors=(ErrorCode.BAD_REQUEST,),
        example={"jobs": [_SUMMARY_EXAMPLE], "nextCursor": None},
    ),
    ("GET", "/jobs/{job_id}"): Operation(
        "One job: its summary, live counts and one page of its images",
        "JobView",
        description="The summary and live `counts`, then one page of the job's images in image-id order with "
        "presigned links for that page only, each result's quality scorecard, and `nextCursor`. The page is cut "
        f"short before the answer passes {contracts.MAX_RESPONSE_BYTES // 1_000_000} MB, whatever the job's size. "
        "A cursor from another job, another user or the job list is a 400.",
        query=(
            _query(
                "limit",
                {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_IMAGES_PAGE_SIZE,
                    "default": contracts.DEFAULT_IMAGES_PAGE_SIZE,
                },
                "images per page; 0 answers the summary alone (what a poller needs)",
            ),
            _query("cursor", _STRING, "`nextCursor` of the previous page"),
            _query("status", _ref("ImageStatus"), "only the images in this status"),
            _query("verdict", _enum(contracts.Verdict), "only the images with this quality verdict (NONE: none)"),
        ),
        errors=(ErrorCode.BAD_REQUEST, ErrorCode.NOT_FOUND),
        example={
            **_SUMMARY_EXAMPLE,
            "settings": {"model": "stability-inpaint", "seed": 7},
            "images": [_FAILED_IMAGE_EXAMPLE],
            "nextCursor": None,
        },
    ),
    ("DELETE", "/jobs/{job_id}"): Operation(
        "Delete a finished job and its files",
        "Deleted",
        also=(202,),
        description="Removes the job, its images' records, results, reports and workflow files; with "
        "`originals=true` also the uploaded originals (another job made from the same uploads loses them too), "
        f"and answers what was removed (200). A job of more than {SYNC_DELETE_LIMIT:,} images (or one whose "
        "deletion does not fit in the request) becomes DELETING at once and answers 202 with `deleting: true` while "
        "a background Lambda removes it in batches; meanwhile GET /jobs/{jobId} answers 200 with status DELETING "
        "and the progress in `deletion`, nothing can be started on it, and a repeated DELETE answers the progress. "
        "Once it is gone GET answers 404 and a repeated DELETE answers the final tally with `alreadyDeleted: true`. "
        "A running job must be cancelled first (409).",
        query=(_query("originals", _enum(("true", "false")), "also delete the uploaded originals (default false)"),),
        errors=(ErrorCode.BAD_REQUEST, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
        example={
            "jobId": _JOB_ID,
            "deleted": True,
            "deleting": False,
            "alreadyDeleted": False,
            "deletedAt": "2026-11-25T11:00:00.000Z",
            "removed": {"images": 3, "results": 2, "reports": 2, "scratch": 14, "originals": 0},
        },
    ),
    ("POST", "/jobs/{job_id}/cancel"): Operation(
        "Cancel a job",
        "Cancelled",
        also=(202,),
        description="Stops the workflow; images that had not finished end CANCELLED, finished ones keep their "
        "results, and the report is written (200). A job with more unfinished images than can be closed within "
        "the request is CANCELLED and stopped at once, and answers 202 with `closing: true` while they are closed "
        "in the background. Repeating it answers the same; a job that finished first is a 409.",
        errors=(ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
        example={
            "jobId": _JOB_ID,
            "status": "CANCELLED",
            "cancelledAt": "2026-11-25T10:15:30.000Z",
            "counts": {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 2},
            "closing": False,
            "closingBy": None,
        },
    ),
    ("GET", "/jobs/{job_id}/report"): Operation(
        "A presigned link to the job's report",
        "ReportLink",
        query=(_query("format", {**_enum(("json", "csv")), "default": "json"}, "report format"),),
        errors=(ErrorCode.BAD_REQUEST, ErrorCode.NOT_FOUND, ErrorCode.REPORT_NOT_READY),
        example={"format": "csv", "url": "https://bucket.s3.amazonaws.com/reports/...", "expiresIn": 3600},
    ),
    ("POST", "/jobs/{job_id}/retry"): Operation(
        "Retry a finished job's failed images",
        "Submitted",
        status=202,
        description="A new job with the failed images only, the same settings and webhook.",
        errors=(
            ErrorCode.BAD_REQUEST,
            ErrorCode.VALIDATION_FAILED,
            ErrorCode.NOT_FOUND,
            ErrorCode.CONFLICT,
            ErrorCode.MODEL_UNAVAILABLE,
            ErrorCode.UPLOAD_MISSING,
        ),
        example={
            "jobId": _JOB_ID,
            "status": "SUBMITTED",
            "imageCount": 1,
            "model": "stability-inpaint",
            "retryOf": _JOB_ID,
        },
    ),
    ("POST", "/jobs/{job_id}/archive"): Operation(
        "Ask for the job's zip",
        "Archive",
        body="ArchiveRequest",
        description="The job's results (optionally originals and report) in one zip, built once into the job's "
        "results prefix: READY with a short-lived presigned link (200), or, for a large job, BUILDING with its "
        "progress (202) while a Lambda builds it; ask again (or GET) for the link. A running job is a 409.",
        errors=(*_BODY_ERRORS, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
        example={"state": "READY", "kind": "results", "url": "https://bucket.s3.amazonaws.com/...", "expiresIn": 900},
    ),
    ("GET", "/jobs/{job_id}/archive"): Operation(
        "The state of the job's zip",
        "Archive",
        description="NONE (never asked for), BUILDING with progress, READY with a new link, or FAILED; never "
        "starts a build.",
        query=(
            _query("originals", _enum(("true", "false")), "the zip with the originals (default false)"),
            _query("report", _enum(("true", "false")), "the zip with the report (default false)"),
        ),
        errors=(ErrorCode.BAD_REQUEST, ErrorCode.NOT_FOUND),
        example={"state": "BUILDING", "kind": "results", "done": 150, "total": 400},
    ),
    ("POST", "/jobs/{job_id}/review"): Operation(
        "Decide on results before delivery",
        "ReviewRecorded",
        body="ReviewRequest",
        description="For a job submitted with `reviewHours` and waiting for its owner: which results to deliver. "
        "A job that is not waiting is a 409.",
        errors=(*_BODY_ERRORS, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
        example={"jobId": _JOB_ID, "decided": 2},
    ),
    ("POST", "/jobs/{job_id}/images/{image_id}/pick"): Operation(
        "Choose the variant to deliver",
        "Picked",
        body="PickRequest",
        description="For a SUCCEEDED image with several variants (a job's `variants`): deliver this one instead of "
        "the best by the scorecards. The image's verdict becomes the variant's; the archive delivers it (a zip "
        "built before is built again on the next request) and a finished job's report is written again. A bad "
        "variant is a 400 naming the field; an image that has not succeeded is a 409.",
        errors=(*_BODY_ERRORS, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
        example={
            "jobId": _JOB_ID,
            "imageId": "9e107d9d372bb6826bd81d3542a419d6",
            "delivered": 2,
            "pickedBy": "OWNER",
            "outputs": [],
            "report": "REWRITTEN",
        },
    ),
    ("POST", "/jobs/{job_id}/images/{image_id}/regenerate"): Operation(
        "Make one more variant of an image",
        "Regenerating",
        status=202,
        body="RegenerateRequest",
        description="For a SUCCEEDED image with a prompt background: a linked one-photo job (the job's settings, "
        "one variant, no re-roll) with a new seed and, optionally, an edited prompt. Follow it at `follow`; when it "
        "finishes, its result is added to the image as the next variant (`source: REGENERATED`, with its `jobId`, "
        "`seed`, `prompt` and `costUsd`), not delivered until you pick it. Its model calls are its own job's cost "
        f"(and budget, the job's `budgetUsd` if it has one). At most {contracts.MAX_REGENERATIONS} per image (409 "
        "after); a composed background "
        "is a 400 (the same picture again); an image that has not succeeded is a 409.",
        errors=(
            *_BODY_ERRORS,
            ErrorCode.NOT_FOUND,
            ErrorCode.CONFLICT,
            ErrorCode.MODEL_UNAVAILABLE,
            ErrorCode.UPLOAD_MISSING,
        ),
        example={
            "jobId": _JOB_ID,
            "status": "SUBMITTED",
            "imageCount": 1,
            "model": "stability-inpaint",
            "regenerateOf": {"jobId": _JOB_ID, "imageId": "9e107d9d372bb6826bd81d3542a419d6"},
            "seed": 419_958,
            "prompt": "a sunlit marble studio",
            "follow": f"/jobs/{_JOB_ID}",
        },
    ),
    ("POST", "/jobs/{job_id}/review/approve"): Operation(
        "Deliver a reviewed job",
        "ReviewApproved",
        description="Ends the workflow's wait: the report (with each image's `reviewDecision`) and the email "
        "follow; rejected results are left out of the zip. A job that is not waiting, or whose deadline passed, "
        "is a 409.",
        errors=(ErrorCode.NOT_FOUND, ErrorCode.CONFLICT, ErrorCode.SERVICE_BUSY, ErrorCode.STORAGE_ERROR),
        example={"jobId": _JOB_ID, "review": "APPROVED", "rejected": 1},
    ),
    ("GET", "/webhooks/secret"): Operation(
        "Your webhook signing secret",
        "WebhookSecret",
        description="Created on first use. Every webhook of your jobs is signed with it (see `webhooks`).",
        example={"secret": "whsec_...", "createdAt": "2026-11-25T10:00:00.000Z"},
        tags=("webhooks",),
    ),
    ("POST", "/webhooks/secret/rotate"): Operation(
        "Replace your webhook signing secret",
        "WebhookSecret",
        description="Webhooks sent from now on are signed with the new secret.",
        example={"secret": "whsec_...", "createdAt": "2026-11-25T12:00:00.000Z"},
        tags=("webhooks",),
    ),
}

_WEBHOOK_DESCRIPTION: Final = f"""\
Sent once a job with a `webhookUrl` finishes (COMPLETED, PARTIAL, FAILED or CANCELLED). Headers:
`Backdrop-Signature: t=<unix seconds>,v1=<hex>`, where the hex is HMAC-SHA256 with your secret
(GET /webhooks/secret) over `<t>.<raw body>`; `Backdrop-Event: job.finished`;
`Backdrop-Delivery: <deliveryId>` (the same on every retry: drop duplicates). Verify the HMAC in
constant time and refuse a `t` more than {contracts.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS} s from your
clock (a replay). Answer 2xx within {contracts.WEBHOOK_TIMEOUT_SECONDS} s; anything else is retried
up to {contracts.WEBHOOK_ATTEMPTS} attempts in all, with exponential backoff and full jitter, and
the outcome is shown on the job (`webhook`). Redirects are not followed."""


def _operation(method: str, path: str, op: Operation, view_args: list[str], authorized: bool) -> dict[str, Any]:
    answer_schema = (
        {"$ref": "#/components/schemas/OpenApiDocument"} if op.answer == "OpenApiDocument" else _ref(op.answer)
    )
    success: dict[str, Any] = {"description": op.summary, "content": {"application/json": {"schema": answer_schema}}}
    if op.example is not None:
        success["content"]["application/json"]["example"] = op.example
    if op.headers:
        success["headers"] = op.headers
    codes = list(op.errors)
    if view_args:
        codes.append(ErrorCode.NOT_FOUND)
    if authorized:
        codes += [ErrorCode.UNAUTHORIZED, ErrorCode.RATE_LIMITED, ErrorCode.SERVICE_BUSY, ErrorCode.STORAGE_ERROR]
    codes.append(ErrorCode.INTERNAL_ERROR)
    operation: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "tags": list(op.tags),
        "responses": {
            str(op.status): success,
            **{str(status): {**success, "description": f"{op.summary} (in the background)"} for status in op.also},
            **_error_responses(codes),
        },
    }
    if op.description:
        operation["description"] = op.description
    parameters = [
        *({"name": name, "in": "path", "required": True, "schema": _path_schema(name)} for name in view_args),
        *op.query,
        *op.header_params,
    ]
    if parameters:
        operation["parameters"] = parameters
    if op.body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
    operation["security"] = [{SECURITY_SCHEME: []}] if authorized else []
    return operation


def _path_schema(name: str) -> dict[str, Any]:
    from chalicelib.catalogue.schemas import IMAGE_ID_PATTERN  # pydantic: when the document is built

    if name == "job_id":
        return _ref("JobId")
    return {"type": "string", "pattern": IMAGE_ID_PATTERN, "description": "an image of the job"}


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[/{}._-]+", path) if w]
    return method.lower() + "".join(w.title() for w in words)


def document(routes: Mapping[str, Mapping[str, Any]], server_url: str | None = None) -> dict[str, Any]:
    """The whole document for a Chalice route table (`app.routes`)."""
    table = tuple(
        (path, method, tuple(entry.view_args), entry.authorizer is not None)
        for path, methods in sorted(routes.items())
        for method, entry in sorted(methods.items())
    )
    doc = _document(table)
    if server_url:
        return {**doc, "servers": [{"url": server_url}]}
    return doc


@functools.cache
def _document(table: tuple[tuple[str, str, tuple[str, ...], bool], ...]) -> dict[str, Any]:
    routed = {(method, path) for path, method, _, _ in table}
    undocumented = sorted(routed - set(OPERATIONS))
    unrouted = sorted(set(OPERATIONS) - routed)
    if undocumented or unrouted:
        raise ValueError(
            f"routes without an OpenAPI description (chalicelib/api/openapi.py OPERATIONS): {undocumented}; "
            f"descriptions without a route in app.py: {unrouted}"
        )
    paths: dict[str, dict[str, Any]] = {}
    for path, method, view_args, authorized in table:
        paths.setdefault(path, {})[method.lower()] = _operation(
            method, path, OPERATIONS[(method, path)], list(view_args), authorized
        )
    components = schemas()
    components["OpenApiDocument"] = {"type": "object", "required": ["openapi", "info", "paths"]}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Backdrop API",
            "version": API_VERSION,
            "summary": "Change the background of many photos in one batch, on your own AWS account.",
            "description": "Every error answer is `{code, message, details}` with a stable `code` "
            "(the `Error` schema). Every route but /health and /openapi.json needs a Cognito ID token in "
            "`Authorization`; another user's job answers 404. Walk-through with curl: docs/api.md.",
            "license": {"name": "MIT-0", "identifier": "MIT-0"},
        },
        "tags": [{"name": t} for t in ("uploads", "jobs", "models", "webhooks", "meta")],
        "paths": paths,
        "webhooks": {
            "jobFinished": {
                "post": {
                    "summary": "A job finished",
                    "description": _WEBHOOK_DESCRIPTION,
                    "parameters": [
                        {"name": "Backdrop-Signature", "in": "header", "required": True, "schema": _STRING},
                        {
                            "name": "Backdrop-Event",
                            "in": "header",
                            "required": True,
                            "schema": {"const": "job.finished"},
                        },
                        {"name": "Backdrop-Delivery", "in": "header", "required": True, "schema": _STRING},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("WebhookEvent")}},
                    },
                    "responses": {"2XX": {"description": "received; anything else is retried"}},
                }
            }
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "A Cognito user-pool ID token (InitiateAuth USER_PASSWORD_AUTH → "
                    "AuthenticationResult.IdToken), sent as is or as `Bearer <token>`.",
                }
            },
        },
    }
