"""The model registry: every Bedrock image model Backdrop knows, as data.

Sources: shared/reference/bedrock-models-2026.md (Stability image services, lifecycle tables) and
shared/reference/aws-limits.md (Titan / Nova Canvas OUTPAINTING). Adding a model of a known family
is one entry here; the adapters, the API, the UI, the CLI and the cost estimate read it.

Deployers can change model ids per region without code (inference-profile prefixes differ:
`us.`, `eu.`, ...) with BACKDROP_MODEL_IDS='{"stability-inpaint": {"inpaint": "eu.stability..."}}',
and an account with a private extended-access arrangement for an end-of-life model can enable it
with BACKDROP_EXTENDED_ACCESS_MODELS=titan-image-v2 (Bedrock itself still decides).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING

from chalicelib.errors import ModelUnavailable
from chalicelib.models.base import Family, ImageLimits, Lifecycle, LifecycleStatus, ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    from chalicelib.models.adapter import Adapter

STABILITY_STYLE_PRESETS = (
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance", "fantasy-art",
    "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami", "photographic",
    "pixel-art", "tile-texture",
)  # fmt: skip

# Titan G1 permitted sizes (aws-limits.md §1.3; copied consistently by several projects, the
# official table was elided in the stored copy). OUTPAINTING output size equals the input size.
TITAN_SIZES = (
    (1024, 1024), (768, 768), (512, 512), (768, 1152), (384, 576), (1152, 768), (576, 384), (768, 1280),
    (384, 640), (1280, 768), (640, 384), (896, 1152), (448, 576), (1152, 896), (576, 448), (768, 1408),
    (384, 704), (1408, 768), (704, 384), (640, 1408), (320, 704), (1408, 640), (704, 320), (1152, 640),
    (1173, 640),
)  # fmt: skip

_STABILITY_DOC = "https://docs.aws.amazon.com/bedrock/latest/userguide/stable-image-services.html"
_LIFECYCLE_DOC = "https://docs.aws.amazon.com/bedrock/latest/userguide/model-lifecycle.html"

STABILITY_INPAINT = ModelSpec(
    key="stability-inpaint",
    family=Family.STABILITY,
    display_name="Stability AI Remove Background + Inpaint",
    model_ids={
        "remove-background": "us.stability.stable-image-remove-background-v1:0",
        "inpaint": "us.stability.stable-image-inpaint-v1:0",
    },
    image_limits=ImageLimits(
        min_side=64,
        max_side=None,
        # The services accept up to 9,437,184 px, but InvokeModel responses are capped at
        # 25,000,000 bytes and a base64 PNG of 9.4 MP can exceed that; 4 MP keeps a safe margin.
        max_pixels=4_194_304,
        min_aspect=1 / 2.5,
        max_aspect=2.5,
    ),
    prompt_max=10_000,
    prompt_required=True,
    negative_prompt_max=10_000,
    seed_max=4_294_967_294,
    max_variants=1,  # one image per call
    cfg_scale=None,
    qualities=(),
    lifecycle=Lifecycle(LifecycleStatus.ACTIVE, source=_STABILITY_DOC),
    price_per_image_usd=0.08,  # 2 calls x $0.04 (UNCONFIRMED third-party price table)
    price_source="2 calls x $0.04, third-party price table, read 2026-11 (UNCONFIRMED)",
    style_presets=STABILITY_STYLE_PRESETS,
    notes="Default. Removes the background, keeps the subject (restricted to kept labels' boxes), inpaints the rest.",
)

_TITAN_LIMITS = ImageLimits(
    min_side=320, max_side=1408, max_pixels=1_081_344, min_aspect=320 / 704, max_aspect=704 / 320,
    allowed_sizes=TITAN_SIZES,
)  # fmt: skip

TITAN_V2 = ModelSpec(
    key="titan-image-v2",
    family=Family.OUTPAINTING,
    display_name="Amazon Titan Image Generator G1 v2 (OUTPAINTING)",
    model_ids={"outpaint": "amazon.titan-image-generator-v2:0"},
    image_limits=_TITAN_LIMITS,
    prompt_max=512,
    prompt_required=True,
    negative_prompt_max=512,
    seed_max=2_147_483_646,
    max_variants=5,
    cfg_scale=(1.1, 10.0, 8.0),
    qualities=("standard", "premium"),
    lifecycle=Lifecycle(LifecycleStatus.EOL, legacy_date="2025-12-30", eol_date="2026-06-30", source=_LIFECYCLE_DOC),
    price_per_image_usd=0.01,
    price_source="$0.010 per 1024x1024 standard image, third-party copy of the pricing page (UNCONFIRMED)",
)

TITAN_V1 = dataclasses.replace(
    TITAN_V2,
    key="titan-image-v1",
    display_name="Amazon Titan Image Generator G1 v1 (OUTPAINTING)",
    model_ids={"outpaint": "amazon.titan-image-generator-v1"},
    lifecycle=Lifecycle(
        LifecycleStatus.EOL, source="absent from every lifecycle table read; older than v2 (EOL) - UNCONFIRMED"
    ),
)

NOVA_CANVAS = ModelSpec(
    key="nova-canvas",
    family=Family.OUTPAINTING,
    display_name="Amazon Nova Canvas (OUTPAINTING)",
    model_ids={"outpaint": "amazon.nova-canvas-v1:0"},
    image_limits=ImageLimits(
        min_side=320, max_side=4096, max_pixels=4_194_304, min_aspect=0.25, max_aspect=4.0, side_multiple=16
    ),
    prompt_max=1024,
    prompt_required=False,
    negative_prompt_max=1024,
    seed_max=858_993_459,
    max_variants=5,
    cfg_scale=(1.1, 10.0, 6.5),
    qualities=("standard", "premium"),
    lifecycle=Lifecycle(LifecycleStatus.EOL, legacy_date="2026-03-30", eol_date="2026-09-30", source=_LIFECYCLE_DOC),
    price_per_image_usd=0.04,
    price_source="$0.04 per standard image up to 1024x1024, third-party code (UNCONFIRMED)",
)

DEFAULT_MODEL_KEY = STABILITY_INPAINT.key

_MODELS: dict[str, ModelSpec] = {m.key: m for m in (STABILITY_INPAINT, TITAN_V2, TITAN_V1, NOVA_CANVAS)}


def register(spec: ModelSpec) -> None:
    """Add (or replace) a model. The deployment's registry is this module; tests use this."""
    _MODELS[spec.key] = spec


def unregister(key: str) -> None:
    _MODELS.pop(key, None)


def all_models() -> list[ModelSpec]:
    return [resolve(m) for m in _MODELS.values()]


def _extended_access() -> set[str]:
    return {k.strip() for k in os.environ.get("BACKDROP_EXTENDED_ACCESS_MODELS", "").split(",") if k.strip()}


def _id_overrides() -> dict[str, dict[str, str]]:
    raw = os.environ.get("BACKDROP_MODEL_IDS", "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ModelUnavailable(f"BACKDROP_MODEL_IDS is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def resolve(spec: ModelSpec) -> ModelSpec:
    """The spec with this deployment's model-id overrides applied."""
    overrides = _id_overrides().get(spec.key)
    if not overrides:
        return spec
    ids = dict(spec.model_ids)
    unknown = set(overrides) - set(ids)
    if unknown:
        raise ModelUnavailable(f"BACKDROP_MODEL_IDS names unknown calls {sorted(unknown)} for model {spec.key}")
    ids.update(overrides)
    return dataclasses.replace(spec, model_ids=ids)


def is_selectable(spec: ModelSpec) -> bool:
    return spec.lifecycle.status is not LifecycleStatus.EOL or spec.key in _extended_access()


def selectable_models() -> list[ModelSpec]:
    return [m for m in all_models() if is_selectable(m)]


def get_model(key: str) -> ModelSpec:
    """The spec of a known model (any lifecycle state): for running or reporting on jobs."""
    spec = _MODELS.get(key)
    if spec is None:
        known = ", ".join(sorted(_MODELS))
        raise ModelUnavailable(f"unknown model {key!r}; known models: {known}")
    return resolve(spec)


def get_selectable_model(key: str) -> ModelSpec:
    """The spec of a model a *new* job may use: end-of-life models are refused by name."""
    spec = get_model(key)
    if not is_selectable(spec):
        usable = ", ".join(m.key for m in selectable_models()) or "none"
        raise ModelUnavailable(
            f"model {key!r} reached end of life on {spec.lifecycle.eol_date or 'an unrecorded date'} and can no longer "
            f"be used; usable models: {usable}"
        )
    return spec


def adapter_for(spec: ModelSpec) -> Adapter:
    # Imported here so that loading the registry (e.g. for GET /models) stays cheap.
    if spec.family is Family.STABILITY:
        from chalicelib.models.stability import StabilityAdapter

        return StabilityAdapter()
    if spec.family is Family.OUTPAINTING:
        from chalicelib.models.outpainting import OutpaintingAdapter

        return OutpaintingAdapter()
    raise ModelUnavailable(f"no adapter for model family {spec.family!r}")
