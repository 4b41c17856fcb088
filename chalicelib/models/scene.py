"""Stability text-to-image (Stable Image Core): the one background of a `scene` batch.

Contract: docs/aws-notes.md#n59-stable-image-core-text-to-image. Request `{"prompt", "negative_prompt"?,
"aspect_ratio", "seed", "output_format"}`; response `{"images", "seeds", "finish_reasons"}` like
every Stability image service, a content-filter block coming back in `finish_reasons`. There is
no input image: the output is 640-1,536 px per side, shaped by `aspect_ratio`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from chalicelib.core.backgrounds import Background
from chalicelib.core.errors import ValidationError
from chalicelib.models.adapter import Adapter, Problems
from chalicelib.models.base import GeneratedImages, ImageTask, JobSettings, ModelCall, ModelSpec
from chalicelib.models.stability import StabilityAdapter

TEXT_TO_IMAGE: Final = "text-to-image"
# the aspect ratios the model takes, width:height
ASPECT_RATIOS: Final = ("21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21")


def closest_aspect_ratio(width: int, height: int) -> str:
    """The model's aspect ratio nearest to `width x height` (by ratio, not difference)."""
    import math

    wanted = width / height

    def distance(ratio: str) -> float:
        w, h = (int(v) for v in ratio.split(":"))
        return abs(math.log((w / h) / wanted))

    return min(ASPECT_RATIOS, key=distance)


class SceneAdapter(Adapter):
    steps = (TEXT_TO_IMAGE,)

    def validate(self, spec: ModelSpec, settings: JobSettings, images: Sequence[ImageTask]) -> None:
        raise ValidationError(
            f"model {spec.key} generates a batch's scene, not a job's backgrounds: use it as background.model "
            "of a scene background",
            details=[{"field": "model", "message": "a scene model is not a job's model"}],
        )

    def validate_scene(self, spec: ModelSpec, scene: Background) -> None:
        """The scene's texts against the model's limits (at submit: nothing spent yet)."""
        problems = Problems(spec)
        problems.text("background.prompt", scene.prompt, spec.prompt_max, required=True, what="the scene's prompt")
        if scene.negative_prompt:
            problems.text(
                "background.negativePrompt",
                scene.negative_prompt,
                spec.negative_prompt_max,
                required=False,
                what="the scene's negative prompt",
            )
        problems.raise_if_any()

    def with_seed(self, body: dict[str, Any], seed: int) -> dict[str, Any]:
        """Never used for a re-roll (a scene is made once per batch); the same body, another seed."""
        return {**body, "seed": seed}

    def scene_call(self, spec: ModelSpec, scene: Background, seed: int, aspect_ratio: str) -> ModelCall:
        if aspect_ratio not in ASPECT_RATIOS:
            raise ValueError(f"aspect ratio {aspect_ratio} is not one of {', '.join(ASPECT_RATIOS)}")
        body: dict[str, Any] = {
            "prompt": scene.prompt or "",
            "aspect_ratio": aspect_ratio,
            "seed": min(max(0, seed), spec.seed_max),
            "output_format": "png",
        }
        if scene.negative_prompt:
            body["negative_prompt"] = scene.negative_prompt
        return ModelCall(TEXT_TO_IMAGE, spec.model_ids[TEXT_TO_IMAGE], body)

    def first_call(self, spec: ModelSpec, settings: JobSettings, image: ImageTask, canvas_png: bytes) -> ModelCall:
        raise NotImplementedError("a scene model makes one call per batch, not per image (scene_call)")

    def parse_response(self, spec: ModelSpec, step: str, response: dict[str, Any]) -> GeneratedImages:
        # the same response contract as every Stability image service
        return StabilityAdapter().parse_response(spec, step, response)
