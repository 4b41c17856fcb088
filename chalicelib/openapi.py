"""Backdrop's OpenAPI 3.1 document, generated from the code.

Nothing here repeats a contract by hand: statuses, error codes, limits, identifier patterns and
content types come from chalicelib/contracts.py; the job request's fields are jobs.JOB_FIELDS and
IMAGE_FIELDS (a field added to the parser and not described here stops the build); model keys and
style presets come from the model registry; the HTTP status of each error code comes from the
error classes (chalicelib/errors.py) and the gateway's table (chalicelib/http_errors.py); the
paths, methods, path parameters and which routes need a token come from the Chalice app's route
table. `document(app.routes)` refuses a route without a description here, and a description
without a route. What is written here is what a schema cannot derive: wording, which error codes
each operation can answer, and examples.

GET /openapi.json serves it; `python -m backend.openapi` writes docs/openapi.json (a test checks
that the committed file is the generated one, validates it with openapi-spec-validator, and
checks live answers of every route against their schemas).

Measured against pydantic models (docs/api.md): importing pydantic and declaring this API's
models costs about as much as importing the whole app, so the schemas are built from the
existing contracts instead, on the first request for the document only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib import contracts, costs, errors, http_errors
from chalicelib.contracts import BackgroundSource, ClosingBy, ErrorCode, ImageStatus, JobStatus, Mode, OutputFormat
from chalicelib.deletion import REMOVED_KINDS
from chalicelib.job_control import SYNC_DELETE_LIMIT
from chalicelib.models import registry
from chalicelib.presets import all_presets
from chalicelib.rewrites import SYNC_REWRITE_LIMIT
from chalicelib.store import MAX_IMAGES_PAGE_SIZE

OPENAPI_VERSION: Final = "3.1.0"
API_VERSION: Final = "1.0.0"
SECURITY_SCHEME: Final = "CognitoIdToken"

# the example refusal, worded as chalicelib/uploads.py words it, from the one list of accepted types
_TEXT_PLAIN_REFUSED = (
    f"content type 'text/plain' is not accepted; use one of {', '.join(contracts.UPLOAD_CONTENT_TYPES)}"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    kind = schema.get("type", "string")
    nullable = {**schema, "type": [kind, "null"] if isinstance(kind, str) else [*kind, "null"]}
    if "enum" in schema:
        nullable["enum"] = [*schema["enum"], None]
    return nullable


def _pattern(regex: re.Pattern[str]) -> str:
    """A Python pattern as JSON Schema takes it (ECMA-262): named groups become plain groups and
    the closing \\Z becomes $ (ECMA-262 has no \\Z; its $ without the m flag is the end itself)."""
    plain = re.sub(r"\(\?P<\w+>", "(", regex.pattern)
    return plain.removesuffix("\\Z") + "$" if plain.endswith("\\Z") else plain


def _obj(
    properties: Mapping[str, Any], required: Iterable[str] = (), *, closed: bool = False, **extra: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    required = list(required)
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    schema.update(extra)
    return schema


def _enum(values: Iterable[Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": [getattr(v, "value", v) for v in values]}
    if description:
        schema["description"] = description
    return schema


_STRING: Final = {"type": "string"}
_INT: Final = {"type": "integer"}
_COUNT: Final = {"type": "integer", "minimum": 0}
_TIME: Final = {"type": "string", "format": "date-time"}
_URL: Final = {"type": "string", "format": "uri"}


# -------------------------------------------------------------------------------------- schemas


def _job_request() -> tuple[dict[str, Any], dict[str, Any]]:
    """The POST /jobs body and one image of it, from the parser's own field lists."""
    from chalicelib.jobs import IMAGE_FIELDS, JOB_FIELDS

    specs = registry.all_models()
    presets = sorted({p for spec in specs for p in spec.style_presets})
    cfg_bounds = [spec.cfg_scale for spec in specs if spec.cfg_scale]
    # the widest each model allows: each model narrows it (GET /models, `limits`)
    prompt_max = max(spec.prompt_max for spec in specs)
    image = {
        "imageRef": {
            "type": "string",
            "pattern": _pattern(contracts.IMAGE_REF_RE),
            "description": "an `imageRef` returned by POST /uploads",
        },
        "name": {"type": "string", "maxLength": contracts.MAX_FILE_NAME_LENGTH, "description": "shown in reports"},
        "labels": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": contracts.MAX_LABEL_LENGTH},
            "maxItems": contracts.MAX_LABELS_PER_IMAGE,
            "description": "the subjects to keep, among the image's labels from POST /labels; empty keeps the "
            "whole subject found by background removal (Stability models)",
        },
        "prompt": {"type": "string", "maxLength": prompt_max, "description": "this image's prompt"},
        "background": {
            **_ref("Background"),
            "description": 'this image\'s own background instead of the job\'s (`{"source": "scene"}`: the '
            "job's scene)",
        },
    }
    job = {
        "prompt": {
            "type": "string",
            "maxLength": prompt_max,
            "description": "the new background, in words (each model narrows the length: GET /models, promptMax)",
        },
        "negativePrompt": {"type": "string", "maxLength": max(spec.negative_prompt_max for spec in specs)},
        "model": _enum(
            (s.key for s in specs),
            f"a model key from GET /models (only `selectable` ones are accepted); default {registry.default_model_key()}",
        ),
        "mode": _enum(Mode, "PRECISE returns the subject's pixels unchanged; DEFAULT lets the model blend its edges"),
        "quality": _enum(sorted({q for spec in specs for q in spec.qualities}), "only for models that list qualities"),
        "cfgScale": {
            "type": "number",
            "minimum": min(b[0] for b in cfg_bounds),
            "maximum": max(b[1] for b in cfg_bounds),
            "description": "only for models with a cfgScale range (GET /models)",
        },
        "seed": {
            "type": "integer",
            "minimum": 0,
            "maximum": max(s.seed_max for s in specs),
            "description": "one seed for the whole job; chosen at random and stored when omitted",
        },
        "variants": {"type": "integer", "minimum": 1, "maximum": max(spec.max_variants for spec in specs)},
        "outputFormat": _enum(
            OutputFormat,
            "omit it to follow each original: a JPEG gives a JPEG (quality 95, the original's chroma subsampling), "
            "anything else, or an original with transparency, a PNG",
        ),
        "stylePreset": _enum(
            presets,
            "a style the model applies to the new background (Stability models; GET /models lists each "
            "model's `stylePresets`); omit it for none",
        ),
        "webhookUrl": {
            "type": "string",
            "format": "uri",
            "pattern": "^https://",
            "maxLength": contracts.MAX_WEBHOOK_URL_LENGTH,
            "description": "receives a signed POST when the job finishes (see `webhooks` below); its host must "
            "resolve to public addresses only",
        },
        "blend": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "PRECISE mode: 1 pastes the original subject back, 0 keeps the model's re-lit subject "
            "(models that cut the subject out); see docs/quality.md",
        },
        "shadow": _enum(contracts.ShadowKind, "the subject's shadow on the new background (cut-out models only)"),
        "shadowAngle": {"type": "number", "description": "the light's direction, in degrees"},
        "shadowStrength": {"type": "number", "minimum": 0, "maximum": 1, "description": "0 no shadow, 1 black"},
        "qualityThresholds": _obj(
            {name: {"type": "number", "minimum": 0, "default": value} for name, value in _thresholds().items()},
            closed=True,
            description="where each quality check turns WARN and FAIL (any subset); see docs/quality.md",
        ),
        "reRolls": {
            "type": "integer",
            "minimum": 0,
            "maximum": contracts.MAX_RE_ROLLS,
            "default": contracts.DEFAULT_RE_ROLLS,
            "description": "how many times an image whose scorecard fails is made again with a new seed (the "
            "best attempt is kept; content-filter outcomes are never re-rolled); 0 disables re-rolls",
        },
        "reRollOn": {
            **_enum(contracts.RE_ROLL_ON, "the scorecard outcome that earns a re-roll: FAIL, or WARN as well"),
            "default": contracts.DEFAULT_RE_ROLL_ON,
        },
        "notify": {
            "type": "boolean",
            "default": True,
            "description": "false: no email when this job is done (its webhook, if any, is still sent)",
        },
        "background": {**_ref("Background"), "description": "what goes behind the subject; default a prompt"},
        "placement": _ref("Placement"),
        "preset": _enum(
            sorted(all_presets()),
            "a marketplace preset (GET /presets): sets the background colour, canvas, fill and format the job "
            "does not set itself, and checks every output against its rules",
        ),
        "images": {
            "type": "array",
            "items": _ref("ImageRequest"),
            "minItems": 1,
            "maxItems": contracts.MAX_IMAGES_PER_JOB,
        },
        "budgetUsd": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": costs.MAX_BUDGET_USD,
            "description": "the most the job may spend on model calls, in US dollars (at least one photo's price): "
            "photos whose turn comes after it is spent end FAILED with BUDGET_REACHED, never sent",
        },
        "reviewHours": {
            "type": "number",
            "minimum": contracts.MIN_REVIEW_SECONDS / 3600,
            "maximum": contracts.MAX_REVIEW_HOURS,
            "description": "wait for the owner's approval (POST /jobs/{jobId}/review/approve) before the report and "
            "the email, at most this many hours; then delivered as it is",
        },
        "contentCredentials": {
            "type": "boolean",
            "default": True,
            "description": "false: results carry no signed C2PA manifest (for pipelines that strip or re-sign); "
            "their IPTC/XMP record stays (docs/provenance.md)",
        },
        "keepLocation": {
            "type": "boolean",
            "default": False,
            "description": "true: the originals' GPS position is copied into the results' XMP (dropped by default)",
        },
    }
    if set(job) != JOB_FIELDS or set(image) != IMAGE_FIELDS:
        raise ValueError(
            "the OpenAPI job request and the parser's fields differ: "
            f"{sorted(set(job) ^ JOB_FIELDS)} / {sorted(set(image) ^ IMAGE_FIELDS)} (chalicelib/jobs.py)"
        )
    required = ["images"]  # a prompt only for a prompt background
    return _obj(job, required, closed=True), _obj(image, ["imageRef"], closed=True)


def _background_schemas() -> dict[str, Any]:
    """Background, placement, estimate, presets and compliance (chalicelib.backgrounds, presets)."""
    from chalicelib import backgrounds

    return {
        "Background": _obj(
            {
                "source": _enum(BackgroundSource),
                "color": {
                    "type": "string",
                    "pattern": _pattern(backgrounds.COLOR_RE),
                    "description": "color: #RGB or #RRGGBB",
                },
                "imageRef": {**_ref("ImageRef"), "description": "image: the background photo, from POST /uploads"},
                "prompt": {"type": "string", "description": "scene: what the batch's one shared background shows"},
                "negativePrompt": _STRING,
                "model": {
                    "type": "string",
                    "description": f"scene: a text-to-image model key (GET /models, role "
                    f"scene); default {registry.default_scene_model_key()}",
                },
            },
            ["source"],
            closed=True,
            description="prompt (default: two model calls per image), color, image, transparent or scene (one call "
            "per image; a scene adds one per batch)",
        ),
        "Placement": _obj(
            {
                "width": {
                    "type": "integer",
                    "minimum": contracts.MIN_SOURCE_SIDE,
                    "maximum": contracts.MAX_OUTPUT_SIDE,
                },
                "height": {
                    "type": "integer",
                    "minimum": contracts.MIN_SOURCE_SIDE,
                    "maximum": contracts.MAX_OUTPUT_SIDE,
                },
                "aspect": {"type": "string", "pattern": _pattern(backgrounds.ASPECT_RE), "examples": ["1:1", "4:5"]},
                "fill": {"type": "number", "minimum": 1, "maximum": 100, "description": "% of the frame"},
                "anchor": _enum(backgrounds.ANCHORS),
                "margin": {"type": "number", "minimum": 0, "maximum": backgrounds.MAX_MARGIN_PERCENT},
                "allowUpscale": {"type": "boolean", "default": False},
            },
            closed=True,
            description="the output canvas and where the subject sits (color, image, transparent, scene)",
        ),
        "Estimate": _obj(
            {
                "images": _COUNT,
                "promptImages": _COUNT,
                "composeImages": _COUNT,
                "modelCalls": _obj({k: _COUNT for k in ("perImagePrompt", "perImageCompose", "scene", "total")}),
                "usd": {"type": "number", "description": "the model calls and the quality checks"},
                "modelUsd": {"type": "number"},
                "checksUsd": {"type": "number", "description": "Rekognition's checks, at most"},
                "reRolls": _COUNT,
                "maxUsd": {
                    "type": "number",
                    "description": "if every prompt image were re-rolled `reRolls` times (composed backgrounds are not)",
                },
                "sentence": {"type": "string", "description": "the same, in words"},
            },
            ["usd", "maxUsd", "sentence"],
            description="what the job will cost: its model calls (before retries) and quality checks (registry "
            "prices; docs/models.md)",
        ),
        "Compliance": _obj(
            {
                "preset": _STRING,
                "outcome": _enum(("PASS", "FAIL")),
                "fill": {"type": "number"},
                "checks": {
                    "type": "array",
                    "items": _obj(
                        {
                            "rule": _STRING,
                            "outcome": _enum(("PASS", "FAIL")),
                            "reason": _STRING,
                            "requirement": _STRING,
                            "source": _STRING,
                            "confirmed": {"type": "boolean"},
                        }
                    ),
                },
            },
            ["preset", "outcome", "checks"],
            description="the output against every rule of the job's preset",
        ),
        "PresetList": _obj(
            {"presets": {"type": "array", "items": {"type": "object"}}},
            ["presets"],
            description="each preset's key, displayName, what it applies and its rules (source, date, confirmed)",
        ),
    }


def _quality_outcomes() -> Any:
    from chalicelib import quality

    return quality.Outcome


def _thresholds() -> dict[str, float]:
    from chalicelib import quality

    return quality.DEFAULT_THRESHOLDS.to_dict()


def _counts() -> dict[str, Any]:
    return _obj(
        {s.value: _COUNT for s in ImageStatus},
        [s.value for s in ImageStatus],
        description="how many of the job's images are in each status, live",
    )


def _scorecard() -> dict[str, Any]:
    from chalicelib import quality

    check = _obj(
        {
            "check": _enum(quality.CheckName),
            "outcome": _enum(quality.Outcome),
            "reason": {"type": "string", "description": "one line a person understands"},
        },
        ["check", "outcome", "reason"],
        description="one check; its measured figures (e.g. `psnrDb`) are further properties",
    )
    return _obj(
        {
            "outcome": _enum(quality.Outcome, "the worst outcome of the checks that ran (SKIPPED only if none ran)"),
            "checks": {"type": "array", "items": check},
        },
        ["outcome", "checks"],
        description="the result's quality scorecard (docs/quality.md)",
    )


def _job_summary_properties() -> dict[str, Any]:
    return {
        "jobId": _ref("JobId"),
        "status": _ref("JobStatus"),
        "model": _STRING,
        "createdAt": _TIME,
        "finishedAt": _nullable(_TIME),
        "imageCount": _COUNT,
        "counts": _ref("Counts"),
        "prompt": _nullable(_STRING),
        "cause": {"type": "string", "description": "why a job FAILED without running"},
        "cancelledAt": _TIME,
        "notification": _obj(
            {"status": _STRING, "error": _STRING, "cause": _STRING, "at": _TIME},
            description="present when the summary email could not be sent",
        ),
        "webhook": _ref("WebhookDelivery"),
        "verdicts": _obj(
            {v.value: _COUNT for v in contracts.Verdict if v is not contracts.Verdict.NONE},
            description="finished images per quality verdict (the worst scorecard outcome of their outputs)",
        ),
        "cost": _obj(
            {
                "modelCalls": _COUNT,
                "actualUsd": {
                    "type": "number",
                    "description": "what was done so far: the model calls that answered and the quality checks",
                },
                "estimateUsd": {
                    "type": "number",
                    "description": "the whole job, as POST /jobs estimated it (`estimate.usd`)",
                },
                "budgetUsd": {"type": "number"},
                "pricePerImageUsd": {"type": "number"},
                "priceSource": _STRING,
                "regenerations": {
                    **_COUNT,
                    "description": "regenerations of this job's images added as variants (POST .../regenerate)",
                },
                "regeneratedUsd": {
                    "type": "number",
                    "description": "what those regenerations cost: billed to their own linked jobs, not in `actualUsd`",
                },
            },
            ["modelCalls"],
            description="what the job cost so far, in US dollars",
        ),
        "review": _obj(
            {"status": _enum(("PENDING", *contracts.ReviewStatus)), "deadline": _TIME},
            ["status"],
            description="a job submitted with reviewHours: PENDING until its images are done, then WAITING",
        ),
        "retryOf": {**_ref("JobId"), "description": "the job whose failed images this one sends again"},
        "retriedAs": {**_ref("JobId"), "description": "the one retry of this job's failed images"},
    }


_SUMMARY_REQUIRED: Final = ("jobId", "status", "model", "createdAt", "imageCount", "counts")


def schemas() -> dict[str, Any]:
    job_request, image_request = _job_request()
    webhook_statuses = ("PENDING", "RETRYING", "DELIVERED", "FAILED", "REFUSED")
    label = _obj(
        {
            "name": _STRING,
            "confidence": {"type": "number", "minimum": 0, "maximum": 100},
            "instances": {
                "type": "array",
                "items": _obj(
                    {
                        "box": _obj(
                            {
                                k: {"type": "number", "minimum": 0, "maximum": 1}
                                for k in ("left", "top", "width", "height")
                            },
                            ["left", "top", "width", "height"],
                            description="fractions of the image's width and height",
                        ),
                        "confidence": {"type": "number"},
                    },
                    ["box", "confidence"],
                ),
            },
            "parents": {"type": "array", "items": _STRING},
        },
        ["name", "confidence", "instances", "parents"],
    )
    summary = _job_summary_properties()
    return {
        "Error": _obj(
            {
                "code": _enum(ErrorCode, "stable: branch on it"),
                "message": {"type": "string", "description": "for humans; may change"},
                "details": {
                    "type": "array",
                    "items": _ref("ErrorDetail"),
                    "description": "every problem found, e.g. one per field or per file (empty when none)",
                },
            },
            ["code", "message", "details"],
        ),
        "ErrorDetail": _obj(
            {
                "field": {"type": "string", "description": "where, e.g. `images[3].prompt`"},
                "message": _STRING,
                "code": {
                    "type": "string",
                    "description": "a stable reason where one applies, e.g. BACKGROUND_INVALID, PLACEMENT_INVALID",
                },
                "index": _COUNT,
                "name": _STRING,
                "imageRef": _STRING,
                "reasons": {"type": "array", "items": _STRING},
                "labels": {"type": "array", "items": _STRING},
            }
        ),
        "JobId": {
            "type": "string",
            "pattern": _pattern(contracts.JOB_ID_RE),
            "examples": ["20261125T101500Z-3f9a1c2b7d4e"],
        },
        "ImageRef": {"type": "string", "pattern": _pattern(contracts.IMAGE_REF_RE)},
        "JobStatus": _enum(JobStatus),
        "ImageStatus": _enum(ImageStatus),
        "Counts": _counts(),
        "Health": _obj({"status": {"const": "ok"}}, ["status"]),
        "Model": _obj(
            {
                "key": _STRING,
                "family": _STRING,
                "displayName": _STRING,
                "modelIds": {"type": "object", "additionalProperties": _STRING},
                "lifecycle": _obj(
                    {
                        "status": _enum(("ACTIVE", "LEGACY", "EOL")),
                        "legacyDate": _nullable(_STRING),
                        "eolDate": _nullable(_STRING),
                        "source": _STRING,
                        "checkedWith": _STRING,
                    },
                    ["status"],
                ),
                "limits": _obj(
                    {
                        "promptMax": _INT,
                        "promptRequired": {"type": "boolean"},
                        "negativePromptMax": _INT,
                        "seedMax": _INT,
                        "maxVariants": _INT,
                        "cfgScale": _nullable({"type": "array", "items": {"type": "number"}}),
                        "qualities": {"type": "array", "items": _STRING},
                        "stylePresets": {"type": "array", "items": _STRING},
                        "image": {"type": "object"},
                    }
                ),
                "pricePerImageUsd": {"type": "number"},
                "composePricePerImageUsd": {
                    "type": "number",
                    "description": "per image with a color, image, transparent or scene background (one call)",
                },
                "callPricesUsd": {"type": "object", "additionalProperties": {"type": "number"}},
                "role": _enum(("job", "scene"), "scene: generates a scene background once per batch"),
                "selectable": {
                    "type": "boolean",
                    "description": "accepted by POST /jobs now: not at end of life, and callable from this Region",
                },
                "regions": {
                    "type": "array",
                    "items": _STRING,
                    "description": "the Regions the model can be called from (models.json)",
                },
                "unavailableHere": _nullable(_STRING),
            },
            ["key", "family", "lifecycle", "limits", "selectable"],
        ),
        "ModelList": _obj(
            {
                "models": {"type": "array", "items": _ref("Model")},
                "default": _STRING,
                "region": {"type": "string", "description": "the deployment's Region, which `selectable` is for"},
            },
            ["models", "default"],
        ),
        "UploadRequest": _obj(
            {
                "files": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": contracts.MAX_FILES_PER_UPLOAD_REQUEST,
                    "items": _obj(
                        {
                            "name": {"type": "string", "minLength": 1, "maxLength": contracts.MAX_FILE_NAME_LENGTH},
                            "contentType": _enum(contracts.UPLOAD_CONTENT_TYPES),
                            "size": {
                                "type": "integer",
                                "minimum": contracts.MIN_UPLOAD_BYTES,
                                "maximum": contracts.MAX_UPLOAD_BYTES,
                            },
                        },
                        ["name", "contentType", "size"],
                        closed=True,
                    ),
                }
            },
            ["files"],
        ),
        "Rejection": _obj(
            {
                "field": _STRING,
                "index": _COUNT,
                "name": _STRING,
                "message": _STRING,
                "reasons": {"type": "array", "items": _STRING},
            },
            ["index", "name", "message", "reasons"],
        ),
        "UploadGrant": _obj(
            {
                "uploadId": _STRING,
                "expiresIn": {"type": "integer", "description": "seconds the upload URLs stay valid"},
                "uploads": {
                    "type": "array",
                    "items": _obj(
                        {
                            "index": {"type": "integer", "description": "the file's position in the request"},
                            "imageRef": _ref("ImageRef"),
                            "name": _STRING,
                            "url": {**_URL, "description": "POST the file here as multipart/form-data"},
                            "fields": {
                                "type": "object",
                                "additionalProperties": _STRING,
                                "description": "form fields to send before the `file` field, unchanged",
                            },
                        },
                        ["index", "imageRef", "name", "url", "fields"],
                    ),
                },
                "rejected": {"type": "array", "items": _ref("Rejection")},
            },
            ["uploadId", "uploads", "rejected"],
        ),
        "LabelsRequest": _obj(
            {
                "imageRefs": {
                    "type": "array",
                    "items": _ref("ImageRef"),
                    "minItems": 1,
                    "maxItems": contracts.MAX_LABEL_REFS_PER_REQUEST,
                }
            },
            ["imageRefs"],
        ),
        "Label": label,
        "Labels": _obj(
            {
                "labels": {"type": "object", "additionalProperties": {"type": "array", "items": _ref("Label")}},
                "unavailable": {
                    "type": "object",
                    "additionalProperties": _obj(
                        {"code": {"const": ErrorCode.LABELS_UNAVAILABLE.value}, "message": _STRING}, ["code", "message"]
                    ),
                    "description": "images label detection cannot read, and why; they can still be processed",
                },
                "pending": {
                    "type": "array",
                    "items": _ref("ImageRef"),
                    "description": "refs not answered this time (still being detected, or past one answer's size): "
                    "ask again for these",
                },
            },
            ["labels", "unavailable", "pending"],
        ),
        **_background_schemas(),
        "JobRequest": job_request,
        "ImageRequest": image_request,
        "Submitted": _obj(
            {
                "jobId": _ref("JobId"),
                "status": {"const": JobStatus.SUBMITTED.value},
                "imageCount": _COUNT,
                "model": _STRING,
                "retryOf": {**_ref("JobId"), "description": "POST /jobs/{jobId}/retry: the job retried"},
                "estimate": _ref("Estimate"),
            },
            ["jobId", "status", "imageCount", "model"],
        ),
        "WebhookDelivery": _obj(
            {
                "url": _URL,
                "status": _enum(webhook_statuses, "REFUSED: the URL resolved to a non-public address at send time"),
                "event": _STRING,
                "attempts": _COUNT,
                "lastAttemptAt": _TIME,
                "deliveredAt": _TIME,
                "responseStatus": _INT,
                "lastError": _STRING,
            },
            ["url", "status"],
            description="what happened to the job's webhook; it never changes the job's status",
        ),
        "JobSummary": _obj(summary, _SUMMARY_REQUIRED),
        "JobPage": _obj(
            {"jobs": {"type": "array", "items": _ref("JobSummary")}, "nextCursor": _nullable(_STRING)},
            ["jobs", "nextCursor"],
        ),
        "ImageView": _obj(
            {
                "imageId": _STRING,
                "imageRef": _ref("ImageRef"),
                "name": _STRING,
                "status": _ref("ImageStatus"),
                "errorCode": _nullable(_enum(ErrorCode)),
                "cause": _nullable(_STRING),
                "labels": {"type": "array", "items": _STRING},
                "prompt": _nullable(_STRING),
                "background": _nullable({"type": "object", "description": "the image's own background, if any"}),
                "verdict": _nullable(_enum(v.value for v in contracts.Verdict if v is not contracts.Verdict.NONE)),
                "reviewDecision": _nullable(_enum(contracts.ReviewDecision)),
                "originalUrl": _URL,
                "outputs": {
                    "type": "array",
                    "items": _obj(
                        {
                            "key": _STRING,
                            "variant": {"type": "integer", "minimum": 1},
                            "seed": _INT,
                            "url": _URL,
                            "delivered": {
                                "type": "boolean",
                                "description": "the variant that is delivered (archive, report): one per image",
                            },
                            "pickedBy": _enum(contracts.PickedBy, "who chose the delivered variant"),
                            "attempt": {"type": "integer", "minimum": 1, "description": "the attempt that made it"},
                            "costUsd": {"type": "number", "description": "its model call and checks"},
                            "source": _enum(contracts.VariantSource, "REGENERATED: made by a regenerate request"),
                            "jobId": {**_ref("JobId"), "description": "a regenerated variant: the job that made it"},
                            "prompt": {"type": "string", "description": "a regenerated variant: its prompt"},
                            "quality": _ref("Scorecard"),
                            "producedBy": {"type": "string", "description": "the model that made it"},
                            "background": _enum(BackgroundSource),
                            "width": _INT,
                            "height": _INT,
                            "notes": {
                                "type": "array",
                                "items": _STRING,
                                "description": "what Backdrop did: re-framing, enlargement of the subject or scene",
                            },
                            "compliance": _ref("Compliance"),
                            "consistency": {
                                "type": "object",
                                "description": "what the report compares across a color or scene batch",
                            },
                        },
                        ["key", "variant", "url"],
                    ),
                },
                "attempts": {
                    "type": "array",
                    "description": "every attempt at the image (automatic re-rolls; docs/quality.md)",
                    "items": _obj(
                        {
                            "attempt": {"type": "integer", "minimum": 1},
                            "seed": _INT,
                            "outcome": _enum(_quality_outcomes()),
                            "score": {"type": "number", "description": "colour error (ΔE), lower is better"},
                            "costUsd": {"type": "number", "description": "its model call(s) and checks"},
                            "quality": {"type": "array", "items": _ref("Scorecard")},
                            "errorCode": _enum(ErrorCode, "its model call failed (never kept)"),
                            "cause": _STRING,
                            "kept": {"type": "boolean", "description": "the attempt whose results are delivered"},
                        },
                        ["attempt", "kept"],
                    ),
                },
            },
            ["imageId", "name", "status", "outputs"],
        ),
        "Scorecard": _scorecard(),
        "JobView": _obj(
            {
                **summary,
                "settings": {"type": "object", "description": "the validated settings the job runs with"},
                "images": {
                    "type": "array",
                    "items": _ref("ImageView"),
                    "maxItems": MAX_IMAGES_PAGE_SIZE,
                    "description": "one page of the job's images, in image-id order (absent with `limit=0`)",
                },
                "nextCursor": {
                    **_nullable(_STRING),
                    "description": "the `cursor` of the next page of images; null on the last page (absent with "
                    "`limit=0`)",
                },
                "reports": _obj({"json": _URL, "csv": _URL}, description="presigned, once the job has finished"),
                "reportRewrite": _obj(
                    {
                        "status": _enum(("STARTED", "FAILED"), "STARTED: being written; FAILED: waiting to be started"),
                        "requestedAt": _STRING,
                        "lastError": _STRING,
                    },
                    ["status", "requestedAt"],
                    description="while a pick's change is being written into the report (a large job): the "
                    "report links still give the earlier one",
                ),
                "deletion": {
                    **_ref("Deletion"),
                    "description": "a DELETING job's progress (then `images` is empty, with no cursor and no "
                    "reports); once it is gone, GET answers 404",
                },
                "imagesPreparing": {
                    "type": "boolean",
                    "description": "true while a just-accepted job's images are being written (a few seconds; "
                    "`counts` already counts them): `images` is empty and `message` says so",
                },
                "message": {**_STRING, "description": "what `imagesPreparing` means, in words"},
            },
            [*_SUMMARY_REQUIRED, "settings"],
        ),
        "Removed": _obj(
            {k: _COUNT for k in REMOVED_KINDS},
            list(REMOVED_KINDS),
            description="how many table items (images) and S3 objects of each kind were removed (so far, while "
            "deleting)",
        ),
        "Deletion": _obj(
            {
                "originals": {"type": "boolean", "description": "the uploaded originals go too"},
                "requestedAt": _TIME,
                "updatedAt": {**_TIME, "description": "the last batch removed"},
                "removed": _ref("Removed"),
                "deletingBy": _enum(
                    [c.value for c in ClosingBy],
                    "what finishes the deletion: BACKGROUND (the deleter Lambda the DELETE started) or RECONCILER "
                    "(that start failed, or the run stopped: the reconciler's periodic sweep starts it again)",
                ),
            },
            ["originals", "removed", "deletingBy"],
        ),
        "ReportLink": _obj(
            {"format": _enum(("json", "csv")), "url": _URL, "expiresIn": _INT}, ["format", "url", "expiresIn"]
        ),
        "Cancelled": _obj(
            {
                "jobId": _ref("JobId"),
                "status": {"const": JobStatus.CANCELLED.value},
                "cancelledAt": _TIME,
                "counts": _ref("Counts"),
                "closing": {
                    "type": "boolean",
                    "description": "true (with 202) while a large job's unfinished images are still being closed "
                    "and its report written after the answer; its counts move to CANCELLED meanwhile",
                },
                "closingBy": _nullable(
                    _enum(
                        [c.value for c in ClosingBy],
                        "what finishes the closing: BACKGROUND (started by the cancel) or RECONCILER (the "
                        "background run could not be started or stopped: the reconciler closes the job when the "
                        "stopped workflow's end reaches it, or at its periodic sweep); null when not closing",
                    )
                ),
            },
            ["jobId", "status", "counts", "closing"],
        ),
        "Deleted": _obj(
            {
                "jobId": _ref("JobId"),
                "deleted": {"type": "boolean", "description": "true once the job and its files are gone (200)"},
                "deleting": {
                    "type": "boolean",
                    "description": "true (with 202) while a large job's files and records are removed in the "
                    "background; repeat the DELETE (or GET the job) for its progress",
                },
                "status": {"const": JobStatus.DELETING.value, "description": "while deleting"},
                "deletingBy": _enum([c.value for c in ClosingBy], "while deleting: what finishes it (see `Deletion`)"),
                "alreadyDeleted": {"type": "boolean", "description": "true when an earlier DELETE removed it"},
                "deletedAt": {**_nullable(_TIME), "description": "null while deleting"},
                "imageCount": _COUNT,
                "originals": {"type": "boolean", "description": "while deleting: the uploaded originals go too"},
                "requestedAt": _TIME,
                "updatedAt": _TIME,
                "removed": _ref("Removed"),
            },
            ["jobId", "deleted", "deleting", "alreadyDeleted", "deletedAt", "removed"],
        ),
        "Archive": _obj(
            {
                "state": _enum(("NONE", "BUILDING", "READY", "FAILED")),
                "kind": _STRING,
                "url": {**_URL, "description": "presigned, short-lived (READY)"},
                "expiresIn": _INT,
                "bytes": _COUNT,
                "done": _COUNT,
                "total": _COUNT,
                "cause": _STRING,
                "missingOriginals": {
                    "type": "array",
                    "items": _STRING,
                    "description": "originals left out because S3 no longer has them (uploads expire before "
                    "results); names in the zip, the first 100 (the zip's MISSING-ORIGINALS.txt lists all)",
                },
                "missingOriginalsCount": _COUNT,
            },
            ["state", "kind"],
        ),
        "ArchiveRequest": _obj(
            {
                "originals": {"type": "boolean", "default": False, "description": "the uploaded originals too"},
                "report": {"type": "boolean", "default": False, "description": "the JSON and CSV report too"},
            },
            closed=True,
        ),
        "ReviewRequest": _obj(
            {
                "decisions": {
                    "type": "object",
                    "additionalProperties": _enum(contracts.ReviewDecision),
                    "minProperties": 1,
                    "maxProperties": 100,
                    "description": "image id → APPROVED or REJECTED",
                }
            },
            ["decisions"],
            closed=True,
        ),
        "ReviewRecorded": _obj({"jobId": _ref("JobId"), "decided": _COUNT}, ["jobId", "decided"]),
        "RegenerateRequest": _obj(
            {
                "seed": {"type": "integer", "minimum": 0, "description": "default: one derived from the job's seed"},
                "prompt": {"type": "string", "minLength": 1, "description": "default: the image's prompt"},
            },
            closed=True,
        ),
        "Regenerating": _obj(
            {
                "jobId": {**_ref("JobId"), "description": "the linked one-photo job making it: follow it"},
                "status": {"const": JobStatus.SUBMITTED.value},
                "imageCount": {"const": 1},
                "model": _STRING,
                "estimate": _ref("Estimate"),
                "regenerateOf": _obj({"jobId": _ref("JobId"), "imageId": _STRING}, ["jobId", "imageId"]),
                "seed": _INT,
                "prompt": _STRING,
                "follow": {"type": "string", "description": "GET this path for the linked job's progress"},
            },
            ["jobId", "status", "regenerateOf", "seed", "follow"],
        ),
        "PickRequest": _obj(
            {"variant": {"type": "integer", "minimum": 1, "description": "one of the image's `outputs[].variant`"}},
            ["variant"],
            closed=True,
        ),
        "Picked": _obj(
            {
                "jobId": _ref("JobId"),
                "imageId": _STRING,
                "delivered": {"type": "integer", "minimum": 1, "description": "the variant now delivered"},
                "pickedBy": {"const": contracts.PickedBy.OWNER.value},
                "outputs": {"type": "array", "items": {"type": "object"}, "description": "the image's variants"},
                "report": _enum(
                    tuple(r.value for r in contracts.ReportRefresh),
                    "REWRITTEN: the finished job's report was written again with the pick; REWRITING: a job of "
                    f"more than {SYNC_REWRITE_LIMIT} images, its report is being written again in the background "
                    "(the job's `reportRewrite` until it is done); REWRITE_PENDING: that rewrite could not be "
                    "started (`reportError` says why), the next pick or the reconciler's sweep starts it; "
                    "AT_NEXT_BUILD: the report is not written yet and will carry it",
                ),
                "reportError": {"type": "string", "description": "with REWRITE_PENDING: why the rewrite did not start"},
            },
            ["jobId", "imageId", "delivered", "pickedBy", "outputs", "report"],
        ),
        "ReviewApproved": _obj(
            {"jobId": _ref("JobId"), "review": {"const": "APPROVED"}, "rejected": _COUNT},
            ["jobId", "review", "rejected"],
        ),
        "WebhookSecret": _obj(
            {"secret": {"type": "string", "pattern": "^whsec_"}, "createdAt": _TIME},
            ["secret", "createdAt"],
        ),
        "WebhookEvent": _obj(
            {
                "event": {"const": "job.finished"},
                "deliveryId": {"type": "string", "description": "the same on every retry of this event"},
                "jobId": _ref("JobId"),
                "status": _ref("JobStatus"),
                "model": _STRING,
                "imageCount": _COUNT,
                "counts": _ref("Counts"),
                "createdAt": _TIME,
                "finishedAt": _nullable(_TIME),
                "links": _obj({"job": _STRING, "report": _STRING}),
            },
            ["event", "deliveryId", "jobId", "status", "counts"],
        ),
    }


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
    from chalicelib import labels

    return labels


def idempotency_header() -> str:
    from chalicelib import idempotency

    return idempotency.HEADER


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_BODY_ERRORS: Final = (ErrorCode.BAD_REQUEST, ErrorCode.VALIDATION_FAILED)

OPERATIONS: Final[dict[tuple[str, str], Operation]] = {
    ("GET", "/health"): Operation("Liveness", "Health", example={"status": "ok"}, tags=("meta",)),
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
        "and each rule with the public page it comes from (chalicelib/presets.json).",
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
        *({"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS[name]} for name in view_args),
        *op.query,
        *op.header_params,
    ]
    if parameters:
        operation["parameters"] = parameters
    if op.body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
    operation["security"] = [{SECURITY_SCHEME: []}] if authorized else []
    return operation


_PATH_SCHEMAS: Final[dict[str, Any]] = {
    "job_id": _ref("JobId"),
    "image_id": {"type": "string", "pattern": _pattern(contracts.IMAGE_ID_RE), "description": "an image of the job"},
}


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
            f"routes without an OpenAPI description (chalicelib/openapi.py OPERATIONS): {undocumented}; "
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
