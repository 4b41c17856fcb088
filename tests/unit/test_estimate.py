"""The job estimate: model calls, Finalize's Rekognition checks, and the re-roll maximum."""

from __future__ import annotations

import pytest

from chalicelib import contracts, estimate
from chalicelib.models import registry
from chalicelib.workflow import re_roll_seed


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
