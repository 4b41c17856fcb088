"""The interface every model-family adapter implements.

An adapter knows one family's request/response contract and its documented limits. It never
calls AWS: the workflow writes the bodies it builds to S3 and the state machine's optimized
`bedrock:invokeModel` task sends them (Input.S3Uri / Output.S3Uri).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from chalicelib.core import validation
from chalicelib.core.backgrounds import effective
from chalicelib.core.contracts import Mode, OutputFormat
from chalicelib.core.errors import ModelResponseInvalid, RequestInvalid
from chalicelib.models.base import GeneratedImages, ImageTask, JobSettings, ModelCall, ModelSpec


class Adapter(ABC):
    # the step names of the model calls one image needs, in order (part of the S3 keys)
    steps: tuple[str, ...]

    @abstractmethod
    def validate(self, spec: ModelSpec, settings: JobSettings, images: Sequence[ImageTask]) -> None:
        """Raise ValidationError (with per-field/per-image details) for anything this model would
        refuse, before any money is spent: text lengths, seed range, cfgScale, variants, quality,
        style preset, and per image (e.g. OUTPAINTING needs a kept label for its maskPrompt)."""

    @abstractmethod
    def first_call(self, spec: ModelSpec, settings: JobSettings, image: ImageTask, canvas_png: bytes) -> ModelCall:
        """The first model call for one normalized image (PNG bytes of the model canvas)."""

    def mask_call(
        self, spec: ModelSpec, settings: JobSettings, image: ImageTask, canvas_png: bytes, mask_png: bytes
    ) -> ModelCall:
        """The second call of a two-call family (Stability inpaint with its mask)."""
        raise NotImplementedError(f"{type(self).__name__} makes a single model call")

    @abstractmethod
    def with_seed(self, body: dict[str, Any], seed: int) -> dict[str, Any]:
        """The last call's request body (as written to S3) with another seed: an automatic re-roll."""

    @abstractmethod
    def parse_response(self, spec: ModelSpec, step: str, response: dict[str, Any]) -> GeneratedImages:
        """Decode a model response; raise ContentFiltered / ModelResponseInvalid, never return
        an empty result."""


class Problems(validation.Problems):
    """The problems of a job against one model's documented limits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(f"the job does not fit model {spec.key}")
        self.spec = spec

    def text(self, field: str, value: str | None, limit: int, *, required: bool, what: str) -> None:
        if value is None or not value.strip():
            if required:
                self.add(field, f"{what} is required by model {self.spec.key}")
            return
        if len(value) > limit:
            self.add(field, f"{what} is {len(value):,} characters; model {self.spec.key} accepts at most {limit:,}")


def common_problems(spec: ModelSpec, settings: JobSettings, images: Sequence[ImageTask]) -> Problems:
    """Checks every family shares: texts, seed, variants, mode, format, options not offered."""
    p = Problems(spec)
    # only an image with a prompt background sends a prompt (colour, photo, transparent and scene
    # images make a remove-background call alone)
    prompted = not images or any(effective(i.background, settings.background).needs_inpaint for i in images)
    p.text("prompt", settings.prompt, spec.prompt_max, required=spec.prompt_required and prompted, what="prompt")
    for index, image in enumerate(images):
        if image.prompt is not None:
            p.text(
                f"images[{index}].prompt",
                image.prompt,
                spec.prompt_max,
                required=False,
                what=f"prompt of '{image.name}'",
            )
    if settings.negative_prompt:
        p.text(
            "negativePrompt", settings.negative_prompt, spec.negative_prompt_max, required=False, what="negative prompt"
        )
    if not 0 <= settings.seed <= spec.seed_max:
        p.add("seed", f"seed must be between 0 and {spec.seed_max:,} for model {spec.key}")
    limit = spec.variant_limit
    if not 1 <= settings.variants <= limit:
        how = (
            f"model {spec.key} returns one image per call, so each variant is one more call"
            if spec.max_variants == 1
            else f"model {spec.key} returns up to {spec.max_variants} images per call"
        )
        p.add("variants", f"variants must be between 1 and {limit}: {how}")
    elif settings.variants > 1 and not effective(None, settings.background).needs_inpaint:
        p.add(
            "variants",
            "variants must be 1 with a color, image, transparent or scene background: the result is composed "
            "from one cut-out, so every variant would be the same picture",
        )
    if settings.mode not in {m.value for m in Mode}:
        p.add("mode", f"mode must be one of {', '.join(m.value for m in Mode)}")
    if settings.output_format is not None and settings.output_format not in {f.value for f in OutputFormat}:
        p.add("outputFormat", f"outputFormat must be one of {', '.join(f.value for f in OutputFormat)}")
    if settings.quality is not None and settings.quality not in spec.qualities:
        offered = ", ".join(spec.qualities) if spec.qualities else "no quality setting"
        p.add("quality", f"model {spec.key} offers {offered}")
    if settings.cfg_scale is not None:
        if spec.cfg_scale is None:
            p.add("cfgScale", f"model {spec.key} has no cfgScale setting")
        elif not spec.cfg_scale[0] <= settings.cfg_scale <= spec.cfg_scale[1]:
            p.add(
                "cfgScale", f"cfgScale must be between {spec.cfg_scale[0]} and {spec.cfg_scale[1]} for model {spec.key}"
            )
    if settings.style_preset is not None and settings.style_preset not in spec.style_presets:
        offered = ", ".join(spec.style_presets) if spec.style_presets else "no style presets"
        p.add("stylePreset", f"model {spec.key} offers {offered}")
    return p


def check_canvas(spec: ModelSpec, width: int, height: int) -> None:
    """Defence in depth at request-build time: never send a canvas the model would refuse."""
    problems = spec.image_limits.problems(width, height)
    if problems:
        raise RequestInvalid(
            f"Backdrop built a {width}x{height} canvas that model {spec.key} does not accept, so the request "
            "was not sent (a Backdrop error, not the model's answer): " + "; ".join(problems)
        )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG header (no decoding)."""

    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        raise RequestInvalid("the canvas Backdrop prepared is not a PNG, so the request was not sent")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def decode_images(step: str, images: Any) -> tuple[bytes, ...]:
    """Base64 images of a model response; a missing or undecodable image is never a success."""
    import base64
    import binascii

    if not isinstance(images, list) or not images:
        raise ModelResponseInvalid(f"{step}: the model answered without an image")
    decoded = []
    for item in images:
        try:
            decoded.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError, TypeError) as exc:
            raise ModelResponseInvalid(f"{step}: the model returned an image that is not valid base64") from exc
    return tuple(decoded)
