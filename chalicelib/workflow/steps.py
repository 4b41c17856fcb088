"""The per-image workflow steps the state machine calls (prepare, build-mask, finalize, failure).

Each step receives the child execution's state: {"jobId", "owner", "bucket", "settings",
"image": <manifest item>, ...}; it reads and writes S3 and the jobs table only under keys derived
from the job and image ids (chalicelib.core.contracts), so re-running a step writes the same keys and
the same status. Image bytes never travel through state payloads: only S3 URIs do.

Failures raise `StepError` subclasses; the state machine's Catch hands them to `record_failure`,
which turns the error name back into the stable code (chalicelib.core.errors).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.catalogue import costs, presets
from chalicelib.core import backgrounds, contracts, estimate
from chalicelib.core.contracts import BackgroundSource, ErrorCode, ImageStatus
from chalicelib.core.errors import (
    BudgetReached,
    JobCancelled,
    NoSubject,
    PresetUnmet,
    StepError,
    StorageBusy,
    StorageError,
    classify_step_failure,
    client_error_code,
    is_not_found,
    is_transient_storage_error,
)
from chalicelib.delivery import variants
from chalicelib.imaging import consistency, quality
from chalicelib.imaging import images as imaging
from chalicelib.models import registry
from chalicelib.models.base import (
    Box,
    GeneratedImages,
    Geometry,
    ImageTask,
    JobSettings,
    ModelCall,
    ModelSpec,
    settings_from_dict,
)
from chalicelib.models.scene import SceneAdapter, closest_aspect_ratio
from chalicelib.store import s3keys
from chalicelib.store.jobs import JobStore
from chalicelib.workflow import observability

if TYPE_CHECKING:
    from PIL import Image

    from chalicelib.imaging.quality import Check, Scorecard, Thresholds
    from chalicelib.models.adapter import Adapter

KEEP_MASK_GROW_PX = 4  # the model keeps a thin band around the subject and blends from there
# an image's working files in the job's scratch space (contracts.work_key)
CANVAS = "canvas.png"
GEOMETRY = "geometry.json"
SUBJECT_ALPHA = "subject-alpha.png"
ORIGINAL_TEXT = "original-text.json"  # the original's printed text, read once for every attempt
log = logging.getLogger(__name__)


def _deliver(
    result: Image.Image,
    fmt: contracts.OutputFormat,
    source: imaging.SourceFormat,
    text: dict[str, str] | None,
    score: Callable[[Image.Image], Scorecard],
) -> tuple[bytes, Image.Image, Scorecard]:
    """Encode a result and score the file as delivered (decoded, colour-managed): the card's
    fidelity is the downloaded file's, not the pixels before a lossy encoding (issue 27, point 3).
    The encoder's settings are imaging.encode's (JPEG: quality 95, 4:4:4)."""
    body = imaging.encode(result, fmt.value, text=text, icc_profile=source.icc_profile)
    # a PNG is lossless and tagged sRGB (or untagged): decoding it gives back `result` exactly, at
    # ~0.4 s of CPU for 12 MP that would change nothing
    delivered = result if fmt is contracts.OutputFormat.PNG else imaging.decode_delivered(body)
    return body, delivered, score(delivered)


def re_roll_seed(job_seed: int, attempt: int, seed_max: int) -> int:
    """The seed of attempt `attempt` (2, 3, ...): the job's seed moved on by a fixed step per
    attempt, within the model's range, so a job's re-rolls can be made again."""
    return contracts.derived_seed(job_seed, attempt, seed_max)


class _AttemptFailed(Exception):
    """A re-roll's model call failed (the state machine caught it): its code and cause."""

    def __init__(self, code: ErrorCode, cause: str) -> None:
        super().__init__(cause)
        self.code = code
        self.cause = cause


def _no_kms() -> Any:
    raise StorageError("a KMS signing key is configured but Finalize was given no KMS client")


def _weakest_variant(attempts: Sequence[Mapping[str, Any]]) -> int:
    """The variant whose best result ranks last (quality.attempt_rank): where a re-roll goes."""
    ranks = {v: quality.attempt_rank(best)[:-1] for v, best in variants.kept_attempts(attempts).items()}
    return max(ranks, key=lambda v: (ranks[v], v))


def _box(values: Any) -> Box:
    """(left, top, width, height) from the manifest; anything but four numbers is refused."""
    left, top, width, height = (float(v) for v in values)
    return (left, top, width, height)


@dataclass(frozen=True)
class StepInput:
    job_id: str
    owner: str
    bucket: str
    settings: JobSettings
    image: ImageTask
    # a regeneration's job: the image ({"jobId", "imageId"}) its result becomes a variant of
    regenerates: Mapping[str, str] | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> StepInput:
        item = event["image"]
        job_id = str(event["jobId"])
        if not contracts.is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        image = ImageTask(
            image_id=str(item["imageId"]),
            key=str(item["key"]),
            name=str(item.get("name") or item["imageId"]),
            labels=tuple(item.get("labels") or ()),
            boxes=tuple(_box(values) for values in item.get("boxes") or ()),
            prompt=item.get("prompt") or None,
            background=item.get("background") or None,
        )
        if not contracts.IMAGE_ID_RE.match(image.image_id):
            raise ValueError(f"not an image id: {image.image_id!r}")
        regenerates = event["settings"].get(contracts.REGENERATES_SETTING)
        return cls(
            job_id,
            str(event["owner"]),
            str(event["bucket"]),
            settings_from_dict(event["settings"]),
            image,
            dict(regenerates) if regenerates else None,
        )


class Steps:
    """The step logic, given its S3 client and the job store."""

    def __init__(
        self,
        s3: Any,
        store: JobStore,
        rekognition: Any = None,
        start_report_rewrite: Callable[[dict[str, Any]], None] | None = None,
        kms: Callable[[], Any] | None = None,
    ) -> None:
        self.s3 = s3
        # the results' Content Credentials signer (chalicelib/delivery/provenance_sign.py): the deploy's KMS key, or a test certificate
        self.kms = kms
        self.store = store
        # Finalize's subject and text checks; without a client they say they did not run
        self.rekognition = rekognition
        # a regeneration added to a large finished job: its report written in the background
        self.start_report_rewrite = start_report_rewrite

    # ---------------------------------------------------------------- storage helpers

    def _get(self, bucket: str, key: str) -> bytes:
        try:
            body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        except (ClientError, BotoCoreError) as exc:
            if is_transient_storage_error(exc):  # the state machine retries the step
                raise StorageBusy(f"could not read s3://{bucket}/{key}: {client_error_code(exc) or exc}") from exc
            if not isinstance(exc, ClientError):
                raise
            # a missing key is a 403 on AWS: say it is missing where the role may list (s3keys.py)
            code = "NoSuchKey" if s3keys.absent(self.s3, bucket, key, exc) else client_error_code(exc) or exc
            raise StorageError(f"could not read s3://{bucket}/{key}: {code}") from exc

    def _put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            failed = StorageBusy if is_transient_storage_error(exc) else StorageError
            raise failed(f"could not write s3://{bucket}/{key}: {client_error_code(exc) or exc}") from exc

    def _get_json(self, bucket: str, key: str) -> Any:
        raw = self._get(bucket, key)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StorageError(f"s3://{bucket}/{key} is not valid JSON") from exc

    def _put_json(self, bucket: str, key: str, data: Any) -> None:
        self._put(bucket, key, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _write_call(self, step: StepInput, call: ModelCall) -> dict[str, str]:
        request_key = contracts.request_key(step.job_id, step.image.image_id, call.step)
        self._put_json(step.bucket, request_key, call.body)
        return {
            "step": call.step,
            "modelId": call.model_id,
            "requestUri": contracts.s3_uri(step.bucket, request_key),
            "responseUri": contracts.s3_uri(
                step.bucket, contracts.response_key(step.job_id, step.image.image_id, call.step)
            ),
        }

    def _discard_scratch(
        self, step: StepInput, model_steps: Iterable[str], attempts: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        """Delete the image's scratch objects once it has SUCCEEDED: no later step reads them, and
        left to the scratch lifecycle rule a running job's scratch is larger than its results
        (DeleteObjects requests are free). A failed delete is logged: the lifecycle rule still
        expires them, and the image's result is already saved."""
        job_id, image_id = step.job_id, step.image.image_id
        keys = [contracts.work_key(job_id, image_id, name) for name in (CANVAS, GEOMETRY, SUBJECT_ALPHA, ORIGINAL_TEXT)]
        model_steps = list(model_steps)
        # the re-rolls' calls (`_next_attempt` names them after the last step and the attempt)
        model_steps += [f"{model_steps[-1]}.attempt{int(a['attempt'])}" for a in attempts if int(a["attempt"]) > 1]
        for model_step in model_steps:
            keys += [
                contracts.request_key(job_id, image_id, model_step),
                contracts.response_key(job_id, image_id, model_step),
            ]
        try:
            answer = self.s3.delete_objects(
                Bucket=step.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
            )
        except ClientError as exc:
            log.warning(
                "scratch of image %s in job %s left to expire: %s", image_id, job_id, client_error_code(exc) or exc
            )
            return
        for error in answer.get("Errors", []):
            log.warning("scratch object %s left to expire: %s", error.get("Key"), error.get("Code"))

    def _geometry(self, step: StepInput) -> tuple[Geometry, int]:
        data = self._get_json(step.bucket, contracts.work_key(step.job_id, step.image.image_id, GEOMETRY))
        return Geometry.from_dict(data["geometry"]), int(data["orientation"])

    @staticmethod
    def _spec(step: StepInput) -> ModelSpec:
        # get_model, not get_selectable_model: a job accepted yesterday still runs today.
        return registry.get_model(step.settings.model)

    # ---------------------------------------------------------------- steps

    def prepare(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalize the original into the model's canvas; write the first request."""
        step = StepInput.from_event(event)
        if not self.store.start_image(step.job_id, step.image.image_id):
            current = self.store.image(step.job_id, step.image.image_id) or {}
            if current.get("status") == ImageStatus.CANCELLED.value:  # a run that was not stopped in time
                raise JobCancelled(f"job {step.job_id} was cancelled; {step.image.name} is not processed")
        spec = self._spec(step)
        adapter = registry.adapter_for(spec)
        original = self._get(step.bucket, step.image.key)
        width, height, orientation = imaging.probe(original)
        oriented = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        geometry = imaging.fit_canvas(oriented[0], oriented[1], spec.image_limits)
        image = imaging.load_original(original, max_pixels_hint=geometry.canvas_width * geometry.canvas_height)
        canvas_png = imaging.encode_png(imaging.to_canvas(image, geometry))
        self._put(step.bucket, contracts.work_key(step.job_id, step.image.image_id, CANVAS), canvas_png, "image/png")
        self._put_json(
            step.bucket,
            contracts.work_key(step.job_id, step.image.image_id, GEOMETRY),
            {"geometry": geometry.to_dict(), "orientation": orientation},
        )
        background = backgrounds.effective(step.image.background, step.settings.background)
        # a colour / photo / transparent / scene background makes the first call alone
        self._reserve_calls(event, step, len(adapter.steps) if background.needs_inpaint else 1)
        call = adapter.first_call(spec, step.settings, step.image, canvas_png)
        # the state machine routes by recipe after this call: prompt → mask and inpaint, the others
        # (one call) → straight to Finalize's compositing
        recipe = background.source
        return {"family": spec.family.value, "recipe": recipe.value, "call": self._write_call(step, call)}

    def _cutout_alpha(
        self, step: StepInput, spec: ModelSpec, *, require_subject: bool = True
    ) -> tuple[Any, Geometry, str | None]:
        """The remove-background answer as the subject's soft alpha on the model canvas (within
        the kept labels' boxes), its geometry, and what made the cut-out."""
        adapter = registry.adapter_for(spec)
        first_step = adapter.steps[0]
        response = self._get_json(step.bucket, contracts.response_key(step.job_id, step.image.image_id, first_step))
        cutout = imaging.decode_image(adapter.parse_response(spec, first_step, response).images[0])
        geometry, orientation = self._geometry(step)
        boxes = [imaging.orient_box(box, orientation) for box in step.image.boxes]
        boxes_px = imaging.boxes_to_canvas(boxes, geometry)
        canvas_size = (geometry.canvas_width, geometry.canvas_height)
        alpha = imaging.subject_alpha(cutout, boxes_px, size=canvas_size, within=imaging.content_rect(geometry))
        if require_subject and imaging.mask_is_empty(imaging.binary(alpha)):
            self._no_subject(step, bool(boxes_px))
        return alpha, geometry, imaging.provenance(cutout)

    @staticmethod
    def _no_subject(step: StepInput, had_boxes: bool) -> None:
        if had_boxes:
            labels = ", ".join(step.image.labels)
            raise NoSubject(
                f"background removal found no subject inside the boxes of the kept labels ({labels}); "
                "keep other labels or none to keep the whole subject"
            )
        raise NoSubject("background removal found no subject in this image")

    def _reserve_calls(self, event: Mapping[str, Any], step: StepInput, calls: int) -> None:
        """A job with a budget cap: every call of this image is reserved before the first is
        sent, so an image is either sent whole or not at all."""
        self._reserve(
            event,
            lambda most: self.store.reserve_model_calls(step.job_id, step.image.image_id, calls, most),
            "before this photo's turn; it was not sent to the model",
        )

    def _reserve_extra_call(self, event: Mapping[str, Any], step: StepInput, calls_after: int, outcome: str) -> None:
        """A job with a budget cap: a further variant or a re-roll is one more call, reserved
        before it is written (idempotent: a repeated Finalize reserves it once)."""
        self._reserve(
            event,
            lambda most: self.store.reserve_extra_model_call(step.job_id, step.image.image_id, calls_after, most),
            outcome,
        )

    @staticmethod
    def _reserve(event: Mapping[str, Any], reserve: Callable[[int], bool], outcome: str) -> None:
        """Reserve against the job's cap of model calls (none: no budget); BudgetReached says
        what the budget was and what it meant for this photo."""
        settings = event["settings"]
        most = settings.get(costs.MAX_CALLS_SETTING)
        if most is None or reserve(int(most)):
            return
        spent = f"the job's budget of ${float(settings.get(costs.BUDGET_FIELD) or 0):.2f} was spent ({int(most)} model calls)"
        raise BudgetReached(spent + ("" if outcome.startswith(";") else " ") + outcome)

    def build_mask(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Stability path: keep-mask = remove-background alpha within the kept labels' boxes."""
        step = StepInput.from_event(event)
        spec = self._spec(step)
        adapter = registry.adapter_for(spec)
        alpha, _, _ = self._cutout_alpha(step, spec, require_subject=False)
        keep = imaging.keep_mask(alpha, KEEP_MASK_GROW_PX)
        if imaging.mask_is_empty(keep):
            self._no_subject(step, bool(step.image.boxes))
        # the soft subject alpha is what finalize pastes back in PRECISE mode
        alpha_key = contracts.work_key(step.job_id, step.image.image_id, SUBJECT_ALPHA)
        self._put(step.bucket, alpha_key, imaging.encode_png(alpha), "image/png")
        canvas_png = self._get(step.bucket, contracts.work_key(step.job_id, step.image.image_id, CANVAS))
        call = adapter.mask_call(
            spec, step.settings, step.image, canvas_png, imaging.encode_png(imaging.invert_mask(keep))
        )
        return {"call": self._write_call(step, call)}

    def finalize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Decode the model output, restore the original geometry, compose the subject over it
        (PRECISE), score the result, save; and decide whether the image is made again.

        Each call finishes one attempt. The first reads the last model call's response; a re-roll
        (the state machine calls again with this step's previous answer in `finalized`) reads
        the response of the call that answer asked for, with its new seed. An attempt is written
        to the result keys only when it is the best so far (`quality.best_attempt`), so the results
        always hold the best. Answers {"status", "outputs", "attempts", "reroll"}: `reroll` is the
        next model call while the best attempt is still `reRollOn` or worse and re-rolls are left,
        else null, and the image is SUCCEEDED with the best attempt's outputs and every attempt.
        Repeated after the image SUCCEEDED (its scratch is gone by then) it answers from the store."""
        step = StepInput.from_event(event)
        try:
            return self._finalize(step, event)
        except StorageError:
            done = self.store.get_image(step.job_id, step.image.image_id)
            if done and done.get("status") == ImageStatus.SUCCEEDED.value:
                # repeated after the first run discarded the scratch: the same answer, nothing rewritten
                return {
                    "status": ImageStatus.SUCCEEDED.value,
                    "outputs": len(done.get("outputs") or []),
                    "attempts": [{k: v for k, v in a.items() if k != "quality"} for a in done.get("attempts") or []],
                    "reroll": None,
                }
            raise

    def _finalize(self, step: StepInput, event: Mapping[str, Any]) -> dict[str, Any]:
        spec = self._spec(step)
        adapter = registry.adapter_for(spec)
        background = backgrounds.effective(step.image.background, step.settings.background)
        if not background.needs_inpaint:
            # one attempt, never re-rolled: the cut-out is deterministic, so a second one is the same
            attempt, size = self._composed_attempt(step, spec, background)
            return self._finish(step, [attempt], adapter.steps[:1], size=size)
        last_step = adapter.steps[-1]
        previous = event.get("finalized") or {}
        attempts: list[dict[str, Any]] = [dict(a) for a in previous.get("attempts") or []]
        reroll = previous.get("reroll")
        number = int(reroll["attempt"]) if reroll else 1
        # the variant this attempt is made for (its result key): attempts 1..n are the n variants
        # of a one-image-per-call model; a re-roll names the variant it may replace
        variant = int(reroll.get("variant") or 1) if reroll else 1
        if any(int(a["attempt"]) == number for a in attempts):  # a repeated call: the same answer
            attempts = [a for a in attempts if int(a["attempt"]) < number]
        seed = int(reroll["seed"]) if reroll else step.settings.seed
        if reroll:
            try:
                failure = event.get("rerollFailure")
                if failure:  # the call failed after its retries
                    raise _AttemptFailed(*classify_step_failure(failure.get("Error"), failure.get("Cause")))
                key = contracts.split_s3_uri(str(reroll["call"]["responseUri"]))[1]
                made = self._make_attempt(step, spec, key, seed, number, spec.re_roll_price_usd, variant)
            except (StepError, _AttemptFailed) as exc:
                # a failed call never fails the image: the best attempt so far stands; the next
                # variant is still made, and nothing is re-rolled after it (a content filter is never re-rolled)
                code = ErrorCode(exc.code).value
                cause = exc.cause if isinstance(exc, _AttemptFailed) else str(exc)
                attempts.append(
                    {"attempt": number, "variant": variant, "seed": seed, "errorCode": code, "cause": cause[:300]}
                )
                return self._after_attempt(event, step, spec, adapter, attempts, number, re_roll=False)
        else:
            key = contracts.response_key(step.job_id, step.image.image_id, last_step)
            made = self._make_attempt(step, spec, key, seed, number, spec.price_per_image_usd, variant)
        attempt, encoded = made
        attempts.append(attempt)
        # only the best attempt so far of each variant is in its result keys: the delivered file is the kept one
        if quality.best_attempt(variants.of_variant(attempts, variant)) is attempt:
            for output, (body, content_type) in zip(attempt["outputs"], encoded, strict=True):
                self._put(step.bucket, output["key"], body, content_type)
        return self._after_attempt(event, step, spec, adapter, attempts, number, re_roll=True)

    def _after_attempt(
        self,
        event: Mapping[str, Any],
        step: StepInput,
        spec: ModelSpec,
        adapter: Adapter,
        attempts: list[dict[str, Any]],
        number: int,
        *,
        re_roll: bool,
    ) -> dict[str, Any]:
        """What follows attempt `number`: the next variant's call while variants are left (a
        model that returns one image per call makes `variants` calls); then a re-roll while even
        the best variant is `reRollOn` or worse, re-rolls are left and no call failed (it may
        replace the weakest variant); else the image SUCCEEDED. Every further call is reserved
        against the job's budget first, and a spent budget ends the image with what it has."""
        settings = step.settings
        calls = spec.variant_calls(settings.variants)
        best = quality.best_attempt(attempts)
        if number < calls:
            nxt, what = number + 1, "; this photo's further variants were not made"
        elif best is None:
            raise StorageError("no attempt of this image produced a result")
        elif (
            re_roll
            and not any(a.get("errorCode") for a in attempts)
            and number < calls + min(settings.re_rolls, contracts.MAX_RE_ROLLS)
            and quality.needs_re_roll(best, quality.Outcome(settings.re_roll_on), relit=_relit(settings))
        ):
            nxt, what = number + 1, "; this photo was not re-rolled"
        else:
            return self._finish(step, attempts)
        # a variant's own first attempt; a re-roll goes to the weakest variant so far
        variant = nxt if nxt <= calls else _weakest_variant(attempts)
        try:
            self._reserve_extra_call(event, step, len(adapter.steps) + nxt - 1, what)
        except BudgetReached as exc:  # the best attempt so far is delivered, and the report says why
            seed = re_roll_seed(settings.seed, nxt, spec.seed_max)
            attempts.append(
                {"attempt": nxt, "variant": variant, "seed": seed, "errorCode": exc.code.value, "cause": str(exc)}
            )
            return self._finish(step, attempts)
        return self._next_attempt(step, spec, adapter, attempts, nxt, variant)

    def _make_attempt(
        self,
        step: StepInput,
        spec: ModelSpec,
        response_key: str,
        seed: int,
        number: int,
        price: float,
        variant: int = 1,
    ) -> tuple[dict[str, Any], list[tuple[bytes, str]]]:
        """One attempt from the model's response: its record (outputs with their scorecards,
        outcome, score, cost) and each output's encoded bytes, nothing written yet."""
        adapter = registry.adapter_for(spec)
        generated = adapter.parse_response(spec, adapter.steps[-1], self._get_json(step.bucket, response_key))
        outputs, encoded, rekognition_calls = self._make_outputs(step, spec, generated, seed, variant)
        cards = [quality.Scorecard.from_dict(o["quality"]) for o in outputs]
        _say_re_roll(outputs, step.settings)
        cost = round(estimate.attempt_cost_usd(len(outputs), price, rekognition_calls), 4)
        if len(outputs) == 1:  # one variant from one call: what it cost is on it too
            outputs[0].update(attempt=number, costUsd=cost)
        attempt = {
            "attempt": number,
            "variant": variant,
            "seed": seed,
            "outcome": quality.attempt_outcome(cards).value,
            "score": quality.attempt_score(cards),
            "costUsd": cost,
            "outputs": outputs,
        }
        return attempt, encoded

    def _make_outputs(
        self, step: StepInput, spec: ModelSpec, generated: GeneratedImages, attempt_seed: int, first_variant: int = 1
    ) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]], int]:
        """Compose, score and encode every image of one attempt (nothing written): the outputs
        with their scorecards, each one's bytes and content type, and the Rekognition calls made.
        The images are variants `first_variant`, `first_variant + 1`, ... (their result keys)."""
        # numpy-backed compositing and scoring load here, not when the API starts
        from chalicelib.imaging import compose  # numpy: loaded by the steps that composite, not by every step

        adapter = registry.adapter_for(spec)
        geometry, orientation = self._geometry(step)
        original_bytes = self._get(step.bucket, step.image.key)
        original = imaging.load_original(original_bytes)
        source = imaging.source_format(original_bytes)
        size = (geometry.original_width, geometry.original_height)
        settings = step.settings
        alpha = hole = None
        if len(adapter.steps) > 1:  # the Stability path has the cut-out's soft alpha
            alpha_png = self._get(step.bucket, contracts.work_key(step.job_id, step.image.image_id, SUBJECT_ALPHA))
            alpha, hole = imaging.subject_alpha_and_kept_band(
                imaging.decode_image(alpha_png), geometry, size, KEEP_MASK_GROW_PX
            )
        precise = settings.mode == contracts.Mode.PRECISE.value
        shadow = compose.Shadow(contracts.ShadowKind(settings.shadow), settings.shadow_angle, settings.shadow_strength)
        thresholds = quality.Thresholds.from_dict(settings.quality_thresholds or {})
        # the job's format, or the original's (JPEG in, JPEG out) when the job names none
        fmt = (
            contracts.OutputFormat(settings.output_format)
            if settings.output_format
            else imaging.default_output_format(source)
        )
        checks = _RekognitionChecks(self, step, original, orientation, thresholds)
        outputs: list[dict[str, Any]] = []
        encoded: list[tuple[bytes, str]] = []
        pairs = zip(generated.images, generated.seeds, strict=True)
        for index, (data, seed) in enumerate(pairs, start=first_variant):
            canvas = imaging.decode_image(data)
            produced_by = imaging.provenance(canvas)
            result = imaging.from_canvas(canvas, geometry, size)
            if precise and alpha is not None:
                # the model's image is the new background and, for blend < 1, the re-lit subject;
                # the band it was told to keep still shows the old background and is filled
                result = compose.compose(
                    original, alpha, result, blend=settings.blend, relit=result, shadow=shadow, background_hole=hole
                )
            text = {contracts.PROVENANCE_TEXT_KEY: produced_by} if produced_by else None

            def score(delivered: Image.Image) -> Scorecard:
                if alpha is None:
                    return quality.no_cutout_scorecard(spec.key)
                return quality.score_image(original, delivered, alpha, thresholds=thresholds)

            body, _, scorecard = _deliver(result, fmt, source, text, score)
            kept = precise and alpha is not None and settings.blend == 1.0
            scorecard = checks.add_to(scorecard, result, alpha, original=original, subject_kept=kept)
            key = contracts.result_key(step.owner, step.job_id, step.image.image_id, index, fmt)
            # the scorecard measured these pixels; the XMP and the manifest added next change no pixel
            output: dict[str, Any] = {"key": key, "variant": index, "quality": scorecard.to_dict()}
            resized = geometry.canvas_width != size[0] or geometry.canvas_height != size[1]
            used_seed = seed if seed is not None else attempt_seed
            ids = spec.model_ids.values()
            body = self._provenance(
                step, spec, fmt, body, original_bytes, output, size, used_seed, produced_by, resized, ids
            )
            encoded.append((body, contracts.FORMAT_CONTENT_TYPES[fmt]))
            if produced_by:
                output["producedBy"] = produced_by
            seed = seed if seed is not None else attempt_seed
            if seed is not None:
                output["seed"] = int(seed)
            outputs.append(output)
        return outputs, encoded, checks.calls

    def _next_attempt(
        self,
        step: StepInput,
        spec: ModelSpec,
        adapter: Adapter,
        attempts: list[dict[str, Any]],
        number: int,
        variant: int,
    ) -> dict[str, Any]:
        """Write the last model call again with a new seed; answer it as `reroll` (the state
        machine's loop: a further variant or a re-roll, made for `variant`'s result key)."""
        last_step = adapter.steps[-1]
        seed = re_roll_seed(step.settings.seed, number, spec.seed_max)
        body = self._get_json(step.bucket, contracts.request_key(step.job_id, step.image.image_id, last_step))
        call = ModelCall(f"{last_step}.attempt{number}", spec.model_ids[last_step], adapter.with_seed(body, seed))
        return {
            "status": ImageStatus.RUNNING.value,
            "outputs": 0,
            "attempts": attempts,
            "reroll": {"attempt": number, "variant": variant, "seed": seed, "call": self._write_call(step, call)},
        }

    def _finish(
        self,
        step: StepInput,
        attempts: list[dict[str, Any]],
        adapter_steps: Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """The image SUCCEEDED with its best attempt's outputs; every attempt recorded with it.
        `adapter_steps`: the model calls the image made (a composed background: the first alone);
        `size`: the results' size when it is not the original's (a placement's canvas)."""
        kept = variants.kept_attempts(attempts)
        if not kept:
            raise StorageError("no attempt of this image produced a result")
        if size is None:
            geometry, _ = self._geometry(step)
            size = (geometry.original_width, geometry.original_height)
        if adapter_steps is None:
            adapter_steps = registry.adapter_for(self._spec(step)).steps
        adapter_steps = tuple(adapter_steps)
        kept_numbers = {int(a["attempt"]) for a in kept.values()}
        record = [
            {
                **{k: v for k, v in a.items() if k != "outputs"},
                **({"quality": [o["quality"] for o in a["outputs"]]} if a.get("outputs") else {}),
                "kept": int(a["attempt"]) in kept_numbers,
            }
            for a in attempts
        ]
        # every variant's best result, the best of them delivered (the owner may pick another)
        outputs = variants.mark_delivered([o for v in sorted(kept) for o in kept[v]["outputs"]])
        verdict = variants.verdict_of(variants.delivered_output({"outputs": outputs}))
        if step.regenerates:
            # before this image is SUCCEEDED: if it cannot be added, the image fails and says why
            variants.VariantService(
                self.store, self.s3, step.bucket, start_rewrite=self.start_report_rewrite
            ).add_regenerated(
                step.owner,
                step.regenerates,
                outputs[0],
                step.job_id,
                step.image.prompt or step.settings.prompt,
                # billed to this linked job; the parent shows it apart (its regenerations)
                cost_usd=estimate.attempts_cost_usd(attempts),
            )
        # a repeated finalize writes the same keys; the store keeps the first outcome
        self.store.set_image_status(
            step.job_id,
            step.image.image_id,
            ImageStatus.SUCCEEDED,
            outputs=outputs,
            attempts=record,
            width=size[0],
            height=size[1],
            verdict=verdict or quality.Outcome.SKIPPED.value,
            # every call of the image answered, and each further variant or re-roll that made a result
            model_calls=len(adapter_steps) + sum(1 for a in attempts if int(a["attempt"]) > 1 and a.get("outputs")),
            # what each attempt cost (its model call(s) and checks): the job's actual cost
            cost_usd=estimate.attempts_cost_usd(attempts),
        )
        try:  # read from the request and response objects, before they go
            call_seconds = observability.model_call_seconds(
                self.s3, step.bucket, step.job_id, step.image.image_id, adapter_steps
            )
        except ClientError as exc:  # a metric never fails the image
            log.warning("model call times of image %s not read: %s", step.image.image_id, client_error_code(exc) or exc)
            call_seconds = {}
        # only after the status is written: a finalize repeated from here on finds it SUCCEEDED
        self._discard_scratch(step, adapter_steps, attempts)
        return {
            "status": ImageStatus.SUCCEEDED.value,
            "outputs": len(outputs),
            "attempts": [{k: v for k, v in a.items() if k != "quality"} for a in record],
            "reroll": None,
            "modelCallSeconds": call_seconds,
        }

    def _calls_answered(self, step: StepInput) -> list[str]:
        """The image's model calls that answered (and are billed), by step: Bedrock writes a
        call's output to its Output.S3Uri only when it answers, so each response object is one."""
        # one LIST of the image's responses, not a HEAD per call: a HEAD of a call that never
        # answered is a 403 on AWS without ListBucket, and the failure's cause would be lost
        # (chalicelib/store/s3keys.py; the LIST_SCRATCH grant)
        calls = registry.adapter_for(self._spec(step)).steps
        prefix = contracts.response_key(step.job_id, step.image.image_id, "")[: -len(".json")]
        try:
            present = s3keys.keys_under(self.s3, step.bucket, prefix)
        except ClientError as exc:
            raise StorageError(f"could not list s3://{step.bucket}/{prefix}: {client_error_code(exc)}") from exc
        return [c for c in calls if contracts.response_key(step.job_id, step.image.image_id, c) in present]

    def _background_layer(
        self, step: StepInput, background: backgrounds.Background, size: tuple[int, int]
    ) -> tuple[Any, list[str], str | None]:
        """What goes behind the subject at `size` (RGB), notes on it, and what made it."""
        from PIL import Image

        from chalicelib.imaging import compose  # numpy: loaded by the steps that composite, not by every step

        if background.source is BackgroundSource.COLOR:
            return Image.new("RGB", size, background.color or (255, 255, 255)), [], None
        if background.source is BackgroundSource.IMAGE:
            if not background.key:
                raise StorageError("the image background has no stored photo (it was not resolved at submit)")
            photo = imaging.load_original(self._get(step.bucket, background.key))
            what, produced_by = "the background photo", None
        else:  # the batch's scene, generated once before the Map
            photo = imaging.decode_image(self._get(step.bucket, contracts.scene_key(step.job_id)))
            what, produced_by = "the batch's scene", imaging.provenance(photo)
        layer, scale = compose.cover(photo, size)
        notes = []
        if scale > 1.0 + 1e-6:
            notes.append(
                f"{what} ({photo.width}x{photo.height} px) was enlarged {scale:.2f}x to cover the {size[0]}x{size[1]} output"
            )
        return layer, notes, produced_by

    def _provenance(
        self,
        step: StepInput,
        spec: ModelSpec,
        fmt: contracts.OutputFormat,
        body: bytes,
        original: bytes,
        output: dict[str, Any],
        size: tuple[int, int],
        seed: int | None,
        produced_by: str | None,
        resized: bool,
        model_ids: Iterable[str],
    ) -> bytes:
        """The result as delivered: XMP and, unless the job said no, signed Content Credentials
        (chalicelib/delivery/provenance_sign.py); `output` records which (`contentCredentials`)."""
        from chalicelib.delivery import provenance, provenance_sign

        settings = step.settings
        background = backgrounds.effective(step.image.background, settings.background).source.value
        record = provenance.record_for(
            job_id=step.job_id,
            image_id=step.image.image_id,
            variant=int(output["variant"]),
            model=spec.key,
            model_ids=tuple(model_ids),
            seed=seed,
            background=background,
            mode=settings.mode,
            blend=settings.blend,
            original=original,
            original_name=step.image.name,
            scorecard=output["quality"],
            size=size,
            resized=resized,
            produced_by=produced_by,
        )
        output["contentCredentials"] = settings.content_credentials
        output["digitalSourceType"] = record.source_type.value

        def deliver(credentials: bool) -> bytes:
            return provenance_sign.deliver(
                body,
                fmt.value,
                record,
                original,
                credentials=credentials,
                keep_location=settings.keep_location,
                identity=lambda: provenance_sign.configured_identity(os.environ, self.kms or _no_kms),
            )

        try:
            return deliver(settings.content_credentials)
        except Exception as exc:  # signing (KMS, the library) failed: the image is still delivered,
            # with its XMP record, and the report and the email say it carries no credentials
            log.warning("content credentials not signed for %s: %s", step.image.image_id, exc)
            output["contentCredentials"] = False
            output["credentialsError"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            return deliver(False)

    def _composed_attempt(
        self, step: StepInput, spec: ModelSpec, background: backgrounds.Background
    ) -> tuple[dict[str, Any], tuple[int, int]]:
        """A colour / photo / transparent / scene background: one model call (remove-background),
        then the subject is placed on the canvas and composed here. The one attempt's record
        (written to the result key, scored with the Rekognition checks) and the output's size."""
        from chalicelib.imaging import compose  # numpy: loaded by the steps that composite, not by every step

        settings = step.settings
        # a repeated finalize after the scratch is gone fails here, and finalize answers from the store
        canvas_alpha, geometry, cutout_by = self._cutout_alpha(step, spec)
        _, orientation = self._geometry(step)
        original_bytes = self._get(step.bucket, step.image.key)
        original = imaging.load_original(original_bytes)
        size = (geometry.original_width, geometry.original_height)
        alpha, _ = imaging.subject_alpha_and_kept_band(canvas_alpha, geometry, size, 0)
        placement = backgrounds.Placement.from_dict(settings.placement)
        notes: list[str] = []
        held = False
        if placement is not None:
            canvas = placement.canvas_size(size)
            placed = compose.place(
                original,
                alpha,
                canvas,
                fill=placement.fill,
                anchor=placement.anchor,
                margin=placement.margin,
                allow_upscale=placement.allow_upscale,
            )
            original, alpha = placed.original, placed.alpha
            notes.extend(placed.notes)
            size = canvas
            held = placed.held_at_own_resolution
        if settings.preset and held and presets.required_fill(settings.preset):
            # a marketplace that wants the product to fill the frame: a thumbnail-sized subject
            # cannot meet it honestly, and an output that breaks the rule is not delivered
            raise PresetUnmet(
                f"preset {settings.preset}: {notes[-1]}; upload a larger original of this product, or submit "
                "with placement.allowUpscale true to accept an enlarged subject"
            )
        shadow = compose.Shadow(contracts.ShadowKind(settings.shadow), settings.shadow_angle, settings.shadow_strength)
        source = imaging.source_format(original_bytes)
        producers = [p for p in (cutout_by,) if p]
        if background.source is BackgroundSource.TRANSPARENT:
            if shadow.kind is not contracts.ShadowKind.NONE:
                notes.append("a transparent output has no floor to cast a shadow on: the shadow was not drawn")
            result = compose.cutout(original, alpha)
            # a result with alpha is PNG unless the job asked for WebP (JPEG is refused at submit)
            fmt = contracts.OutputFormat(settings.output_format or contracts.OutputFormat.PNG.value)
            # scored as it would look on white: the subject's pixels are what is compared
            behind = compose.plain(size, (255, 255, 255))
            scored = compose.compose(original, alpha, behind)
        else:
            layer, layer_notes, layer_by = self._background_layer(step, background, size)
            notes.extend(layer_notes)
            if layer_by:
                producers.insert(0, f"scene: {layer_by}")
            result = compose.compose(original, alpha, layer, shadow=shadow)
            scored, behind = result, layer
            fmt = (
                contracts.OutputFormat(settings.output_format)
                if settings.output_format
                else imaging.default_output_format(source)
            )
        thresholds = quality.Thresholds.from_dict(settings.quality_thresholds or {})
        produced_by = "; ".join(producers)[: contracts.MAX_PROVENANCE_LENGTH] or None
        text = {contracts.PROVENANCE_TEXT_KEY: produced_by} if produced_by else None

        def score(delivered: Image.Image) -> Scorecard:
            # a transparent file is scored as it looks on white (score_image flattens it)
            return quality.score_image(original, delivered, alpha, thresholds=thresholds)

        encoded, written, scorecard = _deliver(result, fmt, source, text, score)
        checks = _RekognitionChecks(self, step, original, orientation, thresholds)
        if placement is not None:
            # the subject was moved on a new canvas: the kept labels are looked for, not their old boxes
            checks.kept_boxes = []
        # placed or cut out, at blend 1: the subject's pixels are the original's
        scorecard = checks.add_to(scorecard, scored, alpha, original=original, background=behind, subject_kept=True)
        key = contracts.result_key(step.owner, step.job_id, step.image.image_id, 1, fmt)
        output: dict[str, Any] = {
            "key": key,
            "variant": 1,
            "quality": scorecard.to_dict(),
            "background": background.source.value,
            "width": size[0],
            "height": size[1],
        }
        resized = geometry.canvas_width != geometry.original_width or placement is not None
        model_ids = list(spec.model_ids.values())[:1]  # the remove-background call
        if background.source is BackgroundSource.SCENE:  # ... and the model that generated the batch's scene
            model_ids += list(
                registry.get_model(background.model or registry.default_scene_model_key()).model_ids.values()
            )
        encoded = self._provenance(
            step, spec, fmt, encoded, original_bytes, output, size, settings.seed, produced_by, resized, model_ids
        )
        self._put(step.bucket, key, encoded, contracts.FORMAT_CONTENT_TYPES[fmt])
        if background.source in (BackgroundSource.COLOR, BackgroundSource.SCENE):
            # compared across the batch by the report (chalicelib.imaging.consistency)
            output["consistency"] = consistency.measure(scored, alpha)
        if settings.preset:
            # checked on the file as written (a JPEG's encoding can move a "pure" white)
            output["compliance"] = presets.check(
                settings.preset,
                written,
                alpha,
                fmt.value,
                transparent=background.source is BackgroundSource.TRANSPARENT,
            )
            notes.insert(
                0,
                f"re-framed for preset {settings.preset}: a {size[0]}x{size[1]} canvas, the subject at {output['compliance']['fill']:.0f}% fill",
            )
        if notes:
            output["notes"] = notes
        if produced_by:
            output["producedBy"] = produced_by
        output.update(attempt=1, costUsd=round(estimate.attempt_cost_usd(1, spec.compose_price_usd, checks.calls), 4))
        attempt = {
            "attempt": 1,
            "variant": 1,
            "seed": settings.seed,
            "outcome": quality.attempt_outcome([scorecard]).value,
            "score": quality.attempt_score([scorecard]),
            "costUsd": output["costUsd"],
            "outputs": [output],
        }
        # never re-rolled (nothing is drawn by a model to draw again): a FAIL goes to review, and says so
        _say_re_roll(attempt["outputs"], settings, composed=True)
        return attempt, size

    # ---------------------------------------------------------------- the batch's scene

    def prepare_scene(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Write the batch's one text-to-image request (a scene background) to S3."""
        job_id, bucket = str(event["jobId"]), str(event["bucket"])
        if not contracts.is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        settings = settings_from_dict(event["settings"])
        scene = backgrounds.Background.from_dict(settings.background)
        spec = registry.get_model(scene.model or registry.default_scene_model_key())
        placement = backgrounds.Placement.from_dict(settings.placement)
        shape = (1, 1)
        if placement is not None and placement.width and placement.height:
            shape = (placement.width, placement.height)
        elif placement is not None and placement.aspect:
            shape = placement.aspect
        call = SceneAdapter().scene_call(spec, scene, settings.seed, closest_aspect_ratio(*shape))
        request_key = contracts.scene_request_key(job_id)
        self._put_json(bucket, request_key, call.body)
        return {
            "call": {
                "step": call.step,
                "modelId": call.model_id,
                "requestUri": contracts.s3_uri(bucket, request_key),
                "responseUri": contracts.s3_uri(bucket, contracts.scene_response_key(job_id)),
            }
        }

    def finish_scene(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Decode the scene and store it for every image (`{"ready": true}`); or, when generating it
        failed (`sceneFailure`, or a content-filter answer), fail every image of the job with that
        cause (`{"ready": false}`): no image's model call is spent on a batch without its scene."""
        job_id, bucket = str(event["jobId"]), str(event["bucket"])
        if not contracts.is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        failure = event.get("sceneFailure")
        if failure is None:
            settings = settings_from_dict(event["settings"])
            scene = backgrounds.Background.from_dict(settings.background)
            spec = registry.get_model(scene.model or registry.default_scene_model_key())
            adapter = registry.adapter_for(spec)
            try:
                response = self._get_json(bucket, contracts.scene_response_key(job_id))
                # Bedrock wrote its answer, so the call is billed, even a content filter's
                self.store.record_scene_call(job_id, spec.key, spec.price_per_image_usd)
                generated = adapter.parse_response(spec, adapter.steps[0], response)
                image = imaging.decode_image(generated.images[0])
            except StepError as exc:
                failure = {"Error": type(exc).__name__, "Cause": json.dumps({"errorMessage": exc.message})}
            else:
                # the scene keeps what made it (the PNG text chunk), for every result's provenance
                made_by = imaging.provenance(image)
                text = {contracts.PROVENANCE_TEXT_KEY: made_by} if made_by else None
                self._put(bucket, contracts.scene_key(job_id), imaging.encode(image, "png", text=text), "image/png")
                return {"ready": True, "width": image.width, "height": image.height}
        code, cause = classify_step_failure(failure.get("Error"), failure.get("Cause"))
        self.store.close_unfinished(job_id, f"the batch's scene could not be generated: {cause}", code=code)
        return {"ready": False, "errorCode": code.value}

    def record_failure(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Catch handler: mark the image FAILED with a stable code and a readable cause."""
        step = StepInput.from_event(event)
        failure = event.get("failure") or {}
        code, cause = classify_step_failure(failure.get("Error"), failure.get("Cause"))
        spec = self._spec(step)
        answered = self._calls_answered(step)
        self.store.set_image_status(
            step.job_id,
            step.image.image_id,
            ImageStatus.FAILED,
            error_code=code,
            cause=cause,
            model_calls=len(answered),
            # the calls that answered are billed, even for an image that failed after them
            cost_usd=sum(costs.step_price_usd(spec, s, step.settings.variants) for s in answered),
        )
        return {"status": ImageStatus.FAILED.value, "errorCode": code.value}


def _relit(settings: Any) -> bool:
    """Does the model redraw the product's own pixels (outside PRECISE, or blended at < 1)?"""
    return bool(settings.mode != contracts.Mode.PRECISE.value or float(settings.blend) < 1.0)


def _say_re_roll(outputs: Sequence[dict[str, Any]], settings: Any, *, composed: bool = False) -> None:
    """Put on each output's card whether a re-roll can help its failing checks, and why
    (quality.re_roll_decision); a card with nothing failing gets nothing."""
    from chalicelib.imaging import quality

    for output in outputs:
        card = {"attempt": 1, "outputs": [output]}
        helps, reason = quality.re_roll_decision(card, quality.Outcome(settings.re_roll_on), relit=_relit(settings))
        if not reason:
            continue
        if composed:
            helps = False
            reason = reason.replace("Re-rolled: a new background can change this", "Not re-rolled, sent to review")
            reason += " A composed background is never re-rolled: it is not drawn by a model."
        output["quality"]["reRoll"] = {"helps": helps, "review": not helps, "reason": reason}


class _CountingRekognition:
    """The Rekognition client, counting the images it is asked to analyse (each is billed)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def detect_labels(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self.client.detect_labels(**kwargs)

    def detect_text(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self.client.detect_text(**kwargs)


class _RekognitionChecks:
    """One attempt's Rekognition checks: is the kept subject still there and in place
    (DetectLabels on each result against the kept labels and their boxes, stored at labelling),
    and does its printed text read the same (DetectText on each result against the original's,
    read once per image and kept in the job's scratch space, so re-rolls do not pay for it)."""

    def __init__(
        self, steps: Steps, step: StepInput, original: Image.Image, orientation: int, thresholds: Thresholds
    ) -> None:
        self.steps = steps
        self.step = step
        self.original = original
        self.thresholds = thresholds
        self.client = _CountingRekognition(steps.rekognition) if steps.rekognition is not None else None
        # boxes are stored on the stored pixel grid; results are in the oriented frame
        self.kept_boxes = [imaging.orient_box(box, orientation) for box in step.image.boxes]
        self._original_lines: list[dict[str, Any]] | Check | None = None

    @property
    def calls(self) -> int:
        return self.client.calls if self.client is not None else 0

    def add_to(
        self,
        card: Scorecard,
        result: Image.Image,
        alpha: Image.Image | None,
        *,
        original: Image.Image | None = None,
        background: Image.Image | None = None,
        subject_kept: bool = False,
    ) -> Scorecard:
        """The Rekognition checks, then (given the cut-out's alpha and the original in the result's
        frame) the checks against independent references (`quality.reference_checks`).

        `subject_kept`: the composition put the original subject's pixels back bit for bit
        (PRECISE at blend 1, a placed or cut-out subject); its text is then unchanged, and a lossy
        delivered file whose fidelity PASSes (a quality-95 JPEG) does not make it worth a
        DetectText call: the fidelity card measures the file, the text cannot have moved."""
        from chalicelib.imaging import quality

        if self.client is None:
            reason = "Not run: this step was given no Rekognition client."
            card = self._with_references(card, result, alpha, original, background, stand_in=False)
            return card.with_check(
                quality.Check(quality.CheckName.SUBJECT_PRESENT, quality.Outcome.SKIPPED, reason)
            ).with_check(quality.Check(quality.CheckName.TEXT_INTEGRITY, quality.Outcome.SKIPPED, reason))
        image = quality.rekognition_image(result)
        present = quality.check_subject_present(
            self.client, image, self.step.image.labels, self.kept_boxes, thresholds=self.thresholds
        )
        stand_in = bool(present.metrics.get("standIn"))
        fidelity = card.get(quality.CheckName.SUBJECT_FIDELITY)
        identical = bool(fidelity and fidelity.metrics.get("identical") is True)
        if identical or (subject_kept and fidelity is not None and fidelity.outcome is quality.Outcome.PASS):
            text = quality.check_text_integrity(self.client, None, image, subject_identical=True)
        else:
            lines = self.original_lines()
            if isinstance(lines, quality.Check):
                text = lines
            else:
                region = self._subject_region(result, alpha)
                text = quality.check_text_integrity(
                    self.client, None, image, subject_alpha=region, original_lines=lines
                )
        card = self._with_references(card, result, alpha, original, background, stand_in=stand_in)
        return card.with_check(present).with_check(text)

    def _with_references(
        self,
        card: Scorecard,
        result: Image.Image,
        alpha: Image.Image | None,
        original: Image.Image | None,
        background: Image.Image | None,
        *,
        stand_in: bool,
    ) -> Scorecard:
        from chalicelib.imaging import quality

        if alpha is None or original is None:  # no cut-out (a one-call model): nothing to hold it against
            return card
        # the local stand-in's label boxes are the local cut-out engine's own: not a reference
        boxes_from = quality.LOCAL_BOXES if stand_in else None
        for check in quality.reference_checks(
            original, result, alpha, kept_boxes=self.kept_boxes, background=background, boxes_from=boxes_from
        ):
            card = card.with_check(check)
        return card

    def _subject_region(self, result: Image.Image, alpha: Image.Image | None) -> Image.Image | None:
        """Where the subject is, for telling its text from the old background's: the cut-out's
        alpha, or (a model without a cut-out) the kept labels' boxes; None: the whole frame."""
        if alpha is not None or not self.kept_boxes:
            return alpha
        from PIL import Image, ImageDraw

        region = Image.new("L", result.size, 0)
        draw = ImageDraw.Draw(region)
        w, h = result.size
        for left, top, width, height in self.kept_boxes:
            draw.rectangle((left * w, top * h, (left + width) * w, (top + height) * h), fill=255)
        return region

    def original_lines(self) -> list[dict[str, Any]] | Check:
        """The original's printed lines: from the scratch space, or one DetectText call (kept
        there when it answered); a SKIPPED check when Rekognition cannot read it or did not answer."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._original_lines is not None:
            return self._original_lines
        key = contracts.work_key(self.step.job_id, self.step.image.image_id, ORIGINAL_TEXT)
        try:
            # listed first: missing on a first attempt, and a GET of a missing key is a 403 on
            # AWS without ListBucket (chalicelib/store/s3keys.py; the LIST_SCRATCH grant)
            if s3keys.exists(self.steps.s3, self.step.bucket, key):
                cached = self.steps.s3.get_object(Bucket=self.step.bucket, Key=key)["Body"].read()
                self._original_lines = list(json.loads(cached)["lines"])
                return self._original_lines
        except ClientError as exc:
            if not is_not_found(exc):  # deleted between the LIST and the GET: ask again
                raise StorageError(f"could not read s3://{self.step.bucket}/{key}: {client_error_code(exc)}") from exc
        image = quality.rekognition_image(self.original)
        name = quality.CheckName.TEXT_INTEGRITY
        if isinstance(image, str):
            self._original_lines = quality.Check(
                name, quality.Outcome.SKIPPED, image.replace("the image", "the original")
            )
            return self._original_lines
        assert self.client is not None
        try:
            lines = quality.detect_text_lines(self.client, image)
        except (ClientError, BotoCoreError) as exc:
            # not kept: a later attempt asks again
            self._original_lines = quality.not_run(name, "the original", exc)
            return self._original_lines
        except quality.StandInAnswer as exc:  # the local stack: no OCR, so nothing to compare
            self._original_lines = quality.Check(name, quality.Outcome.SKIPPED, str(exc), {"standIn": True})
            return self._original_lines
        self.steps._put_json(self.step.bucket, key, {"lines": lines})
        self._original_lines = lines
        return lines
