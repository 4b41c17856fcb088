"""Variants on the executed state machine (moto's interpreter, the real ASL and Lambdas, the
Bedrock stand-in): three variants of one photo on the default model are three inpaint calls with
their own seeds through the ASL's bounded loop, each kept with its scorecard and cost, the best
delivered; the owner's pick is what the report, the CSV and the zip deliver; a budget that pays for
two calls stops the third."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import boto3
import pytest
from harness import deliver_stream, upload, wait_for

from chalicelib.core import contracts
from chalicelib.models import registry
from chalicelib.workflow.steps import re_roll_seed

pytestmark = pytest.mark.slow

BOX = {"Left": 0.25, "Top": 0.2, "Width": 0.5, "Height": 0.7}  # the stack fixture's kept "Product" box
PRODUCT = [{"Name": "Product", "Confidence": 97.0, "Instances": [{"BoundingBox": BOX, "Confidence": 96.0}]}]
GONE = [{"Name": "Sand", "Confidence": 91.0, "Instances": []}]


@pytest.fixture
def seeds(stack: dict[str, Any]) -> dict[str, Any]:
    """Record each inpaint call's seed."""
    bedrock = stack["bedrock"]
    inpaint = bedrock._inpaint
    stack["seeds"] = []

    def recording(model_id: str, body: dict[str, Any], texts: str) -> dict[str, Any]:
        if "inpaint" in model_id:
            stack["seeds"].append(body.get("seed"))
        return inpaint(model_id, body, texts)

    bedrock._inpaint = recording
    return stack


def _run(stack: dict[str, Any], token_for: Any, photo: Any, owner: str, **job: Any) -> tuple[Any, dict, dict, dict]:
    from chalice.test import Client

    import app as backdrop_app

    ref = upload(owner, "bottle.png", photo(480, 320, "PNG"), "png")
    body = {"prompt": "a sunny beach", "seed": 42, **job, "images": [{"imageRef": ref, "labels": ["Product"]}]}
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    client = Client(backdrop_app.app, stage_name="dev")
    submitted = client.http.post("/jobs", headers=headers, body=json.dumps(body))
    assert submitted.status_code == 202, submitted.body
    deliver_stream(stack, client)
    sfn = boto3.client("stepfunctions")
    execution = sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"][0]
    assert wait_for(sfn, execution["executionArn"])["status"] == "SUCCEEDED"
    view = client.http.get(f"/jobs/{submitted.json_body['jobId']}", headers=headers).json_body
    return client, headers, submitted.json_body, view


def test_three_variants_one_delivered_then_the_owners_pick_everywhere(seeds, rekognition, token_for, photo) -> None:
    stack = seeds
    # the product is gone from the first and third results, in place in the second
    rekognition.result_labels = [GONE, PRODUCT, GONE]
    client, headers, submitted, view = _run(stack, token_for, photo, "user-v", variants=3, reRolls=0)
    seed_max = registry.get_model("stability-inpaint").seed_max
    expected = [42, re_roll_seed(42, 2, seed_max), re_roll_seed(42, 3, seed_max)]
    assert stack["seeds"] == expected and len(set(expected)) == 3
    (image,) = view["images"]
    assert image["status"] == "SUCCEEDED" and view["status"] == "COMPLETED"
    outputs = image["outputs"]
    assert [(o["variant"], o["seed"], o["quality"]["outcome"]) for o in outputs] == [
        (1, expected[0], "FAIL"),
        (2, expected[1], "PASS"),
        (3, expected[2], "FAIL"),
    ]
    assert [o["delivered"] for o in outputs] == [False, True, False] and image["verdict"] == "PASS"
    # three calls' cost: the first variant both calls, each further one the inpaint
    total = sum(o["costUsd"] for o in outputs)
    assert view["cost"]["modelCalls"] == 4
    assert view["cost"]["actualUsd"] == pytest.approx(total)  # each variant's cost counted once
    assert total <= submitted["estimate"]["usd"] + 1e-9

    picked = client.http.post(
        f"/jobs/{view['jobId']}/images/{image['imageId']}/pick", headers=headers, body=json.dumps({"variant": 3})
    )
    assert picked.status_code == 200 and picked.json_body["report"] == "REWRITTEN"
    s3 = boto3.client("s3")
    owner, job_id = "user-v", view["jobId"]
    text = s3.get_object(Bucket=stack["bucket"], Key=contracts.report_key(owner, job_id, "csv"))["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["variant"], r["delivered"], r["pickedBy"]) for r in rows] == [
        ("1", "False", ""),
        ("2", "False", ""),
        ("3", "True", "OWNER"),
    ]
    archive = client.http.post(f"/jobs/{job_id}/archive", headers=headers, body="{}").json_body
    assert archive["state"] == "READY"
    key = contracts.archive_key(owner, job_id, "results")
    names = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=stack["bucket"], Key=key)["Body"].read())).namelist()
    assert len(names) == 1 and names[0].endswith("-3.png")


def test_the_budget_cap_stops_further_variants(seeds, rekognition, token_for, photo) -> None:
    """Two photos of three variants each (four calls a photo) with a budget of six calls: both
    photos are sent, and only two further variants in all are made, whatever the order."""
    from chalice.test import Client

    import app as backdrop_app

    stack = seeds
    rekognition.result_labels = [GONE] * 6
    spec = registry.get_model("stability-inpaint")
    from chalicelib.catalogue import costs

    budget = 6 * costs.budget_call_usd(spec, 3) + 0.001  # six calls (each counted with its checks): 4 + 2
    owner = "user-b"
    refs = [upload(owner, f"p{i}.png", photo(480, 320, "PNG"), "png") for i in range(2)]
    body = {
        "prompt": "a sunny beach",
        "seed": 42,
        "variants": 3,
        "reRolls": 0,
        "budgetUsd": budget,
        "images": [{"imageRef": ref, "labels": ["Product"]} for ref in refs],
    }
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    client = Client(backdrop_app.app, stage_name="dev")
    submitted = client.http.post("/jobs", headers=headers, body=json.dumps(body))
    assert submitted.status_code == 202, submitted.body
    deliver_stream(stack, client)
    sfn = boto3.client("stepfunctions")
    execution = sfn.list_executions(stateMachineArn=stack["state_machine_arn"])["executions"][0]
    assert wait_for(sfn, execution["executionArn"])["status"] == "SUCCEEDED"
    view = client.http.get(f"/jobs/{submitted.json_body['jobId']}", headers=headers).json_body
    assert len(stack["seeds"]) == 4  # two first inpaints and two further variants, no more
    images = view["images"]
    assert all(i["status"] == "SUCCEEDED" for i in images)
    assert sum(len(i["outputs"]) for i in images) == 4
    stopped = [a for i in images for a in i["attempts"] if a.get("errorCode") == "BUDGET_REACHED"]
    assert stopped and all("further variants were not made" in a["cause"] for a in stopped)
    assert view["cost"]["modelCalls"] == 6
