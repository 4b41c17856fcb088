"""Variants through the HTTP API (Chalice's test client, on moto): asking for n variants of each
photo on a model that returns one image per call, and what it will cost before submitting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import Client

import app as backdrop_app
from chalicelib import contracts
from chalicelib.models import registry

BUCKET = "backdrop-test-bucket"


@pytest.fixture
def client(resources: dict[str, Any], rekognition: Any) -> Iterator[Client]:
    with Client(backdrop_app.app, stage_name="dev") as test_client:
        yield test_client


def _upload(owner: str, data: bytes) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=data)
    return ref


def _submit(client: Client, token: str, refs: list[str], **extra: Any) -> Any:
    body = {"prompt": "a marble studio floor", "images": [{"imageRef": r, "labels": ["Person"]} for r in refs], **extra}
    headers = {"Authorization": token, "Content-Type": "application/json"}
    return client.http.post("/jobs", headers=headers, body=json.dumps(body))


def test_variants_on_the_default_model_are_accepted_and_cost_one_more_call_each(client, token_for, photo) -> None:
    token = token_for("owner-v")
    refs = [_upload("owner-v", photo()) for _ in range(2)]
    one = _submit(client, token, refs, reRolls=0).json_body["estimate"]
    three = _submit(client, token, refs, variants=contracts.MAX_VARIANTS - 1, reRolls=0)
    assert three.status_code == 202, three.body
    estimate = three.json_body["estimate"]
    spec = registry.get_model(registry.default_model_key())
    # each further variant is the last call again (Stability: the inpaint; the cut-out is made once)
    assert estimate["modelUsd"] == pytest.approx(one["modelUsd"] + 2 * 2 * spec.re_roll_price_usd)
    assert estimate["modelCalls"]["total"] == one["modelCalls"]["total"] + 2 * 2
    assert "(3 variants each)" in estimate["sentence"]
    models = client.http.get("/models", headers={"Authorization": token}).json_body
    default = next(m for m in models["models"] if m["key"] == spec.key)
    assert default["limits"]["maxVariants"] == contracts.MAX_VARIANTS and default["limits"]["variantsPerCall"] == 1


def test_too_many_variants_or_variants_of_a_composed_background_are_refused(client, token_for, photo) -> None:
    token = token_for("owner-v")
    refs = [_upload("owner-v", photo())]
    for body, words in (
        ({"variants": contracts.MAX_VARIANTS + 1}, f"between 1 and {contracts.MAX_VARIANTS}"),
        ({"variants": 0}, "between 1 and"),
        ({"variants": 2, "background": {"source": "color", "color": "#FFFFFF"}}, "every variant would be the same"),
    ):
        response = _submit(client, token, refs, **body)
        assert response.status_code == 400, body
        (detail,) = [d for d in response.json_body["details"] if d["field"] == "variants"]
        assert words in detail["message"]
