"""The request bodies of Backdrop's API, declared once as pydantic models.

Each model is what a route accepts: camelCase names, no field it does not name (`extra="forbid"`),
JSON's own types (strict: `"5"` is not a number, `true` is not 1), ranges, patterns and what
DynamoDB can store. The same models give the OpenAPI document's request components
(`request_components()`, in docs/openapi.json) and the validation of every body that writes
(`problems_of()` / `check()`), so the document and the API cannot disagree on a body's shape.

What a model cannot say stays in the services: what depends on the chosen model or the Region
(GET /models' limits, which models are selectable now), cross-field rules (a transparent
background needs png or webp), and S3 (an `imageRef` that was never uploaded).

The body is validated as the JSON it was: `validation.decode_json_body` has already refused
duplicate keys, lone surrogates, depth, NaN and numbers DynamoDB cannot store, which pydantic does
not check; the decoded value is then given to pydantic's JSON validator (one `json.dumps`), whose
strict mode takes JSON's types as they are (an enum from its string, an integer for a number).

Imported only by the routes that write (pydantic costs cold-start time the polling routes need
not pay; tests/unit/test_cold_start.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from chalicelib.catalogue import costs
from chalicelib.catalogue.presets import all_presets
from chalicelib.core import backgrounds, contracts
from chalicelib.core.contracts import BackgroundSource, ErrorCode, Mode, OutputFormat, ReviewDecision, ShadowKind
from chalicelib.core.errors import BackdropError, ValidationError
from chalicelib.core.validation import DYNAMODB_NUMBER_MAX, summarise
from chalicelib.imaging import quality
from chalicelib.models import registry

# The largest magnitude DynamoDB stores (docs/aws-notes.md#n82-dynamodb-numbers), as a bound a
# JSON Schema can carry: every number a job stores is within it.
NUMBER_MAX: Final = 9.99e125  # float(DYNAMODB_NUMBER_MAX) rounds up to 1e126, which DynamoDB refuses
assert NUMBER_MAX <= DYNAMODB_NUMBER_MAX

# Patterns in the form both pydantic (Rust regex) and JSON Schema (ECMA-262) read the same way
# (docs/aws-notes.md#n90-pydantic-strict-json-validation-and-json-schema-patterns):
# `^...$` without a multi-line flag is the whole string in both (Python's `$` would also take a
# final newline: contracts.py writes `\Z` for Python).
NOT_BLANK: Final = r"\S"
COLOR_PATTERN: Final = r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"
ASPECT_PATTERN: Final = r"^[1-9][0-9]{0,2}:[1-9][0-9]{0,2}$"
HTTPS_PATTERN: Final = r"^https://"


def ecma(pattern: str) -> str:
    """A contracts.py pattern (Python, `(?P<name>`, closing `\\Z`) as JSON Schema and pydantic take it."""
    import re

    plain = re.sub(r"\(\?P<\w+>", "(", pattern)
    return plain.removesuffix("\\Z") + "$" if plain.endswith("\\Z") else plain


IMAGE_REF_PATTERN: Final = ecma(contracts.IMAGE_REF_RE.pattern)
IMAGE_ID_PATTERN: Final = ecma(contracts.IMAGE_ID_RE.pattern)

# what a pattern asks for, in words (the error message names it instead of the regular expression)
_PATTERN_WORDS: Final = {
    NOT_BLANK: "must not be empty or blank",
    COLOR_PATTERN: 'must be a hex colour such as "#FFFFFF" or "#fff"',
    ASPECT_PATTERN: 'must be a ratio such as "1:1" or "4:5"',
    HTTPS_PATTERN: "must be an https:// URL",
    IMAGE_REF_PATTERN: "must be an imageRef returned by POST /uploads",
    IMAGE_ID_PATTERN: "must be an image id of this job (32 hex digits)",
}


def one_of(values: Iterable[str], description: str = "") -> Any:
    """A string from a list that is not a StrEnum of contracts.py (anchors, presets, qualities):
    the schema lists the values, the check refuses the rest naming them."""
    allowed = tuple(values)

    def check(value: str) -> str:
        if value not in allowed:
            raise PydanticCustomError("enum", "Input should be one of {expected}", {"expected": ", ".join(allowed)})
        return value

    extra: dict[str, Any] = {"enum": list(allowed)}
    if description:
        extra["description"] = description
    return Annotated[str, AfterValidator(check), Field(json_schema_extra=extra)]


T = TypeVar("T")


class _Body(BaseModel):
    """A request body's object: camelCase on the wire, nothing unknown, JSON's types only."""

    # defer_build: a model's validator is built when it is first used, so a route pays for its
    # own body's model only (the review route never builds JobRequest's)
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, frozen=True, defer_build=True
    )


def _whole(value: Any) -> Any:
    """JSON has one number type: 1024.0 is the integer 1024 (JSON Schema's `integer` takes it too)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer field: any JSON number with no fractional part (never true or false, never "5"). The
# validator wraps the optional form as a whole, so the field's bounds stay on the integer.
Whole = Annotated[int, BeforeValidator(_whole)]
WholeOrNone = Annotated[int | None, BeforeValidator(_whole)]

# A number any setting may hold: finite (the decoder) and storable (DynamoDB's range).
Number = Annotated[float, Field(ge=-NUMBER_MAX, le=NUMBER_MAX)]

_SPECS = registry.all_models()
_PROMPT_MAX: Final = max(spec.prompt_max for spec in _SPECS)  # each model narrows it (GET /models)
_NEGATIVE_MAX: Final = max(spec.negative_prompt_max for spec in _SPECS)
_CFG: Final = [spec.cfg_scale for spec in _SPECS if spec.cfg_scale]

if TYPE_CHECKING:
    Anchor = str
    PresetKey = str
    QualityName = str
    StylePreset = str
else:
    Anchor = one_of(backgrounds.ANCHORS)
    PresetKey = one_of(
        sorted(all_presets()),
        "a marketplace preset (GET /presets): sets the background colour, canvas, fill and format the job "
        "does not set itself, and checks every output against its rules",
    )
    QualityName = one_of(sorted({q for s in _SPECS for q in s.qualities}), "only for models that list qualities")
    StylePreset = one_of(
        sorted({p for s in _SPECS for p in s.style_presets}),
        "a style the model applies to the new background (Stability models; GET /models lists each model's "
        "`stylePresets`); omit it for none",
    )


# ------------------------------------------------------------------------------ backgrounds


class PromptBackground(_Body):
    """Remove the background, then inpaint a new one from the job's prompt (two calls per image)."""

    source: Literal[BackgroundSource.PROMPT]


class ColorBackground(_Body):
    """A plain colour behind the cut-out."""

    source: Literal[BackgroundSource.COLOR]
    color: str = Field(pattern=COLOR_PATTERN, description="#RGB or #RRGGBB")


class ImageBackground(_Body):
    """The user's own background photo."""

    source: Literal[BackgroundSource.IMAGE]
    image_ref: str = Field(pattern=IMAGE_REF_PATTERN, description="the background photo, from POST /uploads")


class TransparentBackground(_Body):
    """The cut-out alone, with its alpha (PNG or WebP)."""

    source: Literal[BackgroundSource.TRANSPARENT]


class SceneBackground(_Body):
    """One background generated once for the batch by a text-to-image model."""

    source: Literal[BackgroundSource.SCENE]
    prompt: str = Field(pattern=NOT_BLANK, description="what the batch's one shared background shows")
    negative_prompt: str | None = None
    model: str | None = Field(
        None,
        description=f"a text-to-image model key (GET /models, role scene); default {registry.default_scene_model_key()}",
    )


class SceneOverride(_Body):
    """An image's `{"source": "scene"}`: the job's scene (one scene per batch)."""

    source: Literal[BackgroundSource.SCENE]


class Background(RootModel[Any]):
    root: Annotated[
        PromptBackground | ColorBackground | ImageBackground | TransparentBackground | SceneBackground,
        Field(discriminator="source"),
    ]
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "description": "prompt (default: two model calls per image), color, image, transparent or scene (one "
            "call per image; a scene adds one per batch)"
        },
    )


class ImageBackgroundOverride(RootModel[Any]):
    root: Annotated[
        PromptBackground | ColorBackground | ImageBackground | TransparentBackground | SceneOverride,
        Field(discriminator="source"),
    ]
    model_config = ConfigDict(
        defer_build=True,
        json_schema_extra={
            "description": 'an image\'s own background instead of the job\'s (`{"source": "scene"}`: the job\'s scene)'
        },
    )


class Placement(_Body):
    """The output canvas and where the subject sits (color, image, transparent, scene)."""

    width: WholeOrNone = Field(None, ge=contracts.MIN_SOURCE_SIDE, le=contracts.MAX_OUTPUT_SIDE)
    height: WholeOrNone = Field(None, ge=contracts.MIN_SOURCE_SIDE, le=contracts.MAX_OUTPUT_SIDE)
    aspect: str | None = Field(None, pattern=ASPECT_PATTERN, examples=["1:1", "4:5"])
    fill: float | None = Field(None, ge=1, le=100, description="% of the frame")
    anchor: Anchor | None = None
    margin: float | None = Field(None, ge=0, le=backgrounds.MAX_MARGIN_PERCENT)
    allow_upscale: bool | None = Field(None, json_schema_extra={"default": False})


# --------------------------------------------------------------------------------- the job

# What bounds each threshold beyond "not negative": an IoU is a fraction (at most 1), a
# confidence a percentage (Rekognition's 0-100); the others are dB and ΔE, bounded by what is stored.
_THRESHOLD_MAX: Final = {"boxMinOverlap": 1.0, "labelMinConfidence": 100.0}


def _threshold_fields() -> dict[str, Any]:
    return {
        name: (
            float | None,
            Field(None, ge=0, le=_THRESHOLD_MAX.get(name, NUMBER_MAX), json_schema_extra={"default": default}),
        )
        for name, default in quality.DEFAULT_THRESHOLDS.to_dict().items()
    }


class _Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


if TYPE_CHECKING:
    QualityThresholds = _Thresholds
else:
    from pydantic import create_model

    # one field per quality.Thresholds field (its camelCase name and default): a threshold added
    # there is accepted and documented here without an edit
    QualityThresholds = create_model(
        "QualityThresholds",
        __base__=_Thresholds,
        __doc__="where each quality check turns WARN and FAIL (any subset); see docs/quality.md",
        **_threshold_fields(),
    )


class ImageRequest(_Body):
    """One image of a job."""

    image_ref: str = Field(pattern=IMAGE_REF_PATTERN, description="an `imageRef` returned by POST /uploads")
    name: str | None = Field(None, max_length=contracts.MAX_FILE_NAME_LENGTH, description="shown in reports")
    labels: list[Annotated[str, Field(max_length=contracts.MAX_LABEL_LENGTH, pattern=NOT_BLANK)]] | None = Field(
        None,
        max_length=contracts.MAX_LABELS_PER_IMAGE,
        description="the subjects to keep, among the image's labels from POST /labels; empty keeps the whole "
        "subject found by background removal (Stability models)",
    )
    prompt: str | None = Field(None, max_length=_PROMPT_MAX, description="this image's prompt")
    background: ImageBackgroundOverride | None = None


class JobRequest(_Body):
    """The POST /jobs body."""

    prompt: str | None = Field(
        None,
        max_length=_PROMPT_MAX,
        description="the new background, in words (each model narrows the length: GET /models, promptMax)",
    )
    negative_prompt: str | None = Field(None, max_length=_NEGATIVE_MAX)
    model: str | None = Field(
        None,
        description="a model key from GET /models (only `selectable` ones: that depends on the Region and the "
        f"date, so GET /models is the list); default {registry.default_model_key()}",
        json_schema_extra={"examples": [s.key for s in _SPECS]},
    )
    mode: Mode | None = Field(
        None, description="PRECISE returns the subject's pixels unchanged; DEFAULT lets the model blend its edges"
    )
    quality: QualityName | None = None
    cfg_scale: float | None = Field(
        None,
        ge=min(b[0] for b in _CFG),
        le=max(b[1] for b in _CFG),
        description="only for models with a cfgScale range (GET /models)",
    )
    seed: WholeOrNone = Field(
        None,
        ge=0,
        le=max(s.seed_max for s in _SPECS),
        description="one seed for the whole job; chosen at random and stored when omitted",
    )
    variants: WholeOrNone = Field(None, ge=1, le=max(s.max_variants for s in _SPECS))
    output_format: OutputFormat | None = Field(
        None,
        description="omit it to follow each original: a JPEG gives a JPEG (quality 95, 4:4:4 "
        "chroma), anything else, or an original with transparency, a PNG",
    )
    style_preset: StylePreset | None = None
    webhook_url: str | None = Field(
        None,
        pattern=HTTPS_PATTERN,
        max_length=contracts.MAX_WEBHOOK_URL_LENGTH,
        description="receives a signed POST when the job finishes (see `webhooks` below); its host must resolve to "
        "public addresses only",
        json_schema_extra={"format": "uri"},
    )
    blend: float | None = Field(
        None,
        ge=0,
        le=1,
        description="PRECISE mode: 1 pastes the original subject back, 0 keeps the model's re-lit subject (models "
        "that cut the subject out); see docs/quality.md",
    )
    shadow: ShadowKind | None = Field(None, description="the subject's shadow on the new background (cut-out models)")
    shadow_angle: Number | None = Field(None, description="the light's direction, in degrees")
    shadow_strength: float | None = Field(None, ge=0, le=1, description="0 no shadow, 1 black")
    quality_thresholds: QualityThresholds | None = None
    re_rolls: WholeOrNone = Field(
        None,
        ge=0,
        le=contracts.MAX_RE_ROLLS,
        description="how many times an image whose scorecard fails is made again with a new seed (the best attempt "
        "is kept; content-filter outcomes are never re-rolled); 0 disables re-rolls",
        json_schema_extra={"default": contracts.DEFAULT_RE_ROLLS},
    )
    re_roll_on: Literal["FAIL", "WARN"] | None = Field(
        None,
        description="the scorecard outcome that earns a re-roll: FAIL, or WARN as well",
        json_schema_extra={"default": contracts.DEFAULT_RE_ROLL_ON},
    )
    notify: bool | None = Field(
        None,
        description="false: no email when this job is done (its webhook, if any, is still sent)",
        json_schema_extra={"default": True},
    )
    background: Background | None = Field(None, description="what goes behind the subject; default a prompt")
    placement: Placement | None = None
    preset: PresetKey | None = None
    images: list[ImageRequest] = Field(min_length=1, max_length=contracts.MAX_IMAGES_PER_JOB)
    budget_usd: float | None = Field(
        None,
        gt=0,
        le=costs.MAX_BUDGET_USD,
        description="the most the job may spend on model calls, in US dollars (at least one photo's price): photos "
        "whose turn comes after it is spent end FAILED with BUDGET_REACHED, never sent",
    )
    review_hours: float | None = Field(
        None,
        ge=contracts.MIN_REVIEW_SECONDS / 3600,
        le=contracts.MAX_REVIEW_HOURS,
        description="wait for the owner's approval (POST /jobs/{jobId}/review/approve) before the report and the "
        "email, at most this many hours; then delivered as it is",
    )
    name: str | None = Field(
        None,
        max_length=contracts.MAX_JOB_NAME_CHARS,
        description="the batch's name for people, shown on the job list and the job's page (made one line)",
    )
    content_credentials: bool | None = Field(
        None,
        description="false: results carry no signed C2PA manifest (for pipelines that strip or re-sign); their "
        "IPTC/XMP record stays (docs/provenance.md)",
        json_schema_extra={"default": True},
    )
    keep_location: bool | None = Field(
        None,
        description="true: the originals' GPS position is copied into the results' XMP (dropped by default)",
        json_schema_extra={"default": False},
    )


# ------------------------------------------------------------------------- the other bodies


class UploadFile(_Body):
    name: str = Field(min_length=1, max_length=contracts.MAX_FILE_NAME_LENGTH)
    content_type: one_of(contracts.UPLOAD_CONTENT_TYPES)  # type: ignore[valid-type]
    size: Whole = Field(ge=contracts.MIN_UPLOAD_BYTES, le=contracts.MAX_UPLOAD_BYTES)


class UploadRequest(_Body):
    """POST /uploads. Each file is judged on its own (one bad file never costs the good ones):
    `files` is checked here, each file by chalicelib/jobs/uploads.py, which answers it in `rejected`."""

    files: list[Any] = Field(
        min_length=1,
        max_length=contracts.MAX_FILES_PER_UPLOAD_REQUEST,
        json_schema_extra={"items": {"$ref": "#/components/schemas/UploadFile"}},
    )


class LabelsRequest(_Body):
    image_refs: list[Annotated[str, Field(pattern=IMAGE_REF_PATTERN)]] = Field(
        min_length=1, max_length=contracts.MAX_LABEL_REFS_PER_REQUEST
    )


class ArchiveRequest(_Body):
    originals: bool = Field(False, description="the uploaded originals too")
    report: bool = Field(False, description="the JSON and CSV report too")


ImageId = Annotated[str, Field(pattern=IMAGE_ID_PATTERN)]


class ReviewRequest(_Body):
    decisions: dict[ImageId, ReviewDecision] = Field(
        min_length=1,
        max_length=contracts.MAX_DECISIONS_PER_REQUEST,
        description="image id → APPROVED or REJECTED",
    )


class RegenerateRequest(_Body):
    seed: WholeOrNone = Field(
        None, ge=0, le=max(s.seed_max for s in _SPECS), description="default: one derived from the job's seed"
    )
    prompt: str | None = Field(None, pattern=NOT_BLANK, description="default: the image's prompt")


class PickRequest(_Body):
    variant: Whole = Field(ge=1, description="one of the image's `outputs[].variant`")


REQUEST_MODELS: Final[tuple[type[BaseModel], ...]] = (
    JobRequest,
    ImageRequest,
    Background,
    Placement,
    UploadRequest,
    UploadFile,
    LabelsRequest,
    ArchiveRequest,
    ReviewRequest,
    RegenerateRequest,
    PickRequest,
)


# ------------------------------------------------------------------------------ validation

_KINDS: Final = {
    "string_type": "string",
    "int_type": "whole number",
    "int_from_float": "whole number",
    "float_type": "number",
    "bool_type": "true or false",
    "list_type": "list",
    "dict_type": "JSON object",
    "model_type": "JSON object",
    "model_attributes_type": "JSON object",
}
# what a field holds, where "a number" says less than its own words (the services' wording)
_FIELD_WORDS: Final = {
    "budgetUsd": "an amount in US dollars, such as 25 or 12.5",
    "reviewHours": "a number of hours, such as 24",
    "notify": "true or false",
}
_TAGS: Final = frozenset(s.value for s in BackgroundSource)
_SOURCES: Final = ", ".join(s.value for s in BackgroundSource)


def _field(loc: Sequence[int | str]) -> str:
    """pydantic's location as the API names fields: `images[3].background.color`. A tagged
    union puts the tag it chose in the location (`background.color.color`): left out here."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (part in _TAGS and isinstance(previous, str) and previous == "background"):
            out = f"{out}.{part}" if out else part
        previous = part
    return out or "body"


def _tag(loc: Sequence[int | str]) -> str | None:
    """The background source pydantic chose for a tagged union's error (in its location)."""
    for previous, part in zip(loc, loc[1:], strict=False):
        if previous == "background" and part in _TAGS:
            return str(part)
    return None


def _message(error: Mapping[str, Any], field: str) -> tuple[str, str]:
    """The field and a sentence for one pydantic error, in the API's words."""
    kind, ctx = error["type"], error.get("ctx") or {}
    name = field.rsplit(".", 1)[-1]
    if kind == "extra_forbidden":
        tag = _tag(error["loc"])
        if tag is None:
            return field, f"unknown field {name!r}"
        # the union member says which background it is: name it, as a person would
        override = field.startswith("images[")
        hint = " (an image's scene is the job's scene: set it on the job's background)" if override else ""
        return field, f"a {tag} background takes no {name!r}{hint}"
    if kind == "missing":
        return field, f"{name} is required"
    if kind in _KINDS:
        kind_words = _FIELD_WORDS.get(name) or f"{'an' if _KINDS[kind][0] in 'aeiou' else 'a'} {_KINDS[kind]}"
        return field, f"{name} must be {kind_words}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        shown = repr(ctx.get("tag", ""))[:40]
        return f"{field}.source", f"source must be one of {_SOURCES}, not {shown}"
    if kind in ("enum", "literal_error"):
        return field, f"{name} must be one of {ctx.get('expected', '')}".replace("'", "")
    if kind == "string_pattern_mismatch":
        return field, f"{name} {_PATTERN_WORDS.get(ctx.get('pattern', ''), 'is not in the expected form')}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("more than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return field, f"{name} must be {words} {_figure(ctx.get(key))}"
    if kind in ("string_too_long", "string_too_short"):
        words = "at most" if kind == "string_too_long" else "at least"
        return field, f"{name} must be {words} {ctx.get('max_length', ctx.get('min_length'))} characters"
    if kind in ("too_long", "too_short"):
        words = "at most" if kind == "too_long" else "at least"
        limit = ctx.get("max_length", ctx.get("min_length"))
        return field, f"{name} must have {words} {limit:,} items, not {ctx.get('actual_length', '?'):,}"
    return field, f"{name}: {error['msg']}"


def _figure(value: Any) -> str:
    """A bound as people write it: 1,000,000 and 0.5, not 1000000.0."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value!s:.40}"


def _code(field: str) -> ErrorCode | None:
    """The stable reason a background's or a placement's problem carries (as the services give it)."""
    parts = field.split(".")
    if "background" in parts:
        return ErrorCode.BACKGROUND_INVALID
    if parts[0] == "placement":
        return ErrorCode.PLACEMENT_INVALID
    return None


@functools.cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def _validated(model: type[BaseModel], body: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(the typed body, []) when `body` fits `model`; (None, every problem) otherwise."""
    try:
        return _adapter(model).validate_json(json.dumps(body), strict=True), []
    except PydanticValidationError as exc:
        found: dict[str, dict[str, Any]] = {}
        for error in exc.errors(include_url=False):
            field, message = _message(error, _field(error["loc"]))
            problem: dict[str, Any] = {"field": field, "message": message}
            code = _code(field)
            if code is not None:
                problem["code"] = code.value
            found.setdefault(f"{field}\0{message}", problem)  # a union may report one problem twice
        return None, list(found.values())


def problems_of(model: type[BaseModel], body: Any) -> list[dict[str, Any]]:
    """Every problem of `body` (already decoded by validation.decode_json_body) against `model`:
    `{"field", "message"[, "code"]}` each, in the API's field notation; empty when it fits."""
    return _validated(model, body)[1]


def check(model: type[BaseModel], body: Any, intro: str) -> Any:
    """`body` as `model` (a typed object), or a 400 VALIDATION_FAILED naming every problem at once."""
    typed, found = _validated(model, body)
    if found:
        raise ValidationError(summarise(intro, found), details=found)
    return typed


def refuse_with(model: type[BaseModel], body: Any, intro: str, parse: Callable[[Any], T]) -> T:
    """`parse(body)` (a service's own checks, which must not write) given the body as the model
    read it (1024.0 is 1024, each field as its type) when it fits; else a 400 naming every problem
    of both. Where the service's error already names every field the schema refuses, it stands as
    it is (its wording and code, e.g. MODEL_UNAVAILABLE)."""
    typed, found = _validated(model, body)
    if not found:
        # null is "not given": the service sees the fields the body gave a value
        return parse(typed.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True))
    try:
        parse(body)
    except BackdropError as exc:
        named = {d.get("field") for d in exc.details or [] if isinstance(d, Mapping)}
        if all(p["field"] in named for p in found):
            raise
        raise merged(found, exc, intro) from exc
    raise merged(found, None, intro)


def merged(found: Sequence[Mapping[str, Any]], error: BackdropError | None, intro: str) -> ValidationError:
    """The schema's problems with a service's own (its wording first): one answer naming both."""
    details = error.details if error is not None else None
    items = [dict(d) for d in (details if isinstance(details, list) else []) if isinstance(d, Mapping)]
    if error is not None and not items:  # e.g. an unknown model: said, with its stable code
        items = [{"field": "body", "message": error.message, "code": error.code.value}]
    named = {item.get("field") for item in items}
    items += [dict(p) for p in found if p["field"] not in named]
    return ValidationError(summarise(intro, items), details=items)


# ---------------------------------------------------------------------------- JSON Schema


def request_components() -> dict[str, Any]:
    """The request bodies' JSON Schemas, as OpenAPI components (`#/components/schemas/<Name>`)."""
    from chalicelib.catalogue.json_schema import components

    return components(REQUEST_MODELS)
