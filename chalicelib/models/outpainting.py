"""Titan Image Generator / Nova Canvas OUTPAINTING: one call, the kept labels as maskPrompt.

Contract: docs/aws-notes.md#n5-titan-and-nova-outpainting. Exactly one of maskPrompt / maskImage; the
masked region (the subject) is kept and everything else is regenerated. The output has the
input's size. Moderation results come back in the `error` field with HTTP 200.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from chalicelib.core.errors import ContentFiltered, ModelResponseInvalid, RequestInvalid, ValidationError
from chalicelib.models.adapter import Adapter, Problems, check_canvas, common_problems, decode_images, png_size
from chalicelib.models.base import GeneratedImages, ImageTask, JobSettings, ModelCall, ModelSpec

OUTPAINT = "outpaint"


def mask_prompt(image: ImageTask) -> str:
    return ", ".join(image.labels)


class OutpaintingAdapter(Adapter):
    steps = (OUTPAINT,)

    def _problems(self, spec: ModelSpec, settings: JobSettings, images: Sequence[ImageTask]) -> Problems:
        p = common_problems(spec, settings, images)
        for index, image in enumerate(images):
            if not image.labels:
                p.add(
                    f"images[{index}].labels",
                    f"image '{image.name}' keeps no label, so there is nothing to keep: keep at least one label "
                    f"for OUTPAINTING models",
                )
            elif len(mask_prompt(image)) > spec.prompt_max:
                p.add(
                    f"images[{index}].labels",
                    f"the kept labels of '{image.name}' make a mask prompt of {len(mask_prompt(image)):,} characters; "
                    f"model {spec.key} accepts at most {spec.prompt_max:,}",
                )
        return p

    def validate(self, spec: ModelSpec, settings: JobSettings, images: Sequence[ImageTask]) -> None:
        self._problems(spec, settings, images).raise_if_any()

    def first_call(self, spec: ModelSpec, settings: JobSettings, image: ImageTask, canvas_png: bytes) -> ModelCall:
        check_canvas(spec, *png_size(canvas_png))
        try:
            self._problems(spec, settings, [image]).raise_if_any()
        except ValidationError as exc:  # validated at submit; reaching here means the job changed
            raise RequestInvalid(str(exc)) from exc
        params: dict[str, Any] = {
            "image": base64.b64encode(canvas_png).decode("ascii"),
            "maskPrompt": mask_prompt(image),
            "outPaintingMode": settings.mode,
        }
        text = image.prompt or settings.prompt
        if text:
            params["text"] = text
        if settings.negative_prompt:
            params["negativeText"] = settings.negative_prompt
        cfg = settings.cfg_scale if settings.cfg_scale is not None else (spec.cfg_scale[2] if spec.cfg_scale else None)
        config: dict[str, Any] = {
            "numberOfImages": settings.variants,
            "quality": settings.quality or "standard",
            "seed": settings.seed,
        }
        if cfg is not None:
            config["cfgScale"] = cfg
        body = {"taskType": "OUTPAINTING", "outPaintingParams": params, "imageGenerationConfig": config}
        return ModelCall(OUTPAINT, spec.model_ids[OUTPAINT], body)

    def with_seed(self, body: dict[str, Any], seed: int) -> dict[str, Any]:
        return {**body, "imageGenerationConfig": {**body.get("imageGenerationConfig", {}), "seed": seed}}

    def parse_response(self, spec: ModelSpec, step: str, response: dict[str, Any]) -> GeneratedImages:
        if not isinstance(response, dict):
            raise ModelResponseInvalid(f"{step}: the model response is not a JSON object")
        error = response.get("error")
        images = response.get("images") or []
        if error and not images:
            text = str(error)
            if "content filter" in text.lower() or "blocked" in text.lower():
                raise ContentFiltered(f"the model's content filter blocked the request: {text}")
            raise ModelResponseInvalid(f"{step}: the model reported an error: {text}")
        decoded = decode_images(step, images)
        # Nova may return fewer images than asked when some were filtered: keep what came back.
        return GeneratedImages(tuple(decoded), tuple(None for _ in decoded))
