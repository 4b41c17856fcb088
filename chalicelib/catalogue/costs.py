"""What a job costs, in money: the estimate before, the actual cost from the model calls that
answered, and the per-job budget cap that stops new model calls when it is spent.

Prices come from the model registry (`pricePerImageUsd`: the sum over the calls one image needs).
A call's price is that sum spread over the image's calls; a model that makes several variants in
one call (Titan/Nova) bills each image it makes, so its call costs `variants` times as much.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from chalicelib.core import backgrounds, contracts, estimate
from chalicelib.core.errors import ModelUnavailable, ValidationError
from chalicelib.core.wording import cost_words as cost_words  # re-exported: said the same way everywhere
from chalicelib.models import registry
from chalicelib.models.base import ModelSpec

MAX_BUDGET_USD: Final = 1_000_000.0
BUDGET_FIELD: Final = "budgetUsd"
# The job settings carry the cap as model calls, so each image's Prepare step can reserve its
# calls without reading prices (chalicelib/workflow/steps.py).
MAX_CALLS_SETTING: Final = "maxModelCalls"


def calls_per_image(spec: ModelSpec) -> int:
    return len(registry.adapter_for(spec).steps)


def call_price_usd(spec: ModelSpec, variants: int = 1) -> float:
    per_call = spec.price_per_image_usd / calls_per_image(spec)
    return per_call * variants if calls_per_image(spec) == 1 else per_call


def parse_budget(
    body: Mapping[str, Any], spec: ModelSpec, variants: int, scene_usd: float | None = None
) -> float | None:
    """POST /jobs `budgetUsd`: a positive amount that pays for at least one photo (and the
    batch's scene call, `scene_usd`, when it has one), or none."""
    value = body.get(BUDGET_FIELD)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _budget_problem("budgetUsd must be an amount in US dollars, such as 25 or 12.5")
    if not 0 < value <= MAX_BUDGET_USD:
        raise _budget_problem(f"budgetUsd must be more than 0 and at most {MAX_BUDGET_USD:,.0f}")
    # its calls, and the last one again for each further variant (a one-image-per-call model)
    one_photo = (calls_per_image(spec) + spec.variant_calls(variants) - 1) * budget_call_usd(spec, variants)
    if value < one_photo + (scene_usd or 0.0) - 1e-9:
        scene = f" and the batch's scene (${scene_usd:.2f})" if scene_usd else ""
        raise _budget_problem(
            f"a budget of ${value:.2f} does not pay for one photo with {spec.key} (${one_photo:.3f} each, "
            f"with its quality checks){scene}"
        )
    return float(value)


def _budget_problem(message: str) -> ValidationError:
    return ValidationError(message, details=[{"field": BUDGET_FIELD, "message": message}])


def budget_call_usd(spec: ModelSpec, variants: int = 1) -> float:
    """What the model's calls count at against a budget cap (estimate.budget_call_usd): each
    call makes one image on a model that returns one image per call (its variants are more calls),
    all of the variants on one that returns several."""
    per_call = 1 if spec.variant_calls(variants) > 1 else variants
    return estimate.budget_call_usd(
        per_call, spec.price_per_image_usd, calls_per_image(spec), spec.compose_price_usd, spec.re_roll_price_usd
    )


def max_calls(spec: ModelSpec, variants: int, budget_usd: float, scene_usd: float | None = None) -> int:
    """The model calls a budget pays for (a call is never started past it). A scene background's
    one call is made first, before any photo's: its price is reserved here, off the top."""
    return max(0, int(math.floor((budget_usd - (scene_usd or 0.0)) / budget_call_usd(spec, variants) + 1e-9)))


def step_price_usd(spec: ModelSpec, step: str, variants: int = 1) -> float:
    """What one answered call of `step` costs (a failed image's calls that answered are billed)."""
    price = spec.price_per_call_usd.get(step)
    if price is None:
        return call_price_usd(spec, variants)
    return price * variants if calls_per_image(spec) == 1 else price


def job_cost(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job's cost so far, the estimate for all of it and its budget, in US dollars: one
    figure each, whoever shows it (the page, the CLI, the email, the report).

    `estimateUsd` is what POST /jobs answered (chalicelib/core/estimate.py: model calls and the
    Rekognition checks), kept on the job; `actualUsd` is the job's running total of what was
    done (each finished image's attempts, a failed image's answered calls, the scene call),
    added as each is recorded (JobStore), so reading it costs nothing at 10,000 images."""
    settings = job.get("settings") or {}
    calls = int(job.get(contracts.JOB_MODEL_CALLS_ATTRIBUTE) or 0)
    scene_calls = 1 if job.get(contracts.JOB_SCENE_MODEL_ATTRIBUTE) else 0
    try:
        spec = registry.get_model(str(job.get("model")))
    except ModelUnavailable:  # a model no longer in the registry: no price to say, and no guess
        spec = None
    cost: dict[str, Any] = {"modelCalls": calls + scene_calls}
    actual = job.get(contracts.JOB_COST_ATTRIBUTE)
    if actual is None and calls + scene_calls and spec is not None:
        actual = _cost_before_running_total(job, spec, calls, scene_calls)
    if actual is not None or spec is not None:
        cost["actualUsd"] = round(float(actual or 0.0), 4)
    stored = job.get(contracts.JOB_ESTIMATE_ATTRIBUTE) or {}
    if stored.get("usd") is not None:
        cost["estimateUsd"] = round(float(stored["usd"]), 4)
    elif spec is not None:
        cost["estimateUsd"] = round(_estimate_from_settings(job, spec).usd, 4)
    if spec is not None:
        cost["pricePerImageUsd"] = spec.price_per_image_usd
        cost["priceSource"] = spec.price_source
    if settings.get(BUDGET_FIELD) is not None:
        cost["budgetUsd"] = float(settings[BUDGET_FIELD])
    regenerations = int(job.get(contracts.JOB_REGENERATIONS_ATTRIBUTE) or 0)
    if regenerations:  # billed to their own linked jobs: a separate figure, not in `actualUsd`
        cost["regenerations"] = regenerations
        cost["regeneratedUsd"] = round(float(job.get(contracts.JOB_REGENERATED_COST_ATTRIBUTE) or 0.0), 4)
    return cost


def _scene_price_usd(settings: Mapping[str, Any]) -> float | None:
    """The batch's one scene call's price (None: no scene, or its model is gone)."""
    background = backgrounds.Background.from_dict(settings.get("background"))
    if background.source is not contracts.BackgroundSource.SCENE:
        return None
    try:
        return registry.get_model(background.model or registry.default_scene_model_key()).price_per_image_usd
    except ModelUnavailable:
        return None


def _estimate_from_settings(job: Mapping[str, Any], spec: ModelSpec) -> estimate.Estimate:
    """A job submitted before its estimate was kept: the estimate from its settings (every image
    with the job's background; per-image overrides are not on the job item)."""
    settings = job.get("settings") or {}
    images = int(job.get("imageCount") or 0)
    background = backgrounds.Background.from_dict(settings.get("background"))
    return estimate.job_estimate(
        images,
        int(settings.get("variants") or 1),
        spec.price_per_image_usd,
        spec.re_roll_price_usd,
        int(settings.get("reRolls") or 0),
        steps_per_prompt_image=calls_per_image(spec),
        compose_images=0 if background.needs_inpaint else images,
        compose_price_usd=spec.compose_price_usd,
        scene_price_usd=_scene_price_usd(settings),
    )


def _cost_before_running_total(job: Mapping[str, Any], spec: ModelSpec, calls: int, scene_calls: int) -> float:
    """A job that ran before its cost was kept as a running total: its answered calls at the
    model's price (the Rekognition checks were not counted then)."""
    settings = job.get("settings") or {}
    variants = int(settings.get("variants") or 1)
    scene_usd = _scene_price_usd(settings) or 0.0
    return calls * call_price_usd(spec, variants) + scene_calls * scene_usd
