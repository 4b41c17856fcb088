"""One attempt's outputs: the background layer, the composed result, its Content Credentials."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chalicelib.catalogue import presets
from chalicelib.core import backgrounds, contracts, estimate
from chalicelib.core.contracts import BackgroundSource
from chalicelib.core.errors import (
    PresetUnmet,
    StorageError,
)
from chalicelib.imaging import consistency, quality
from chalicelib.imaging import images as imaging
from chalicelib.models import registry
from chalicelib.models.base import (
    GeneratedImages,
    ModelSpec,
)

if TYPE_CHECKING:
    from PIL import Image

    from chalicelib.imaging.fidelity import JpegDelivery
    from chalicelib.imaging.quality import Scorecard

from chalicelib.workflow.step_base import StepsBase
from chalicelib.workflow.step_checks import _RekognitionChecks
from chalicelib.workflow.step_parts import (
    KEEP_MASK_GROW_PX,
    SUBJECT_ALPHA,
    StepInput,
    _deliver,
    _no_kms,
    _say_re_roll,
    log,
)


class AttemptOutputs(StepsBase):
    """The outputs of one Finalize attempt."""

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

            def score(delivered: Image.Image, delivery: JpegDelivery | None) -> Scorecard:
                if alpha is None:
                    return quality.no_cutout_scorecard(spec.key)
                return quality.score_image(original, delivered, alpha, thresholds=thresholds, delivery=delivery)

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

        def score(delivered: Image.Image, delivery: JpegDelivery | None) -> Scorecard:
            # a transparent file is scored as it looks on white (score_image flattens it)
            return quality.score_image(original, delivered, alpha, thresholds=thresholds, delivery=delivery)

        # a preset's compliance is checked on the file as written: then it is decoded whole
        encoded, written, scorecard = _deliver(result, fmt, source, text, score, decoded=bool(settings.preset))
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
            assert written is not None  # decoded for the preset
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
