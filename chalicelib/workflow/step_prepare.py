"""The steps before and around Finalize: Prepare, BuildMask, the batch's scene, RecordFailure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.catalogue import costs
from chalicelib.core import backgrounds, contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.core.errors import (
    JobCancelled,
    StepError,
    classify_step_failure,
)
from chalicelib.imaging import images as imaging
from chalicelib.models import registry
from chalicelib.models.base import (
    settings_from_dict,
)
from chalicelib.models.scene import SceneAdapter, closest_aspect_ratio

if TYPE_CHECKING:
    pass

from chalicelib.workflow.step_base import StepsBase
from chalicelib.workflow.step_parts import CANVAS, GEOMETRY, KEEP_MASK_GROW_PX, SUBJECT_ALPHA, StepInput


class PrepareSteps(StepsBase):
    """Prepare, BuildMask, PrepareScene/FinishScene and RecordFailure."""

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
