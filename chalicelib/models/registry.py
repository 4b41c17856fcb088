"""The model registry: every Bedrock image model Backdrop knows, as data (models.json).

Adding a model of a known family, or switching the default, is an edit of models.json alone;
the adapters, the API, the UI, the CLI and the cost estimate read it from here. A deployment
can point BACKDROP_MODEL_REGISTRY at its own file.

Deployment configuration without code:
- BACKDROP_MODEL_IDS='{"stability-inpaint": {"inpaint": "eu.stability..."}}' changes model ids
  (inference-profile prefixes differ by geography: us., eu., ...);
- BACKDROP_EXTENDED_ACCESS_MODELS=titan-image-v2 enables an end-of-life model for an account
  with a private extended-access arrangement (Bedrock itself still decides).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.core.errors import ModelUnavailable
from chalicelib.models.base import Family, ImageLimits, Lifecycle, LifecycleStatus, ModelSpec

if TYPE_CHECKING:
    from chalicelib.models.adapter import Adapter

REGISTRY_PATH = Path(__file__).resolve().parent / "models.json"


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    limits = data["imageLimits"]
    lifecycle = data["lifecycle"]
    price = data["price"]
    return ModelSpec(
        key=data["key"],
        family=Family(data["family"]),
        display_name=data["displayName"],
        model_ids=dict(data["modelIds"]),
        image_limits=ImageLimits(
            min_side=int(limits["minSide"]),
            max_side=limits.get("maxSide"),
            max_pixels=int(limits["maxPixels"]),
            min_aspect=float(limits["minAspect"]),
            max_aspect=float(limits["maxAspect"]),
            side_multiple=int(limits.get("sideMultiple", 1)),
            allowed_sizes=tuple(tuple(s) for s in limits["allowedSizes"]) if limits.get("allowedSizes") else None,
        ),
        prompt_max=int(data["promptMax"]),
        prompt_required=bool(data["promptRequired"]),
        negative_prompt_max=int(data["negativePromptMax"]),
        seed_max=int(data["seedMax"]),
        max_variants=int(data["maxVariants"]),
        cfg_scale=tuple(data["cfgScale"]) if data.get("cfgScale") else None,
        qualities=tuple(data.get("qualities") or ()),
        lifecycle=Lifecycle(
            LifecycleStatus(lifecycle["status"]),
            lifecycle.get("legacyDate"),
            lifecycle.get("eolDate"),
            lifecycle.get("source", ""),
        ),
        price_per_image_usd=float(price["perImageUsd"]),
        price_per_call_usd={str(k): float(v) for k, v in (price.get("perCallUsd") or {}).items()},
        price_source=str(price["source"]),
        price_date=str(price.get("date", "")),
        style_presets=tuple(data.get("stylePresets") or ()),
        notes=str(data.get("notes", "")),
        base_model_ids=dict(data.get("baseModelIds") or {}),
        regions=tuple(data.get("regions") or ()),
    )


@functools.lru_cache(maxsize=4)
def _load(path: str) -> tuple[str, dict[str, ModelSpec], str | None]:
    data = json.loads(Path(path).read_text())
    models = {m["key"]: spec_from_dict(m) for m in data["models"]}
    if data["default"] not in models:
        raise ModelUnavailable(f"the registry's default model {data['default']!r} is not in {path}")
    scene = data.get("defaultScene")
    if scene is not None and (scene not in models or models[scene].family is not Family.TEXT_TO_IMAGE):
        raise ModelUnavailable(f"the registry's default scene model {scene!r} is not a text-to-image model in {path}")
    return data["default"], models, scene


def _registry() -> tuple[str, dict[str, ModelSpec], str | None]:
    # "$LAMBDA_TASK_ROOT/..." names a registry packaged with the Lambdas (the deploy sets it so)
    return _load(os.path.expandvars(os.environ.get("BACKDROP_MODEL_REGISTRY") or str(REGISTRY_PATH)))


def default_model_key() -> str:
    return _registry()[0]


def default_scene_model_key() -> str:
    """The text-to-image model a `scene` background uses when the job names none."""
    scene = _registry()[2]
    if scene is None:
        raise ModelUnavailable("this deployment's model registry has no scene (text-to-image) model")
    return scene


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


def recorded_model_id(key: str, call: str) -> str | None:
    """The model id models.json records for a call, before BACKDROP_MODEL_IDS (None if unknown)."""
    spec = _registry()[1].get(key)
    return spec.model_ids.get(call) if spec else None


def all_models() -> list[ModelSpec]:
    return [resolve(m) for m in _registry()[1].values()]


def is_selectable(spec: ModelSpec, lifecycle: Lifecycle | None = None) -> bool:
    status = (lifecycle or spec.lifecycle).status
    return status is not LifecycleStatus.EOL or spec.key in _extended_access()


def selectable_models() -> list[ModelSpec]:
    return [m for m in all_models() if is_selectable(m)]


def get_model(key: str) -> ModelSpec:
    """The spec of a known model (any lifecycle state): for running or reporting on jobs."""
    spec = _registry()[1].get(key)
    if spec is None:
        known = ", ".join(sorted(_registry()[1]))
        raise ModelUnavailable(f"unknown model {key!r}; known models: {known}")
    return resolve(spec)


def get_selectable_model(key: str, lifecycle: Lifecycle | None = None) -> ModelSpec:
    """The spec of a model a *new* job may use: end-of-life models are refused by name."""
    spec = get_model(key)
    if not is_selectable(spec, lifecycle):
        eol = (lifecycle or spec.lifecycle).eol_date or "an unrecorded date"
        usable = ", ".join(m.key for m in selectable_models()) or "none"
        raise ModelUnavailable(
            f"model {key!r} reached end of life on {eol} and can no longer be used; usable models: {usable}"
        )
    return spec


# Written by the deploy from its own Bedrock look-ups (backend/regions.py, GetInferenceProfile):
# the models this deployment's Region cannot call, whatever models.json says.
UNREACHABLE_MODELS_ENV = "BACKDROP_UNREACHABLE_MODELS"


def deployment_region() -> str:
    """The Region the Lambdas run in (Lambda sets AWS_REGION; the local stack and tests set it too)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""


def _unreachable() -> set[str]:
    return {k.strip() for k in os.environ.get(UNREACHABLE_MODELS_ENV, "").split(",") if k.strip()}


def ids_overridden(spec: ModelSpec) -> bool:
    """True when BACKDROP_MODEL_IDS gives the model other ids (e.g. an inference profile of the
    deployer's geography): models.json's regions describe its own ids only."""
    recorded = _registry()[1].get(spec.key)
    return recorded is not None and dict(recorded.model_ids) != dict(spec.model_ids)


def region_refusal(spec: ModelSpec, region: str | None = None) -> str | None:
    """Why `spec` cannot be called from `region` (default: this deployment's), or None when it can
    or nothing says otherwise. A bare model id runs only in the Regions that offer it on demand,
    and Bedrock refuses it elsewhere (docs/aws-notes.md#n72-model-availability-per-region)."""
    region = region if region is not None else deployment_region()
    where = f"; Regions that would work: {', '.join(spec.regions)}" if spec.regions else ""
    if spec.key in _unreachable():
        return f"model {spec.key} cannot be called from this deployment's Region {region or '(unknown)'}{where}"
    if not region or not spec.regions or ids_overridden(spec) or region in spec.regions:
        return None
    return f"model {spec.key} is offered in {', '.join(spec.regions)} only, not in this deployment's Region {region}"


def get_usable_model(key: str, lifecycle: Lifecycle | None = None, region: str | None = None) -> ModelSpec:
    """get_selectable_model, and callable from the deployment's Region (ModelUnavailable naming
    the Regions that would work): what a new job's models must be."""
    spec = get_selectable_model(key, lifecycle)
    refusal = region_refusal(spec, region)
    if refusal is not None:
        raise ModelUnavailable(
            refusal,
            details=[
                {"field": "model", "message": refusal, "code": "MODEL_UNAVAILABLE", "regions": list(spec.regions)}
            ],
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
    if spec.family is Family.TEXT_TO_IMAGE:
        from chalicelib.models.scene import SceneAdapter

        return SceneAdapter()
    raise ModelUnavailable(f"no adapter for model family {spec.family!r}")
