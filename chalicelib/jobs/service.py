"""Jobs: parse and validate a submission, persist it, and read it back for its owner only."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.catalogue import costs, presets
from chalicelib.core import backgrounds, contracts, estimate, eta
from chalicelib.core.contracts import BackgroundSource, BackgroundWork, ImageStatus, JobStatus
from chalicelib.core.errors import (
    BadRequest,
    Conflict,
    ModelUnavailable,
    NotFound,
    ServiceBusy,
    StepError,
    UploadMissing,
    ValidationError,
    service_failure,
)
from chalicelib.core.validation import Problems, require_object
from chalicelib.jobs import review
from chalicelib.jobs.labels import LabelService
from chalicelib.jobs.views import ImagesQuery as ImagesQuery  # importable from here as before
from chalicelib.jobs.views import JobViews
from chalicelib.jobs.views import parse_images_query as parse_images_query
from chalicelib.models import registry
from chalicelib.models.base import (
    Box,
    Family,
    ImageTask,
    JobSettings,
    ModelSpec,
    settings_from_dict,
    settings_to_dict,
)
from chalicelib.store import s3keys
from chalicelib.store.jobs import PARALLEL_CALLS, JobStore, NewImage

REQUEST_PROBLEMS = "the job request is not valid"


# A refusal for never-uploaded images names at most about this many (the look-up stops there:
# JobService._missing_uploads)
MISSING_UPLOADS_ENOUGH: Final = 100


@dataclass(frozen=True)
class ImageInput:
    image_ref: str
    name: str
    labels: tuple[str, ...]
    prompt: str | None
    background: backgrounds.Background | None = None  # this image's override of the job's

    @property
    def image_id(self) -> str:
        match = contracts.IMAGE_REF_RE.match(self.image_ref)
        assert match  # validated on parse
        return match.group("image_id")


def _optional(body: dict[str, Any], name: str, kind: type | tuple[type, ...], problems: Problems) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        problems.add(name, f"{name} must be a {getattr(kind, '__name__', 'number')}")
        return None
    return value


def parse_job_request(
    body: Any, *, model_lookup: Callable[[str], ModelSpec] = registry.get_selectable_model, seed: int | None = None
) -> tuple[ModelSpec, JobSettings, list[ImageInput]]:
    """Strictly parse a POST /jobs body; every problem is reported at once.

    The body is checked against the published schema (schemas.JobRequest: types, ranges, what
    DynamoDB stores) and by the rules a schema cannot hold (the chosen model's limits, cross-field
    rules). A refusal names every problem of both; where both name a field, the service's words
    (and its error code, e.g. MODEL_UNAVAILABLE) stand."""
    from chalicelib.catalogue import schemas  # pydantic: only the routes that write pay for its import

    return schemas.refuse_with(
        schemas.JobRequest, body, REQUEST_PROBLEMS, lambda typed: _parse_job_request(typed, model_lookup, seed)
    )


def _parse_job_request(
    body: Any, model_lookup: Callable[[str], ModelSpec], seed: int | None
) -> tuple[ModelSpec, JobSettings, list[ImageInput]]:
    from chalicelib.delivery import webhooks

    body = with_preset(require_object(body))
    problems = Problems(REQUEST_PROBLEMS)  # unknown fields: schemas.JobRequest refuses them
    spec = _model(body, model_lookup)
    settings = _job_settings(body, spec, problems, seed)
    job_background = backgrounds.Background.from_dict(settings.background)
    job_scene = job_background if job_background.source is BackgroundSource.SCENE else None
    images = _images(body, problems, job_scene)
    _check_backgrounds(spec, settings, images, problems)
    if body.get("webhookUrl") is not None:
        problem = webhooks.check_url_syntax(body["webhookUrl"])
        if problem:
            problems.add("webhookUrl", problem)
    problems.raise_if_any()
    validate_for_model(spec, settings, images)
    if job_scene is not None:
        scene_model(job_scene, model_lookup)
    return spec, settings, images


def webhook_url_of(body: Any) -> str | None:
    """The job's webhook URL (checked by parse_job_request), or None."""
    value = body.get("webhookUrl") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def _task(image: ImageInput) -> ImageTask:
    return ImageTask(
        image_id=image.image_id,
        key="",
        name=image.name,
        labels=image.labels,
        prompt=image.prompt,
        background=image.background.to_dict() if image.background else None,
    )


def with_preset(body: dict[str, Any]) -> dict[str, Any]:
    """The body with a marketplace preset's background, placement, format and shadow filled in
    where the job does not set its own (presets.json)."""
    key = body.get("preset")
    if key is None:
        return body
    if not isinstance(key, str):
        raise ValidationError("preset must be a preset key from GET /presets", details=[{"field": "preset"}])
    filled = dict(body)
    for name, value in presets.defaults(key).items():
        if name == "placement" and isinstance(filled.get(name), dict):
            filled[name] = {**value, **filled[name]}  # the job's own placement keys win
        elif filled.get(name) is None and value is not None:
            filled[name] = value
    return filled


def validate_for_model(spec: ModelSpec, settings: JobSettings, images: Sequence[ImageInput]) -> None:
    """The model's own limits (ValidationError naming each field), before anything is spent."""
    registry.adapter_for(spec).validate(spec, settings, [_task(i) for i in images])


def scene_model(scene: backgrounds.Background, model_lookup: Callable[[str], ModelSpec]) -> ModelSpec:
    """The text-to-image model of a scene background, checked as a job's model is: unknown or
    retired (end of life) is refused at submit, and the prompt must fit it."""
    try:
        spec = model_lookup(scene.model or registry.default_scene_model_key())
    except ModelUnavailable as exc:  # unknown, retired, or not callable from this Region: say it is the scene's
        raise ModelUnavailable(
            f"a scene background cannot be made here: {exc.message}",
            details=[{"message": exc.message, **d, "field": "background.model"} for d in exc.details or [{}]],
        ) from exc
    if spec.family is not Family.TEXT_TO_IMAGE:
        raise ValidationError(
            f"model {spec.key} does not generate scenes; background.model must be a text-to-image model",
            details=[
                {"field": "background.model", "message": "not a text-to-image model", "code": "MODEL_UNAVAILABLE"}
            ],
        )
    from chalicelib.models.scene import SceneAdapter  # adapters load on first use (models/registry.py)

    SceneAdapter().validate_scene(spec, scene)
    return spec


def _check_backgrounds(
    spec: ModelSpec, settings: JobSettings, images: Sequence[ImageInput], problems: Problems
) -> None:
    """What a background asks of the model, the placement and the output format."""
    chosen = [
        backgrounds.effective(i.background.to_dict() if i.background else None, settings.background) for i in images
    ]
    composed = [b for b in chosen if not b.needs_inpaint]
    invalid = contracts.ErrorCode.BACKGROUND_INVALID
    if composed and len(registry.adapter_for(spec).steps) < 2:
        problems.add(
            "background",
            f"model {spec.key} does not cut the subject out, so it can only take a prompt background; "
            f"choose {registry.default_model_key()} for a {composed[0].source.value} background",
            code=invalid,
        )
    if settings.placement and len(composed) < len(chosen):
        problems.add(
            "placement",
            "placement applies to color, image, transparent and scene backgrounds; a prompt background keeps "
            "the original's framing",
            code=contracts.ErrorCode.PLACEMENT_INVALID,
        )
    if composed and settings.blend < 1:
        problems.add(
            "blend",
            "blend mixes in the inpainting model's re-lit subject, which only a prompt background has; "
            "a color, image, transparent or scene background keeps the original subject (blend 1)",
            code=invalid,
        )
    if any(b.source is BackgroundSource.TRANSPARENT for b in chosen) and settings.output_format == "jpeg":
        problems.add(
            "outputFormat",
            "a transparent background needs an output format with alpha: png or webp, not jpeg",
            code=invalid,
        )
    refs = {b.image_ref for b in chosen if b.image_ref}
    if len(refs) > backgrounds.MAX_BACKGROUND_IMAGES_PER_JOB:
        problems.add(
            "background",
            f"a job may use at most {backgrounds.MAX_BACKGROUND_IMAGES_PER_JOB} background photos, not {len(refs)}",
            code=invalid,
        )


def _model(body: dict[str, Any], model_lookup: Callable[[str], ModelSpec]) -> ModelSpec:
    model = body.get("model") or registry.default_model_key()
    if not isinstance(model, str):
        raise ValidationError(
            "model must be a model key from GET /models", details=[{"field": "model", "message": "must be a string"}]
        )
    return model_lookup(model)  # ModelUnavailable names the usable ones


def _job_settings(body: dict[str, Any], spec: ModelSpec, problems: Problems, seed: int | None) -> JobSettings:
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        problems.add("prompt", "prompt must be a string")
        prompt = ""
    cfg = _optional(body, "cfgScale", (int, float), problems)
    chosen_seed = _optional(body, "seed", int, problems)
    if chosen_seed is None:
        # one seed for the whole job, stored, so the batch is consistent and reproducible
        chosen_seed = seed if seed is not None else 1 + secrets.randbelow(spec.seed_max)
    variants = _optional(body, "variants", int, problems)
    return JobSettings(
        model=spec.key,
        prompt=prompt,
        negative_prompt=_optional(body, "negativePrompt", str, problems) or "",
        mode=_optional(body, "mode", str, problems) or contracts.Mode.PRECISE.value,
        quality=_optional(body, "quality", str, problems),
        cfg_scale=float(cfg) if cfg is not None else None,
        seed=chosen_seed,
        variants=variants if variants is not None else 1,
        # omitted: each result follows its original (JPEG in, JPEG out; PNG otherwise)
        output_format=_optional(body, "outputFormat", str, problems) or None,
        style_preset=_optional(body, "stylePreset", str, problems),
        **_finish_settings(body, spec, problems),
        **_provenance_settings(body, problems),
    )


def _finish_settings(body: dict[str, Any], spec: ModelSpec, problems: Problems) -> dict[str, Any]:
    """Compositing (blend, shadow) and scoring (qualityThresholds) settings for Finalize."""
    from chalicelib.imaging import quality

    blend = _optional(body, "blend", (int, float), problems)
    if blend is not None and not 0 <= blend <= 1:
        problems.add("blend", "blend must be between 0 (the model's re-lit subject) and 1 (the original subject)")
        blend = None
    shadow = _optional(body, "shadow", str, problems) or contracts.ShadowKind.NONE.value
    if shadow not in {k.value for k in contracts.ShadowKind}:
        problems.add("shadow", f"shadow must be one of {', '.join(k.value for k in contracts.ShadowKind)}")
    angle = _optional(body, "shadowAngle", (int, float), problems)  # finite: the body's decoder refuses NaN
    strength = _optional(body, "shadowStrength", (int, float), problems)
    if strength is not None and not 0 <= strength <= 1:
        problems.add("shadowStrength", "shadowStrength must be between 0 (no shadow) and 1 (black)")
        strength = None
    blended = blend is not None and blend < 1
    if blended and (body.get("mode") or contracts.Mode.PRECISE.value) != contracts.Mode.PRECISE.value:
        problems.add("blend", "blend applies in PRECISE mode; DEFAULT mode already returns the model's pixels")
    shadowed = shadow != contracts.ShadowKind.NONE.value
    # Titan/Nova repaint around a mask prompt in one call: there is no cut-out to shadow or blend
    if (shadowed or blended) and len(registry.adapter_for(spec).steps) < 2:
        problems.add(
            "shadow" if shadowed else "blend",
            f"model {spec.key} does not cut the subject out, so it cannot take a shadow or a blend",
        )
    thresholds = quality.DEFAULT_THRESHOLDS.to_dict()
    raw = body.get("qualityThresholds")
    if raw is not None:
        if not isinstance(raw, dict):
            problems.add("qualityThresholds", "qualityThresholds must be an object of threshold names and numbers")
        else:
            try:
                thresholds = quality.Thresholds.from_dict(raw).to_dict()
            except ValueError as exc:
                problems.add("qualityThresholds", str(exc))
    given = {"blend": blend, "shadow_angle": angle, "shadow_strength": strength}
    background = backgrounds.parse_background("background", body.get("background"), problems)
    placement = backgrounds.parse_placement(body.get("placement"), problems)
    # stored complete, so the job shows the thresholds it was scored against
    return {
        "shadow": shadow,
        "quality_thresholds": thresholds,
        "background": (background or backgrounds.PROMPT_BACKGROUND).to_dict(),
        "placement": placement.to_dict() if placement else None,
        "preset": body.get("preset"),
        **_re_roll_settings(body, problems),
    } | {k: float(v) for k, v in given.items() if v is not None}


def _provenance_settings(body: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """`contentCredentials` (default true: a signed C2PA manifest in every result; false for a
    pipeline that strips or re-signs) and `keepLocation` (default false: the original's GPS
    position is not copied into results that are published; docs/provenance.md)."""
    credentials = _optional(body, "contentCredentials", bool, problems)
    keep_location = _optional(body, "keepLocation", bool, problems)
    return {
        "content_credentials": True if credentials is None else credentials,
        "keep_location": bool(keep_location),
    }


def _re_roll_settings(body: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """`reRolls` (0 to contracts.MAX_RE_ROLLS) and `reRollOn` (FAIL or WARN), stored complete."""
    re_rolls = body.get("reRolls", contracts.DEFAULT_RE_ROLLS)
    if isinstance(re_rolls, bool) or not isinstance(re_rolls, int) or not 0 <= re_rolls <= contracts.MAX_RE_ROLLS:
        problems.add(
            "reRolls",
            f"reRolls must be a whole number from 0 (no re-rolls) to {contracts.MAX_RE_ROLLS}, not {re_rolls!r:.40}",
        )
        re_rolls = contracts.DEFAULT_RE_ROLLS
    re_roll_on = body.get("reRollOn", contracts.DEFAULT_RE_ROLL_ON)
    if re_roll_on not in contracts.RE_ROLL_ON:
        problems.add(
            "reRollOn",
            f"reRollOn must be {' or '.join(contracts.RE_ROLL_ON)} (the scorecard outcome that earns a re-roll)",
        )
        re_roll_on = contracts.DEFAULT_RE_ROLL_ON
    return {"re_rolls": re_rolls, "re_roll_on": re_roll_on}


def _images(
    body: dict[str, Any], problems: Problems, job_scene: backgrounds.Background | None = None
) -> list[ImageInput]:
    raw_images = body.get("images")
    if not isinstance(raw_images, list) or not 1 <= len(raw_images) <= contracts.MAX_IMAGES_PER_JOB:
        count = len(raw_images) if isinstance(raw_images, list) else 0
        problems.add("images", f"images must be a list of 1 to {contracts.MAX_IMAGES_PER_JOB:,} images, not {count:,}")
        return []
    images: list[ImageInput] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_images):
        image = _image(f"images[{index}]", raw, problems, seen, job_scene)
        if image is not None:
            seen.add(image.image_ref)
            images.append(image)
    return images


def _image(
    where: str, raw: Any, problems: Problems, seen: set[str], job_scene: backgrounds.Background | None = None
) -> ImageInput | None:
    """One image of the request, or None when its ref is unusable (its problems are added)."""
    if not isinstance(raw, dict):
        problems.add(where, "each image must be an object with imageRef, name and labels")
        return None
    ref = raw.get("imageRef")
    if not isinstance(ref, str) or not contracts.IMAGE_REF_RE.match(ref):
        problems.add(f"{where}.imageRef", "imageRef must be a ref returned by POST /uploads")
        return None
    if ref in seen:
        problems.add(f"{where}.imageRef", f"image {ref} appears more than once in this job")
        return None
    default_name = ref.rsplit("/", 1)[-1]
    name = raw.get("name") or default_name
    if not isinstance(name, str) or len(name) > contracts.MAX_FILE_NAME_LENGTH:
        problems.add(f"{where}.name", f"name must be a string of at most {contracts.MAX_FILE_NAME_LENGTH} characters")
        name = default_name
    labels = _labels(where, raw.get("labels", []), problems)
    prompt = raw.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        problems.add(f"{where}.prompt", "prompt must be a string")
        prompt = None
    background = backgrounds.parse_background(
        f"{where}.background", raw.get("background"), problems, job_scene=job_scene, is_override=True
    )
    return ImageInput(ref, name, labels, prompt or None, background)


def _labels(where: str, labels: Any, problems: Problems) -> tuple[str, ...]:
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        problems.add(f"{where}.labels", "labels must be a list of label names")
        return ()
    kept = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if len(kept) > contracts.MAX_LABELS_PER_IMAGE:
        problems.add(f"{where}.labels", f"at most {contracts.MAX_LABELS_PER_IMAGE} labels per image, not {len(kept)}")
    for label in kept:
        if len(label) > contracts.MAX_LABEL_LENGTH:
            problems.add(
                f"{where}.labels", f"label {label[:40]!r}... is longer than {contracts.MAX_LABEL_LENGTH} characters"
            )
    return tuple(kept)


def _sources(settings: JobSettings, images: Sequence[ImageInput]) -> list[BackgroundSource]:
    """Each image's background source: its own override, or the job's."""
    return [
        backgrounds.effective(i.background.to_dict() if i.background else None, settings.background).source
        for i in images
    ]


def scene_price_usd(settings: JobSettings, images: Sequence[ImageInput]) -> float | None:
    """The price of the batch's one scene call (None: no image has a scene background)."""
    if BackgroundSource.SCENE not in _sources(settings, images):
        return None
    scene = backgrounds.Background.from_dict(settings.background)
    return registry.get_model(scene.model or registry.default_scene_model_key()).price_per_image_usd


def job_estimate(spec: ModelSpec, settings: JobSettings, images: Sequence[ImageInput]) -> estimate.Estimate:
    """Model calls and dollars for a job: what POST /jobs answers, the job keeps (its views say
    the same figure) and the web app shows."""
    sources = _sources(settings, images)
    return estimate.job_estimate(
        len(images),
        settings.variants,
        spec.price_per_image_usd,
        spec.re_roll_price_usd,
        settings.re_rolls,
        steps_per_prompt_image=len(registry.adapter_for(spec).steps),
        compose_images=sum(1 for s in sources if s in backgrounds.COMPOSE_SOURCES),
        compose_price_usd=spec.compose_price_usd,
        scene_price_usd=scene_price_usd(settings, images),
        variant_calls=spec.variant_calls(settings.variants),
    )


def parse_name(body: Any) -> str | None:
    """POST /jobs `name`: the batch's name for people (the Jobs list, the job page, the CLI), or None."""
    # parse_job_request took the body first: `name` is a string of at most MAX_JOB_NAME_CHARS (its
    # schema), so the one line made of it (no newlines or runs of spaces in a list of jobs) is too
    value = body.get("name") if isinstance(body, dict) else None
    return (" ".join(value.split()) or None) if isinstance(value, str) else None


def _linked_name(what: str, of: str) -> str:
    """A retry's or a regeneration's name, so the Jobs list says what the job is."""
    return f"{what} {of}"[: contracts.MAX_JOB_NAME_CHARS]


def parse_notify(body: Any) -> bool:
    """POST /jobs `notify`: true (the default, also when left out or null) sends the job's email to
    its owner; false opts out. Anything else is refused by parse_job_request (schemas.JobRequest),
    with every other problem of the body, before anything is written."""
    value = body.get("notify") if isinstance(body, dict) else None
    return value if isinstance(value, bool) else True


def _boxes_for(labels: list[dict[str, Any]], kept: tuple[str, ...]) -> tuple[Box, ...]:
    wanted = {name.lower() for name in kept}
    boxes = []
    for label in labels:
        if label["name"].lower() in wanted:
            for instance in label.get("instances", []):
                box = instance["box"]
                boxes.append((box["left"], box["top"], box["width"], box["height"]))
    return tuple(boxes)


def _missing_labels(
    images: Sequence[ImageInput], labels: Mapping[str, list[dict[str, Any]]], keys: Mapping[str, str]
) -> Problems:
    """Kept labels an image does not have (per its detected labels): one problem per image."""
    problems = Problems(REQUEST_PROBLEMS)
    for index, image in enumerate(images):
        if not image.labels:
            continue
        detected = labels.get(keys[image.image_ref]) or []
        names = {label["name"].lower() for label in detected}
        missing = [label for label in image.labels if label.lower() not in names]
        if missing:
            has = ", ".join(label["name"] for label in detected) or "none"
            problems.add(
                f"images[{index}].labels",
                f"image '{image.name}' has no label {', '.join(repr(m) for m in missing)} (its labels: {has})",
                imageRef=image.image_ref,
                labels=missing,
            )
    return problems


class JobService(JobViews):
    """Submits jobs, retries and regenerations (the write side); reads come from JobViews."""

    def __init__(self, store: JobStore, s3: Any, bucket: str, labels: LabelService) -> None:
        self.store = store
        self.s3 = s3
        self.bucket = bucket
        self.labels = labels

    # ------------------------------------------------------------------ write

    def _missing_uploads(self, owner: str, images: list[ImageInput]) -> tuple[list[ImageInput], int]:
        """Images whose original is not in S3, and how many images were checked: one listing per
        upload batch, not a HEAD per image (10,000 HEADs would not fit API Gateway's 29 s).

        Batches are listed PARALLEL_CALLS at a time, and the look-up stops once
        MISSING_UPLOADS_ENOUGH images are known to be missing: 10,000 refs that were never
        uploaded name 10,000 batches, and listing them all took 88 s to refuse (issue #26); a
        refusal that names the first hundred says what is wrong as well."""

        def listed(upload_id: str) -> set[str]:
            prefix = f"{contracts.upload_prefix(owner)}{upload_id}/"
            keys: set[str] = set()
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.update(obj["Key"] for obj in page.get("Contents", []))
            return keys

        by_batch: dict[str, list[ImageInput]] = {}
        for image in images:
            by_batch.setdefault(image.image_ref.split("/", 1)[0], []).append(image)
        upload_ids = list(by_batch)  # in the request's order: the first missing are named first
        missing: list[ImageInput] = []
        checked = 0
        try:
            with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_CALLS, len(upload_ids)))) as pool:
                for start in range(0, len(upload_ids), PARALLEL_CALLS):
                    wave = upload_ids[start : start + PARALLEL_CALLS]
                    for upload_id, present in zip(wave, pool.map(listed, wave), strict=True):
                        batch = by_batch[upload_id]
                        checked += len(batch)
                        missing += [i for i in batch if contracts.upload_key(owner, i.image_ref) not in present]
                    if len(missing) >= MISSING_UPLOADS_ENOUGH:
                        break
        except ClientError as exc:
            raise service_failure(exc, "could not look up the uploads") from exc
        return missing, checked

    def submit(
        self,
        owner: str,
        spec: ModelSpec,
        settings: JobSettings,
        images: list[ImageInput],
        *,
        notify: bool = True,
        email: str | None = None,
        webhook_url: str | None = None,
        budget_usd: float | None = None,
        job_id: str | None = None,
        retry_of: str | None = None,
        review_seconds: int | None = None,
        regenerates: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Persist a validated job. `notify`: whether the job's email goes out (to the owner's own
        subscription); `email`: the owner's address at submit (the token's claim), kept on the job;
        `webhook_url`: where its signed completion webhook goes; `budget_usd`: its cap, kept in its
        settings with the model calls it pays for; `retry_of`: the job whose failed images it retries."""
        from chalicelib.delivery import webhooks

        if webhook_url:
            # where it resolves to now: a host that resolves to a private address is refused
            webhooks.validate_webhook_url(webhook_url)
        missing, checked = self._missing_uploads(owner, images)
        if missing:
            names = ", ".join(f"'{i.name}'" for i in missing[:5])
            counted = f"{len(missing)} image(s)"
            if checked < len(images):  # stopped early: say so, and how far it looked
                counted = f"{len(missing)} of the first {checked:,} of {len(images):,} images checked"
            raise UploadMissing(
                f"{counted} were never uploaded or have expired: {names}",
                details=[{"imageRef": i.image_ref, "name": i.name} for i in missing],
            )
        keys = {i.image_ref: contracts.upload_key(owner, i.image_ref) for i in images}
        # labels not detected yet (the upload event may still be on its way) are detected now
        labels, pending = self.labels.labels_many([keys[i.image_ref] for i in images if i.labels])
        if pending:
            raise ServiceBusy(
                f"the labels of {len(pending):,} image(s) are still being detected; submit again in a few seconds"
            )
        _missing_labels(images, labels, keys).raise_if_any()
        settings, images = self._resolve_background_photos(owner, settings, images)
        job_id = job_id or contracts.new_job_id()
        # noted before the job exists (the sweep drops a note whose job never came): a job whose start
        # never comes (the stream trigger failing, the starter refused) is started, or failed with
        # its cause, by the reconciler's sweep (chalicelib/workflow/reconciler.py)
        self.store.note_background_work(BackgroundWork.START, job_id, owner, self.bucket)
        if webhook_url and self.store.webhook_secret(owner) is None:  # it signs this job's webhook
            self.store.put_webhook_secret(owner, webhooks.new_secret(), replace=False)
        stored_settings = settings_to_dict(settings)
        if budget_usd is not None:
            stored_settings[costs.BUDGET_FIELD] = budget_usd
            stored_settings[costs.MAX_CALLS_SETTING] = costs.max_calls(
                spec, settings.variants, budget_usd, scene_price_usd(settings, images)
            )
        estimated = job_estimate(spec, settings, images)
        if review_seconds is not None:  # the workflow waits this long for the owner's approval
            stored_settings[review.REVIEW_SECONDS_SETTING] = review_seconds
        if regenerates is not None:  # its result becomes one more variant of that image (Finalize)
            stored_settings[contracts.REGENERATES_SETTING] = dict(regenerates)
        new_images = [
            NewImage(
                image_id=i.image_id,
                image_ref=i.image_ref,
                key=keys[i.image_ref],
                name=i.name,
                labels=i.labels,
                boxes=_boxes_for(labels[keys[i.image_ref]], i.labels) if i.labels else (),
                prompt=i.prompt,
                background=i.background.to_dict() if i.background else None,
            )
            for i in images
        ]
        # Accept first: the image records go to S3 in one object, then the job item alone; the
        # starter writes the image items at the partition's pace (chalicelib/workflow/starter.py). Nothing
        # is in the table before the job item, so no failure can leave images without their job.
        images_file = contracts.images_file_key(job_id)
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=images_file,
                Body=json.dumps([image.to_record() for image in new_images], separators=(",", ":")).encode(),
                ContentType="application/json",
            )
        except ClientError as exc:
            raise service_failure(exc, "could not store the job's images") from exc
        try:
            self.store.put_job(
                job_id=job_id,
                owner=owner,
                model=spec.key,
                settings=stored_settings,
                images=new_images,
                notify=notify,
                email=email,
                webhook_url=webhook_url,
                retry_of=retry_of,
                estimate=estimated.to_dict(),
                images_file=images_file,
                name=name,
            )
        except Exception:
            self._forget(images_file)  # the job was not written: nothing may refer to the file
            raise
        calls = eta.calls_per_photo(estimated.to_dict(), len(images))
        planned = eta.job_eta(len(images), calls, eta.map_concurrency())
        return {
            "jobId": job_id,
            "status": JobStatus.SUBMITTED.value,
            "imageCount": len(images),
            "model": spec.key,
            "estimate": estimated.to_dict(),
            "eta": planned.to_dict(datetime.now(UTC)),
            "name": name,
        }

    def _forget(self, key: str) -> None:
        """Best effort: a scratch file no job refers to (the bucket's scratch lifecycle rule removes
        it anyway if this fails)."""
        with contextlib.suppress(ClientError):
            self.s3.delete_object(Bucket=self.bucket, Key=key)

    def _background_photo_problems(self, key: str, where: str, placement: backgrounds.Placement | None) -> str | None:
        """Why a background photo cannot be used (None: it can): it must exist, be an image, and be
        big enough for the canvas (the placement's size, or MIN_BACKGROUND_IMAGE_SIDE)."""
        from chalicelib.imaging import images as imaging  # Pillow: never at the API's cold start

        try:
            data = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if s3keys.absent(self.s3, self.bucket, key, exc):  # a 403 on AWS: chalicelib/store/s3keys.py
                return "the background photo was never uploaded or has expired"
            raise service_failure(exc, "could not read the background photo") from exc
        try:
            width, height, orientation = imaging.probe(data)
        except StepError as exc:
            return f"the background photo cannot be used: {exc.message}"
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if placement and placement.width and placement.height:
            need = (placement.width, placement.height)
            # the photo is scaled to cover the canvas: it must not be enlarged to do so
            if width < need[0] or height < need[1]:
                return (
                    f"the background photo is {width}x{height} px, smaller than the {need[0]}x{need[1]} canvas; "
                    "upload a larger photo or choose a smaller output size"
                )
        elif min(width, height) < backgrounds.MIN_BACKGROUND_IMAGE_SIDE:
            return (
                f"the background photo is {width}x{height} px; its shorter side must be at least "
                f"{backgrounds.MIN_BACKGROUND_IMAGE_SIDE} px"
            )
        return None

    def _resolve_background_photos(
        self, owner: str, settings: JobSettings, images: list[ImageInput]
    ) -> tuple[JobSettings, list[ImageInput]]:
        """Background photos checked in S3 (every problem at once), with the server-derived key of
        each put in its background: a client never names a key."""
        placement = backgrounds.Placement.from_dict(settings.placement)
        problems = Problems(REQUEST_PROBLEMS)
        checked: dict[str, str | None] = {}

        def resolve(where: str, background: backgrounds.Background) -> backgrounds.Background:
            if background.source is not BackgroundSource.IMAGE or not background.image_ref:
                return background
            key = contracts.upload_key(owner, background.image_ref)
            if key not in checked:
                checked[key] = self._background_photo_problems(key, where, placement)
            if checked[key]:
                problems.add(
                    f"{where}.imageRef",
                    str(checked[key]),
                    code=contracts.ErrorCode.BACKGROUND_INVALID,
                    imageRef=background.image_ref,
                )
            return replace(background, key=key)

        job_background = resolve("background", backgrounds.Background.from_dict(settings.background))
        resolved = [
            replace(i, background=resolve(f"images[{n}].background", i.background)) if i.background else i
            for n, i in enumerate(images)
        ]
        problems.raise_if_any()
        return replace(settings, background=job_background.to_dict()), resolved

    def submit_request(
        self, owner: str, body: Any, model_lookup: Callable[[str], ModelSpec], notify: bool, email: str | None
    ) -> dict[str, Any]:
        """POST /jobs: parse the body (every problem at once), then submit."""
        spec, settings, images = parse_job_request(body, model_lookup=model_lookup)
        budget = costs.parse_budget(body, spec, settings.variants, scene_price_usd(settings, images))
        review_seconds = review.parse_review(body)
        return self.submit(
            owner,
            spec,
            settings,
            images,
            notify=notify,
            email=email,
            webhook_url=webhook_url_of(body),
            budget_usd=budget,
            review_seconds=review_seconds,
            name=parse_name(body),
        )

    def retry_failed(
        self, owner: str, job_id: str, model_lookup: Callable[[str], ModelSpec] = registry.get_selectable_model
    ) -> dict[str, Any]:
        """A new job of the failed images, with the same settings (and budget cap); the model is
        checked as on submit. One retry per failed set: a second answers 409 naming the first."""
        job = self.get_job(owner, job_id)
        if job["status"] == JobStatus.DELETING.value:
            raise Conflict(f"job {job_id} is being deleted; there is nothing to retry")
        if job["status"] not in contracts.TERMINAL_JOB_STATUSES:
            raise Conflict(f"job {job_id} is still {job['status']}; retry it when it has finished")
        failed = [i for i in self.store.images(job_id) if i["status"] == ImageStatus.FAILED.value]
        if not failed:
            raise BadRequest(f"job {job_id} has no failed images to retry")
        spec = model_lookup(job["model"])
        settings = replace(settings_from_dict(job["settings"]), model=spec.key)
        images = [
            ImageInput(
                i["imageRef"],
                i["name"],
                tuple(i.get("labels") or ()),
                i.get("prompt"),
                backgrounds.Background.from_dict(i["background"]) if i.get("background") else None,
            )
            for i in failed
        ]
        validate_for_model(spec, settings, images)
        retry_job_id = contracts.new_job_id()
        earlier = self.store.claim_retry(job_id, retry_job_id)
        if earlier is not None:
            raise Conflict(
                f"the failed images of job {job_id} were already sent again as job {earlier}",
                details=[{"jobId": earlier}],
            )
        budget = (job.get("settings") or {}).get(costs.BUDGET_FIELD)
        review_seconds = (job.get("settings") or {}).get(review.REVIEW_SECONDS_SETTING)
        try:
            result = self.submit(
                owner,
                spec,
                settings,
                images,
                notify=job.get("notify") is not False,
                email=job.get("email"),
                webhook_url=(job.get("webhook") or {}).get("url"),
                budget_usd=float(budget) if budget is not None else None,
                job_id=retry_job_id,
                retry_of=job_id,
                review_seconds=int(review_seconds) if review_seconds is not None else None,
                name=_linked_name("Retry of", job.get("name") or job_id),
            )
        except Exception:
            self.store.release_retry(job_id, retry_job_id)  # nothing was made: it may be retried again
            raise
        return {**result, "retryOf": job_id}

    def regenerate(
        self,
        owner: str,
        job_id: str,
        image_id: str,
        body: Any,
        model_lookup: Callable[[str], ModelSpec] = registry.get_selectable_model,
    ) -> dict[str, Any]:
        """POST /jobs/{jobId}/images/{imageId}/regenerate `{"seed"?, "prompt"?}`: a linked job of
        this one photo, the job's settings with one variant and no re-roll, and the seed given
        (else one derived from the job's, past every seed its variants and re-rolls may use) and
        the prompt given (else the image's). When it finishes, its result becomes one more
        variant of the image (`source: REGENERATED`, chalicelib/delivery/variants.py); the owner picks it
        to deliver it. At most contracts.MAX_REGENERATIONS per image."""
        from chalicelib.catalogue import schemas  # pydantic: imported by the routes that write only

        # the body's shape (schemas.RegenerateRequest) before anything is read
        schemas.check(schemas.RegenerateRequest, body, "the regeneration is not valid")
        job = self.get_job(owner, job_id)
        image = self.store.get_image(job_id, image_id) if contracts.IMAGE_ID_RE.match(image_id) else None
        if image is None:
            raise NotFound(f"job {job_id} has no image {image_id[:40]}")
        if image.get("status") != ImageStatus.SUCCEEDED.value:
            raise Conflict(
                f"image {image_id} of job {job_id} is {image.get('status')}: only a finished result is regenerated"
            )
        spec = model_lookup(job["model"])
        settings = settings_from_dict(job["settings"])
        seed, prompt = body.get("seed"), body.get("prompt")  # checked above
        background = backgrounds.effective(image.get("background"), settings.background)
        if not background.needs_inpaint:
            raise BadRequest(
                f"image {image_id} has a {background.source.value} background: it is composed from one cut-out, so "
                "a regeneration would make the same picture"
            )
        settings = replace(settings, model=spec.key, variants=1, re_rolls=0)
        images = [
            ImageInput(
                image["imageRef"],
                image.get("name") or image_id,
                tuple(image.get("labels") or ()),
                prompt if prompt is not None else image.get("prompt"),
                backgrounds.Background.from_dict(image["background"]) if image.get("background") else None,
            )
        ]
        validate_for_model(spec, settings if seed is None else replace(settings, seed=int(seed)), images)
        ordinal = self.store.claim_regeneration(job_id, image_id, contracts.MAX_REGENERATIONS)
        if ordinal is None:
            raise Conflict(
                f"image {image_id} was regenerated {contracts.MAX_REGENERATIONS} times already: pick among its variants"
            )
        if seed is None:
            # past the seeds of every variant and re-roll the job may have made, and the claim's own
            # ordinal: calls at the same moment (they read the same outputs) get different seeds
            seed = contracts.derived_seed(
                settings.seed, contracts.MAX_VARIANTS + contracts.MAX_RE_ROLLS + ordinal, spec.seed_max
            )
        settings = replace(settings, seed=int(seed))
        budget = (job.get("settings") or {}).get(costs.BUDGET_FIELD)
        try:
            result = self.submit(
                owner,
                spec,
                settings,
                images,
                notify=False,  # the owner asked for it on the page: no email for one photo
                email=job.get("email"),
                budget_usd=float(budget) if budget is not None else None,
                regenerates={"jobId": job_id, "imageId": image_id},
                name=_linked_name("Regeneration of", str(images[0].name)),
            )
        except Exception:
            self.store.release_regeneration(job_id, image_id)  # nothing was made: it may be asked for again
            raise
        return {
            **result,
            "regenerateOf": {"jobId": job_id, "imageId": image_id},
            "seed": settings.seed,
            "prompt": images[0].prompt or settings.prompt,
            "follow": f"/jobs/{result['jobId']}",
        }
