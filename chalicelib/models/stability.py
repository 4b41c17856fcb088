"""Stability AI image services: remove-background, then inpaint with a keep-mask.

Contract: docs/aws-notes.md#n2-stability-request-and-response. Inpaint's `mask` is a per-pixel strength:
white = regenerate, black = keep. Content-filter results come back in the body
(`finish_reasons`), not as an exception.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from chalicelib.core.contracts import Mode
from chalicelib.core.errors import ContentFiltered, ModelResponseInvalid, RequestInvalid, ValidationError
from chalicelib.models.adapter import Adapter, check_canvas, common_problems, decode_images, png_size
from chalicelib.models.base import GeneratedImages, ImageTask, JobSettings, ModelCall, ModelSpec

REMOVE_BACKGROUND = "remove-background"
INPAINT = "inpaint"
# grow_mask dilates and blurs the regenerated area into the subject's edge (0-20, default 5).
# PRECISE pastes the original subject back afterwards, so a narrow seam band is enough.
GROW_MASK = {Mode.PRECISE.value: 3, Mode.DEFAULT.value: 5}
FILTER_MESSAGES = {
    "Filter reason: prompt": "the model's content filter blocked the prompt",
    "Filter reason: input image": "the model's content filter blocked the input image",
    "Filter reason: output image": "the model's content filter blocked the generated image",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class StabilityAdapter(Adapter):
    steps = (REMOVE_BACKGROUND, INPAINT)

    def validate(self, spec: ModelSpec, settings: JobSettings, images: Sequence[ImageTask]) -> None:
        common_problems(spec, settings, images).raise_if_any()

    def first_call(self, spec: ModelSpec, settings: JobSettings, image: ImageTask, canvas_png: bytes) -> ModelCall:
        check_canvas(spec, *png_size(canvas_png))
        body = {"image": _b64(canvas_png), "output_format": "png"}  # png keeps the alpha channel
        return ModelCall(REMOVE_BACKGROUND, spec.model_ids[REMOVE_BACKGROUND], body)

    def mask_call(
        self, spec: ModelSpec, settings: JobSettings, image: ImageTask, canvas_png: bytes, mask_png: bytes
    ) -> ModelCall:
        size = png_size(canvas_png)
        check_canvas(spec, *size)
        if png_size(mask_png) != size:
            raise RequestInvalid(
                f"Backdrop built a mask of {png_size(mask_png)} px for a {size} px canvas, so the request was not sent"
            )
        problems = common_problems(spec, settings, [image])
        try:
            problems.raise_if_any()
        except ValidationError as exc:  # validated at submit; reaching here means the job changed
            raise RequestInvalid(str(exc)) from exc
        body: dict[str, Any] = {
            "image": _b64(canvas_png),
            "mask": _b64(mask_png),
            "prompt": image.prompt or settings.prompt,
            "grow_mask": GROW_MASK.get(settings.mode, 5),
            "seed": settings.seed,
            "output_format": "png",  # lossless intermediate; Backdrop encodes the final format
        }
        if settings.negative_prompt:
            body["negative_prompt"] = settings.negative_prompt
        if settings.style_preset:
            body["style_preset"] = settings.style_preset
        return ModelCall(INPAINT, spec.model_ids[INPAINT], body)

    def with_seed(self, body: dict[str, Any], seed: int) -> dict[str, Any]:
        return {**body, "seed": seed}

    def parse_response(self, spec: ModelSpec, step: str, response: dict[str, Any]) -> GeneratedImages:
        if not isinstance(response, dict):
            raise ModelResponseInvalid(f"{step}: the model response is not a JSON object")
        reasons = response.get("finish_reasons") or [None]
        reason = reasons[0] if isinstance(reasons, list) and reasons else None
        if reason is not None:
            if reason in FILTER_MESSAGES or str(reason).startswith("Filter reason"):
                raise ContentFiltered(
                    FILTER_MESSAGES.get(reason, f"the model's content filter blocked the request ({reason})")
                )
            raise ModelResponseInvalid(f"{step}: the model reported '{reason}'")
        images = response.get("images")
        decoded = decode_images(step, images)
        seeds = response.get("seeds") or []
        seed_values = tuple(
            int(seeds[i]) if i < len(seeds) and seeds[i] is not None else None for i in range(len(decoded))
        )
        return GeneratedImages(tuple(decoded), seed_values)
