"""Types shared by the model registry, the adapters, the imaging code and the workflow.

A model is data (`ModelSpec`, in registry.py); a family adapter (stability.py, outpainting.py)
turns a job's settings and one normalized image into Bedrock request bodies and parses the
responses. Nothing here calls AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from chalicelib.core.contracts import MAX_VARIANTS


class Family(StrEnum):
    STABILITY = "stability"  # remove-background, then inpaint with a keep-mask
    OUTPAINTING = "outpainting"  # Titan Image Generator / Nova Canvas OUTPAINTING in one call
    # one background for a whole batch (a `scene` background), not a job's model
    TEXT_TO_IMAGE = "text-to-image"


class LifecycleStatus(StrEnum):
    ACTIVE = "ACTIVE"
    LEGACY = "LEGACY"
    EOL = "EOL"


@dataclass(frozen=True)
class Lifecycle:
    status: LifecycleStatus
    legacy_date: str | None = None  # ISO dates, as the Bedrock lifecycle pages give them
    eol_date: str | None = None
    source: str = ""


# Aspect bounds are decimals in the registry (0.454545 for 320:704): compared with a hair of slack.
ASPECT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ImageLimits:
    """What a model accepts as its input image (and, for outpainting, produces)."""

    min_side: int
    max_side: int | None
    max_pixels: int
    min_aspect: float  # width / height
    max_aspect: float
    side_multiple: int = 1
    # Titan accepts only these (width, height) sizes; None means any size within the bounds.
    allowed_sizes: tuple[tuple[int, int], ...] | None = None

    def problems(self, width: int, height: int) -> list[str]:
        """Every limit a `width x height` model canvas breaks (empty when the model accepts it).

        The one check of a canvas against the model's limits: canvas fitting verifies its result
        with it, and the adapters check every request with it before anything is sent."""
        found = []
        if width < 1 or height < 1:
            return [f"{width}x{height} has no pixels"]
        if self.allowed_sizes and (width, height) not in self.allowed_sizes:
            found.append(f"{width}x{height} is not one of the sizes the model accepts")
        if min(width, height) < self.min_side:
            found.append(f"the smallest side is {min(width, height)} px; the minimum is {self.min_side}")
        if self.max_side and max(width, height) > self.max_side:
            found.append(f"the longest side is {max(width, height)} px; the maximum is {self.max_side}")
        if width * height > self.max_pixels:
            found.append(f"{width}x{height} = {width * height:,} px exceeds {self.max_pixels:,}")
        aspect = width / height
        if not self.min_aspect - ASPECT_TOLERANCE <= aspect <= self.max_aspect + ASPECT_TOLERANCE:
            found.append(f"aspect ratio {aspect:.3f} is outside {self.min_aspect:.3f}..{self.max_aspect:.3f}")
        multiple = max(1, self.side_multiple)
        if width % multiple or height % multiple:
            found.append(f"{width}x{height} is not a multiple of {multiple} px per side")
        return found


@dataclass(frozen=True)
class ModelSpec:
    key: str  # what clients choose, e.g. "stability-inpaint"
    family: Family
    display_name: str
    # call name -> Bedrock model id (inference-profile ids such as "us.stability..." allowed)
    model_ids: Mapping[str, str]
    image_limits: ImageLimits
    prompt_max: int
    prompt_required: bool
    negative_prompt_max: int
    seed_max: int  # inclusive; 0 is a valid seed everywhere
    max_variants: int
    cfg_scale: tuple[float, float, float] | None  # (min, max, default) or None if not offered
    qualities: tuple[str, ...]  # empty if not offered
    lifecycle: Lifecycle
    price_per_image_usd: float  # sum over the model calls one image needs
    price_source: str
    style_presets: tuple[str, ...] = ()
    notes: str = ""
    base_model_ids: Mapping[str, str] = field(default_factory=dict)  # for GetFoundationModel and IAM
    regions: tuple[str, ...] = ()
    price_date: str = ""
    # call name -> price, where the calls differ (a re-roll repeats only the last call)
    price_per_call_usd: Mapping[str, float] = field(default_factory=dict)

    @property
    def re_roll_price_usd(self) -> float:
        """What one re-roll of one image made costs: the last model call again (Stability
        re-inpaints; the cut-out stays), or the whole price for a one-call family."""
        last = list(self.model_ids)[-1]
        return self.price_per_call_usd.get(last, self.price_per_image_usd)

    @property
    def variant_limit(self) -> int:
        """The most variants a job may ask of this model: contracts.MAX_VARIANTS, made with one
        call each, for a model that returns one image per call; its own per-call maximum otherwise."""
        return MAX_VARIANTS if self.max_variants == 1 else self.max_variants

    def variant_calls(self, variants: int) -> int:
        """How many times the last call is made for `variants` results: once per variant on a
        model that returns one image per call, once in all on one that returns several."""
        return max(1, variants) if self.max_variants == 1 else 1

    def variants_price_usd(self, variants: int) -> float:
        """What `variants` results of one image cost in model calls: the image's calls once, and
        the last call again for each further variant (a one-call family: the whole price; several
        images in one call are billed each)."""
        return self.price_per_image_usd + (max(1, variants) - 1) * self.re_roll_price_usd

    @property
    def role(self) -> str:
        """ "scene": generates a scene background's one image per batch; "job": a job's model."""
        return "scene" if self.family is Family.TEXT_TO_IMAGE else "job"

    @property
    def compose_price_usd(self) -> float:
        """What one image of a color / image / transparent / scene background costs: its first
        call (remove-background) alone."""
        first = next(iter(self.model_ids), None)
        if first is not None and first in self.price_per_call_usd:
            return self.price_per_call_usd[first]
        return self.price_per_image_usd / max(1, len(self.model_ids))

    def public(self) -> dict[str, Any]:
        """The view GET /models returns (and the UI/CLI read)."""
        lim = self.image_limits
        return {
            "key": self.key,
            "family": self.family.value,
            # "scene": generates a scene background's one image per batch; "job": a job's model
            "role": self.role,
            "displayName": self.display_name,
            "modelIds": dict(self.model_ids),
            "lifecycle": {
                "status": self.lifecycle.status.value,
                "legacyDate": self.lifecycle.legacy_date,
                "eolDate": self.lifecycle.eol_date,
                "source": self.lifecycle.source,
            },
            "limits": {
                "promptMax": self.prompt_max,
                "promptRequired": self.prompt_required,
                "negativePromptMax": self.negative_prompt_max,
                "seedMax": self.seed_max,
                # variants a job may ask for, and how many one call returns (chalicelib.core.contracts.MAX_VARIANTS)
                "maxVariants": self.variant_limit,
                "variantsPerCall": self.max_variants,
                "cfgScale": list(self.cfg_scale) if self.cfg_scale else None,
                "qualities": list(self.qualities),
                "stylePresets": list(self.style_presets),
                "image": {
                    "minSide": lim.min_side,
                    "maxSide": lim.max_side,
                    "maxPixels": lim.max_pixels,
                    "minAspect": lim.min_aspect,
                    "maxAspect": lim.max_aspect,
                },
            },
            "pricePerImageUsd": self.price_per_image_usd,
            "composePricePerImageUsd": self.compose_price_usd,
            "callPricesUsd": dict(self.price_per_call_usd),
            "reRollPriceUsd": self.re_roll_price_usd,
            "priceSource": self.price_source,
            "priceDate": self.price_date,
            "regions": list(self.regions),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Geometry:
    """How an oriented original was placed into the model's canvas, so it can be undone.

    The original (after EXIF orientation) is `original_width x original_height`; it was scaled,
    keeping its aspect ratio, to `scaled_width x scaled_height` and pasted at
    (`offset_x`, `offset_y`) into a `canvas_width x canvas_height` canvas.
    """

    original_width: int
    original_height: int
    scaled_width: int
    scaled_height: int
    canvas_width: int
    canvas_height: int
    offset_x: int
    offset_y: int

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Geometry:
        return cls(**{k: int(data[k]) for k in cls.__dataclass_fields__})


Box = tuple[float, float, float, float]  # (left, top, width, height), fractions of the image


@dataclass(frozen=True)
class JobSettings:
    """The validated, per-job generation settings (see jobs.py for parsing)."""

    model: str
    prompt: str
    negative_prompt: str = ""
    mode: str = "PRECISE"
    quality: str | None = None
    cfg_scale: float | None = None
    seed: int = 0
    variants: int = 1
    output_format: str | None = None  # None: each result follows its original (imaging.default_output_format)
    style_preset: str | None = None
    # compositing and scoring in Finalize (chalicelib.imaging.compose, chalicelib.imaging.quality)
    blend: float = 1.0  # 1 = the original subject's pixels (PRECISE), 0 = the model's re-lit subject
    shadow: str = "none"  # contracts.ShadowKind
    shadow_angle: float = 90.0  # degrees clockwise from pointing right: 90 = the shadow falls straight down
    shadow_strength: float = 0.5
    quality_thresholds: Mapping[str, float] | None = None  # quality.Thresholds in camelCase; None = defaults
    # the job's background and the subject's placement (chalicelib.core.backgrounds, camelCase dicts);
    # None: a prompt background, the original's framing
    background: Mapping[str, Any] | None = None
    placement: Mapping[str, Any] | None = None
    preset: str | None = None  # a marketplace preset's key (chalicelib/core/presets.json)
    # automatic re-rolls (contracts.MAX_RE_ROLLS): an image whose best scorecard is `re_roll_on`
    # or worse is made again with a new seed, up to `re_rolls` times
    re_rolls: int = 1
    re_roll_on: str = "FAIL"
    # provenance (chalicelib/delivery/provenance.py, docs/provenance.md): a signed C2PA manifest in every
    # result unless False; the original's GPS position kept in the result's XMP only if True
    content_credentials: bool = True
    keep_location: bool = False


@dataclass(frozen=True)
class ImageTask:
    """One image of a job, as the workflow sees it."""

    image_id: str
    key: str  # S3 key of the original
    name: str  # the user's file name, metadata only
    labels: tuple[str, ...] = ()  # names of the labels the user kept
    boxes: tuple[Box, ...] = ()  # boxes of the kept labels' instances, fractions of the oriented image
    prompt: str | None = None  # per-image override of the job prompt
    background: Mapping[str, Any] | None = None  # per-image override of the job's background


@dataclass(frozen=True)
class ModelCall:
    """One Bedrock InvokeModel call: the workflow writes `body` to S3 for Input.S3Uri."""

    step: str  # e.g. "remove-background", "inpaint", "outpaint"; part of the S3 keys
    model_id: str
    body: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class GeneratedImages:
    images: tuple[bytes, ...]
    seeds: tuple[int | None, ...]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def settings_fields() -> dict[str, str]:
    """Each JobSettings field and its camelCase name, the one POST /jobs gives it
    (chalicelib/catalogue/schemas.py JobRequest: a test holds the two to the same names), the job
    item stores and the workflow's input carries."""
    return {f.name: _camel(f.name) for f in fields(JobSettings)}


def settings_to_dict(settings: JobSettings) -> dict[str, Any]:
    """The camelCase form stored on the job item and passed in the workflow input."""
    return {camel: getattr(settings, attr) for attr, camel in settings_fields().items()}


def settings_from_dict(data: Mapping[str, Any]) -> JobSettings:
    """Inverse of settings_to_dict; tolerates DynamoDB Decimals."""
    values: dict[str, Any] = {}
    for attr, camel in settings_fields().items():
        if camel in data and data[camel] is not None:
            values[attr] = data[camel]
    for attr in ("seed", "variants", "re_rolls"):
        if attr in values:
            values[attr] = int(values[attr])
    for attr in ("cfg_scale", "blend", "shadow_angle", "shadow_strength"):
        if attr in values:
            values[attr] = float(values[attr])
    for attr in ("background", "placement"):  # numbers come back from DynamoDB as Decimals
        if attr in values:
            values[attr] = json.loads(json.dumps(values[attr], default=float))
    if "quality_thresholds" in values:
        values["quality_thresholds"] = {k: float(v) for k, v in values["quality_thresholds"].items()}
    return JobSettings(**values)
