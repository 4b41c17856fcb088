"""Automatic re-rolls on the executed state machine (moto's interpreter, the real ASL and
Lambdas, the Bedrock stand-in): an image whose scorecard fails goes back to the model call with a
new seed, the best attempt is kept, every attempt is in the API, the JSON and CSV reports; a
re-roll the content filter blocks never fails the image."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import boto3
import pytest
from harness import upload

from backend.local.bedrock_standin import STABILITY_FILTERS
from chalicelib.core import contracts
from chalicelib.models import registry
from chalicelib.workflow.steps import re_roll_seed

pytestmark = pytest.mark.slow

BOX = {"Left": 0.25, "Top": 0.2, "Width": 0.5, "Height": 0.7}  # the stack fixture's kept "Product" box
PRODUCT = [{"Name": "Product", "Confidence": 97.0, "Instances": [{"BoundingBox": BOX, "Confidence": 96.0}]}]
GONE = [{"Name": "Sand", "Confidence": 91.0, "Instances": []}]


def _job(photo: Any, owner: str, **job: Any) -> dict[str, Any]:
    """`owner`'s job of one photo with its "Product" label kept, on a sunny beach, seed 42."""
    ref = upload(owner, "bottle.png", photo(480, 320, "PNG"), "png")
    return {"prompt": "a sunny beach", "seed": 42, **job, "images": [{"imageRef": ref, "labels": ["Product"]}]}


def _inpaint_seeds(stack: dict[str, Any]) -> list[int]:
    return [seed for model_id, seed in stack["seeds"] if "inpaint" in model_id]


@pytest.fixture
def seeds(stack: dict[str, Any]) -> dict[str, Any]:
    """Record each model call's seed (the stand-in keeps only the prompt text)."""
    bedrock = stack["bedrock"]
    inpaint = bedrock._inpaint
    stack["seeds"] = []
    stack["inpaint"] = inpaint

    def recording(model_id: str, body: dict[str, Any], texts: str) -> dict[str, Any]:
        stack["seeds"].append((model_id, body.get("seed")))
        return stack.get("inpaint_override", inpaint)(model_id, body, texts)

    bedrock._inpaint = recording
    return stack


def test_a_failing_image_is_re_rolled_and_the_passing_attempt_kept(seeds, rekognition, run_job, photo) -> None:
    stack = seeds
    # Rekognition no longer sees the product in the first result, and sees it in place in the second
    rekognition.result_labels = [GONE, PRODUCT]
    submitted, view = run_job("user-r", _job(photo, "user-r", reRolls=2))
    second_seed = re_roll_seed(42, 2, registry.get_model("stability-inpaint").seed_max)
    assert _inpaint_seeds(stack) == [42, second_seed]  # one re-roll was enough of the two allowed
    (image,) = view["images"]
    assert image["status"] == "SUCCEEDED" and view["status"] == "COMPLETED"
    attempts = image["attempts"]
    assert [(a["attempt"], a["seed"], a["outcome"], a["kept"]) for a in attempts] == [
        (1, 42, "FAIL", False),
        (2, second_seed, "PASS", True),
    ]
    assert "Product missing" in attempts[0]["quality"][0]["checks"][-2]["reason"]
    assert image["outputs"][0]["seed"] == second_seed and image["outputs"][0]["quality"]["outcome"] == "PASS"
    assert attempts[1]["costUsd"] < attempts[0]["costUsd"]  # the re-roll paid the inpaint only
    total = sum(a["costUsd"] for a in attempts)
    assert total <= submitted["estimate"]["maxUsd"] + 1e-9
    # one figure for the whole job, what POST /jobs said (its checks at most: a pixel-identical
    # product's text is not read again); the job's actual cost is its attempts', the re-roll's too
    assert view["cost"]["estimateUsd"] == pytest.approx(submitted["estimate"]["usd"])
    assert attempts[0]["costUsd"] <= submitted["estimate"]["usd"] < total
    assert view["cost"]["actualUsd"] == pytest.approx(total)

    s3 = boto3.client("s3")
    owner, job_id = "user-r", view["jobId"]
    report = json.loads(
        s3.get_object(Bucket=stack["bucket"], Key=contracts.report_key(owner, job_id, "json"))["Body"].read()
    )
    assert [a["kept"] for a in report["images"][0]["attempts"]] == [False, True]
    text = s3.get_object(Bucket=stack["bucket"], Key=contracts.report_key(owner, job_id, "csv"))["Body"].read().decode()
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert (row["attempts"], row["keptAttempt"], row["attemptOutcomes"]) == ("2", "2", "FAIL;PASS")
    assert row["attemptSeeds"] == f"42;{second_seed}" and float(row["costUsd"]) == pytest.approx(total)


def test_a_content_filtered_re_roll_never_fails_the_image(seeds, rekognition, run_job, photo) -> None:
    stack = seeds
    inpaint = stack["inpaint"]

    def filter_re_rolls(model_id: str, body: dict[str, Any], texts: str) -> dict[str, Any]:
        if body.get("seed") != 42:
            return {"finish_reasons": [STABILITY_FILTERS["output"]]}
        return inpaint(model_id, body, texts)

    stack["inpaint_override"] = filter_re_rolls
    rekognition.result_labels = [GONE]
    _, view = run_job("user-f", _job(photo, "user-f", reRolls=3))
    assert len(_inpaint_seeds(stack)) == 2  # the filtered re-roll ends them, with two more allowed
    (image,) = view["images"]
    assert image["status"] == "SUCCEEDED"  # the first attempt is delivered, and its scorecard says FAIL
    assert image["outputs"][0]["quality"]["outcome"] == "FAIL"
    assert [(a["attempt"], a.get("errorCode"), a["kept"]) for a in image["attempts"]] == [
        (1, None, True),
        (2, "CONTENT_FILTERED", False),
    ]


def test_re_rolls_off_means_one_attempt(seeds, rekognition, run_job, photo) -> None:
    rekognition.result_labels = [GONE]
    _, view = run_job("user-o", _job(photo, "user-o", reRolls=0))
    assert _inpaint_seeds(seeds) == [42]
    assert [a["outcome"] for a in view["images"][0]["attempts"]] == ["FAIL"]
