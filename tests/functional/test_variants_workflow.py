"""Variants on a model that returns one image per call, step by step on moto (no state machine):
n calls of the last step with reproducible seeds, each variant kept at its own result key with its
own scorecard and cost, the best delivered; the budget cap stops further variants; a re-roll only
when no variant is good enough, for the weakest variant."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from test_finalize_checks_and_rerolls import BUCKET, JOB_ID, LABELS_CALL, OWNER, _answer, _image, _labels, _prepared

from chalicelib.core import contracts
from chalicelib.models import registry
from chalicelib.workflow.steps import re_roll_seed

SEED_MAX = registry.get_model("stability-inpaint").seed_max


@pytest.fixture
def rekognition() -> Any:
    """Rekognition behind botocore's Stubber (as in test_finalize_checks_and_rerolls.py)."""
    client = boto3.client("rekognition")
    with Stubber(client) as stubber:
        client.stubber = stubber  # type: ignore[attr-defined]
        yield client
        stubber.assert_no_pending_responses()


def _run(steps: Any, event: dict[str, Any], standin: Any, stub: Any, outcomes: list[str]) -> list[dict[str, Any]]:
    """Finalize until the image is done; each result's subject check answers as `outcomes` says
    ("Bottle": in place, PASS; "Table": the product is gone, FAIL). Every Finalize answer."""
    answers = []
    finalized: dict[str, Any] | None = None
    for name in outcomes:
        stub.add_response("detect_labels", _labels(name), LABELS_CALL)
        answer = steps.finalize({**event, "finalized": finalized} if finalized else event)
        answers.append(answer)
        if answer["reroll"] is None:
            break
        _answer(answer["reroll"]["call"], standin)
        finalized = answer
    return answers


def test_three_variants_are_three_calls_with_their_own_seeds_keys_and_costs(store, rekognition) -> None:
    steps, event, standin = _prepared(store, rekognition, {"variants": 3, "reRolls": 0})
    answers = _run(steps, event, standin, rekognition.stubber, ["Table", "Bottle", "Table"])
    assert [a["reroll"]["variant"] for a in answers[:2]] == [2, 3]
    assert answers[-1]["reroll"] is None and len(answers) == 3
    item = _image(store, event)
    assert item["status"] == "SUCCEEDED"
    outputs = item["outputs"]
    seeds = [9, re_roll_seed(9, 2, SEED_MAX), re_roll_seed(9, 3, SEED_MAX)]
    assert [(o["variant"], o["seed"]) for o in outputs] == list(zip([1, 2, 3], seeds, strict=True))
    assert len(set(seeds)) == 3
    # the passing one is delivered, chosen by the scorecards; the image's verdict is its
    assert [o["delivered"] for o in outputs] == [False, True, False] and outputs[1]["pickedBy"] == "BEST"
    assert [o["quality"]["outcome"] for o in outputs] == ["FAIL", "PASS", "FAIL"] and item["verdict"] == "PASS"
    # each variant at its own key, kept after the image's scratch was discarded
    s3 = boto3.client("s3")
    for output in outputs:
        assert output["key"] == contracts.result_key(OWNER, JOB_ID, item["imageId"], output["variant"], "png")
        assert s3.head_object(Bucket=BUCKET, Key=output["key"])["ContentLength"] > 0
    scratch = s3.list_objects_v2(Bucket=BUCKET, Prefix=contracts.work_key(JOB_ID, item["imageId"], ""))
    assert scratch.get("KeyCount", 0) == 0
    # the first variant paid both calls, each further one the inpaint again
    spec = registry.get_model("stability-inpaint")
    costs = [o["costUsd"] for o in outputs]
    assert costs[0] > costs[1] == costs[2] >= spec.re_roll_price_usd
    assert [a["costUsd"] for a in item["attempts"]] == costs
    assert item["modelCalls"] == 4  # remove-background, inpaint, and the inpaint twice more


def test_the_budget_cap_stops_further_variants(store, rekognition) -> None:
    steps, event, standin = _prepared(
        store, rekognition, {"variants": 3, "reRolls": 0, "budgetUsd": 0.12, "maxModelCalls": 3}
    )
    answers = _run(steps, event, standin, rekognition.stubber, ["Table", "Bottle"])
    assert answers[-1]["reroll"] is None
    item = _image(store, event)
    assert [o["variant"] for o in item["outputs"]] == [1, 2]  # the third variant was not made
    assert [(a["attempt"], a.get("errorCode")) for a in item["attempts"]] == [
        (1, None),
        (2, None),
        (3, "BUDGET_REACHED"),
    ]
    assert "further variants were not made" in item["attempts"][2]["cause"]
    assert store.get_job(JOB_ID)["modelCallsStarted"] == 3


def test_a_re_roll_comes_only_when_no_variant_passes_and_replaces_the_weakest(store, rekognition) -> None:
    steps, event, standin = _prepared(store, rekognition, {"variants": 2, "reRolls": 1})
    answers = _run(steps, event, standin, rekognition.stubber, ["Table", "Table", "Bottle"])
    # both variants FAIL: the re-roll is attempt 3, for the weakest variant (the later one on a tie)
    assert answers[1]["reroll"]["attempt"] == 3 and answers[1]["reroll"]["variant"] == 2
    item = _image(store, event)
    assert [(a["attempt"], a["variant"], a["kept"]) for a in item["attempts"]] == [
        (1, 1, True),
        (2, 2, False),
        (3, 2, True),
    ]
    assert [(o["variant"], o["seed"], o["delivered"]) for o in item["outputs"]] == [
        (1, 9, False),
        (2, re_roll_seed(9, 3, SEED_MAX), True),
    ]


def test_no_re_roll_when_a_variant_passes(store, rekognition) -> None:
    steps, event, standin = _prepared(store, rekognition, {"variants": 2, "reRolls": 2})
    answers = _run(steps, event, standin, rekognition.stubber, ["Table", "Bottle"])
    assert len(answers) == 2 and answers[-1]["reroll"] is None
    assert [o["delivered"] for o in _image(store, event)["outputs"]] == [False, True]
