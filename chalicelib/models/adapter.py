"""The interface every model-family adapter implements.

An adapter knows one family's request/response contract and its documented limits. It never
calls AWS: the workflow writes the bodies it builds to S3 and the state machine's optimized
`bedrock:invokeModel` task sends them (Input.S3Uri / Output.S3Uri).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

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
    def parse_response(self, spec: ModelSpec, step: str, response: dict[str, Any]) -> GeneratedImages:
        """Decode a model response; raise ContentFiltered / ModelResponseInvalid, never return
        an empty result."""
