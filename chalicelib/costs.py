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

from chalicelib.errors import ModelUnavailable, ValidationError
from chalicelib.models import registry
from chalicelib.models.base import ModelSpec

MAX_BUDGET_USD: Final = 1_000_000.0
BUDGET_FIELD: Final = "budgetUsd"
# The job settings carry the cap as model calls, so each image's Prepare step can reserve its
# calls without reading prices (chalicelib/workflow.py).
MAX_CALLS_SETTING: Final = "maxModelCalls"


def calls_per_image(spec: ModelSpec) -> int:
    return len(registry.adapter_for(spec).steps)


def call_price_usd(spec: ModelSpec, variants: int = 1) -> float:
    per_call = spec.price_per_image_usd / calls_per_image(spec)
    return per_call * variants if calls_per_image(spec) == 1 else per_call


def image_price_usd(spec: ModelSpec, variants: int = 1) -> float:
    """One photo with its variants (each further one: the last call again)."""
    return spec.variants_price_usd(variants)


def parse_budget(body: Mapping[str, Any], spec: ModelSpec, variants: int) -> float | None:
    """POST /jobs `budgetUsd`: a positive amount that pays for at least one photo, or none."""
    value = body.get(BUDGET_FIELD)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _budget_problem("budgetUsd must be an amount in US dollars, such as 25 or 12.5")
    if not 0 < value <= MAX_BUDGET_USD:
        raise _budget_problem(f"budgetUsd must be more than 0 and at most {MAX_BUDGET_USD:,.0f}")
    one_photo = image_price_usd(spec, variants)
    if value < one_photo:
        raise _budget_problem(
            f"a budget of ${value:.2f} does not pay for one photo with {spec.key} (${one_photo:.2f} each)"
        )
    return float(value)


def _budget_problem(message: str) -> ValidationError:
    return ValidationError(message, details=[{"field": BUDGET_FIELD, "message": message}])


def max_calls(spec: ModelSpec, variants: int, budget_usd: float) -> int:
    """The model calls a budget pays for (a call is never started past it)."""
    return int(math.floor(budget_usd / call_price_usd(spec, variants) + 1e-9))


def job_cost(job: Mapping[str, Any], calls_answered: int) -> dict[str, Any]:
    """The job's cost so far, the estimate for all of it and its budget, in US dollars. A scene
    background's one call per batch is counted at its own model's price."""
    from chalicelib import backgrounds, contracts

    settings = job.get("settings") or {}
    variants = int(settings.get("variants") or 1)
    try:
        spec = registry.get_model(str(job.get("model")))
    except ModelUnavailable:  # a model no longer in the registry: no price to say, and no guess
        return {"modelCalls": calls_answered}
    background = backgrounds.Background.from_dict(settings.get("background"))
    images = int(job.get("imageCount") or 0)
    scene_usd = 0.0
    scene_calls = 0
    if background.source is contracts.BackgroundSource.SCENE:
        try:
            scene_spec = registry.get_model(background.model or registry.default_scene_model_key())
            scene_usd = scene_spec.price_per_image_usd
        except ModelUnavailable:
            pass
        scene_calls = 1 if job.get(contracts.JOB_SCENE_MODEL_ATTRIBUTE) else 0
    if background.needs_inpaint:
        whole = images * image_price_usd(spec, variants)
    else:  # a colour / photo / transparent / scene background: one call a photo, never re-rolled
        whole = images * spec.compose_price_usd + scene_usd
    cost: dict[str, Any] = {
        "modelCalls": calls_answered + scene_calls,
        "actualUsd": round(calls_answered * call_price_usd(spec, variants) + scene_calls * scene_usd, 4),
        "estimateUsd": round(whole, 4),
        "pricePerImageUsd": spec.price_per_image_usd,
        "priceSource": spec.price_source,
    }
    if settings.get(BUDGET_FIELD) is not None:
        cost["budgetUsd"] = float(settings[BUDGET_FIELD])
    return cost


def cost_words(cost: Mapping[str, Any], finished: bool) -> str | None:
    """ "Cost: $0.88 (22 model calls) of a $5.00 budget", for the page, the CLI and the email."""
    if "actualUsd" not in cost:
        return None
    calls = int(cost.get("modelCalls") or 0)
    words = f"{'Cost' if finished else 'Spent so far'}: about ${cost['actualUsd']:.2f} ({calls} model call"
    words += "s)" if calls != 1 else ")"
    if cost.get("budgetUsd") is not None:
        words += f" of a ${cost['budgetUsd']:.2f} budget"
    return words
