"""The job estimate: model calls, Finalize's Rekognition checks, and the re-roll maximum."""

from __future__ import annotations

import pytest

from chalicelib.core import contracts, estimate
from chalicelib.models import registry
from chalicelib.workflow.steps import re_roll_seed


def test_the_estimate_prices_the_checks_and_every_possible_re_roll_as_a_maximum() -> None:
    spec = registry.get_model("stability-inpaint")
    cost = estimate.job_estimate(12, 1, spec.price_per_image_usd, spec.re_roll_price_usd, 1)
    check = contracts.REKOGNITION_USD_PER_IMAGE
    assert cost.model_usd == pytest.approx(12 * 0.08)
    assert cost.checks_usd == pytest.approx(12 * 3 * check)  # labels + text on the result, text on the original
    # a re-roll repeats the inpaint only (the cut-out stays) and its two checks on the result
    assert spec.re_roll_price_usd == 0.04
    assert cost.max_usd == pytest.approx(cost.usd + 12 * (0.04 + 2 * check))
    assert (
        cost.sentence()
        == f"About ${cost.usd:.2f} for 12 photos (up to ${cost.max_usd:.2f} if every image is re-rolled)"
    )
    none = estimate.job_estimate(1, 2, 0.01, 0.01, 0)
    assert none.max_usd == none.usd and "re-rolled" not in none.sentence() and "2 variants each" in none.sentence()
    three = estimate.job_estimate(1, 1, 0.01, 0.01, 3)
    assert "re-rolled 3 times" in three.sentence()


def test_a_one_call_model_re_rolls_at_its_whole_price() -> None:
    assert (
        registry.get_model("titan-image-v2").re_roll_price_usd
        == registry.get_model("titan-image-v2").price_per_image_usd
    )


def test_re_roll_seeds_move_on_and_stay_in_the_models_range() -> None:
    seeds = [re_roll_seed(42, attempt, 2_147_483_646) for attempt in range(1, 2 + contracts.MAX_RE_ROLLS)]
    assert seeds[0] == 42 and len(set(seeds)) == len(seeds)
    assert re_roll_seed(858_993_459, 2, 858_993_459) == contracts.RE_ROLL_SEED_STEP - 1  # wraps within the range
    assert all(0 <= re_roll_seed(s, 4, 99) <= 99 for s in range(100))


@pytest.mark.parametrize("key", ["stability-inpaint", "titan-image-v2", "nova-canvas"])
@pytest.mark.parametrize("variants", [1, 3])
def test_a_budget_cap_counts_each_call_at_the_most_it_and_its_checks_can_cost(key: str, variants: int) -> None:
    from chalicelib.catalogue import costs

    spec = registry.get_model(key)
    variants = min(variants, spec.max_variants)
    per_call = costs.budget_call_usd(spec, variants)
    check = contracts.REKOGNITION_USD_PER_IMAGE
    steps = costs.calls_per_image(spec)
    first = variants * spec.price_per_image_usd + estimate.checks_per_attempt(variants, first=True) * check
    re_roll = variants * spec.re_roll_price_usd + estimate.checks_per_attempt(variants, first=False) * check
    composed = spec.compose_price_usd + estimate.checks_per_attempt(1, first=True) * check
    # whatever a reserved call turns out to be, what it costs (checks included) is within its count
    assert first <= steps * per_call + 1e-12 and re_roll <= per_call + 1e-12 and composed <= per_call + 1e-12
    # and the count is not far above the dearest of them
    assert per_call == pytest.approx(max(first / steps, re_roll, composed))


@pytest.mark.parametrize("composed", [False, True])
def test_the_budget_to_send_every_photo_pays_for_every_photo_and_the_scene(composed: bool) -> None:
    from chalicelib.catalogue import costs

    spec = registry.get_model("stability-inpaint")
    scene_usd = registry.get_model(registry.default_scene_model_key()).price_per_image_usd if composed else None
    found = estimate.job_estimate(
        12,
        1,
        spec.price_per_image_usd,
        spec.re_roll_price_usd,
        1,
        steps_per_prompt_image=2,
        compose_images=12 if composed else 0,
        compose_price_usd=spec.compose_price_usd,
        scene_price_usd=scene_usd,
    )
    budget = found.budget_to_send_every_photo(costs.budget_call_usd(spec))
    calls = found.model_calls["perImagePrompt"] + found.model_calls["perImageCompose"]
    assert costs.max_calls(spec, 1, budget, scene_usd) >= calls
    assert costs.max_calls(spec, 1, budget - 0.01, scene_usd) < calls  # whole cents, no more than needed
    assert budget >= found.usd  # never less than the job is estimated to cost


def test_cost_words_say_the_same_figures_wherever_they_are_shown() -> None:
    from chalicelib.catalogue import costs

    cost = {"modelCalls": 24, "actualUsd": 0.996, "estimateUsd": 0.996, "budgetUsd": 1.04}
    assert costs.cost_words(cost, finished=True) == (
        "Cost: about $1.00 (24 model calls) of a $1.04 budget · about $1.00 for the whole job"
    )
    running = costs.cost_words({"modelCalls": 1, "actualUsd": 0.083, "estimateUsd": 0.996}, finished=False)
    assert running == "Spent so far: about $0.08 (1 model call) · about $1.00 for the whole job"
    assert costs.cost_words({"modelCalls": 0}, finished=False) is None  # a model without a price: nothing said
    # regenerations are billed to their own jobs: said apart, not added to this job's cost
    regenerated = {"modelCalls": 2, "actualUsd": 0.08, "regenerations": 1, "regeneratedUsd": 0.042}
    assert costs.cost_words(regenerated, finished=True) == (
        "Cost: about $0.08 (2 model calls) · plus $0.04 in 1 regeneration"
    )
    regenerated.update(regenerations=3, regeneratedUsd=0.126)
    assert costs.cost_words(regenerated, finished=True).endswith("· plus $0.13 in 3 regenerations")
