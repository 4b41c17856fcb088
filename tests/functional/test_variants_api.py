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


# ------------------------------------------------------------------------------ pick


def _finished_job(store: Any, variants: int = 3) -> str:
    """A finished job (its report written) of one photo made in `variants` variants by the
    workflow's own steps, with the stand-in model; answers the image's id."""
    from test_finalize_checks_and_rerolls import BUCKET as STEPS_BUCKET
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER, _answer, _event

    from backend.local.bedrock_standin import StandInBedrock
    from chalicelib.report import Reporter
    from chalicelib.workflow import Steps

    assert STEPS_BUCKET == BUCKET
    s3 = boto3.client("s3")
    steps, standin = Steps(s3, store), StandInBedrock()
    event = _event(store, {"variants": variants, "reRolls": 0})
    _answer(steps.prepare(event)["call"], standin)
    _answer(steps.build_mask(event)["call"], standin)
    answer = steps.finalize(event)
    while answer["reroll"]:
        _answer(answer["reroll"]["call"], standin)
        answer = steps.finalize({**event, "finalized": answer})
    Reporter(s3, store).write(JOB_ID, OWNER, BUCKET)
    return str(event["image"]["imageId"])


def _pick(client: Client, token: str, job_id: str, image_id: str, body: Any) -> Any:
    headers = {"Authorization": token, "Content-Type": "application/json"}
    return client.http.post(f"/jobs/{job_id}/images/{image_id}/pick", headers=headers, body=json.dumps(body))


def _archive_names(client: Client, token: str, job_id: str) -> list[str]:
    import io
    import zipfile

    headers = {"Authorization": token, "Content-Type": "application/json"}
    answer = client.http.post(f"/jobs/{job_id}/archive", headers=headers, body="{}").json_body
    assert answer["state"] == "READY", answer
    key = answer["url"].split("?")[0].split(f"{BUCKET}/", 1)[-1]
    if key.startswith("http"):
        key = key.split("/", 3)[3]
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return sorted(zipfile.ZipFile(io.BytesIO(body)).namelist())


def test_the_owners_pick_is_delivered_by_the_job_view_report_csv_and_archive(client, token_for, store) -> None:
    import csv
    import io

    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    image_id = _finished_job(store)
    token = token_for(OWNER)
    view = client.http.get(f"/jobs/{JOB_ID}", headers={"Authorization": token}).json_body
    (image,) = view["images"]
    assert len(image["outputs"]) == 3 and sum(o["delivered"] for o in image["outputs"]) == 1
    best = next(o["variant"] for o in image["outputs"] if o["delivered"])
    before = _archive_names(client, token, JOB_ID)
    assert len(before) == 1 and before[0].endswith(f"-{best}.png")  # the delivered variant alone
    chosen = next(v for v in (3, 2, 1) if v != best)

    picked = _pick(client, token, JOB_ID, image_id, {"variant": chosen})
    assert picked.status_code == 200, picked.body
    assert picked.json_body["delivered"] == chosen and picked.json_body["report"] == "REWRITTEN"
    view = client.http.get(f"/jobs/{JOB_ID}", headers={"Authorization": token}).json_body
    outputs = view["images"][0]["outputs"]
    assert [(o["variant"], o["delivered"]) for o in outputs] == [(v, v == chosen) for v in (1, 2, 3)]
    assert next(o for o in outputs if o["delivered"])["pickedBy"] == "OWNER"
    s3 = boto3.client("s3")
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=contracts.report_key(OWNER, JOB_ID, "json"))["Body"].read())
    assert [o["delivered"] for o in report["images"][0]["outputs"]] == [v == chosen for v in (1, 2, 3)]
    assert report["status"] == "COMPLETED" and report["updatedAt"]
    text = s3.get_object(Bucket=BUCKET, Key=contracts.report_key(OWNER, JOB_ID, "csv"))["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["variant"], r["delivered"], r["pickedBy"]) for r in rows] == [
        (str(v), str(v == chosen), "OWNER" if v == chosen else "") for v in (1, 2, 3)
    ]
    # the zip built before the pick was dropped: the next one delivers the pick
    after = _archive_names(client, token, JOB_ID)
    assert len(after) == 1 and after[0].endswith(f"-{chosen}.png")


def test_bad_picks_are_refused_with_the_reason(client, token_for, store) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    image_id = _finished_job(store, variants=2)
    token = token_for(OWNER)
    for body in ({"variant": 3}, {"variant": 0}, {"variant": "2"}, {"variant": True}, {}, [1]):
        response = _pick(client, token, JOB_ID, image_id, body)
        assert response.status_code == 400, body
        if isinstance(body, dict):
            assert response.json_body["details"][0]["field"] == "variant"
            assert "1, 2" in response.json_body["details"][0]["message"]
    assert _pick(client, token_for("someone-else"), JOB_ID, image_id, {"variant": 2}).status_code == 404
    assert _pick(client, token, JOB_ID, "0" * 32, {"variant": 2}).status_code == 404
    assert _pick(client, token, "20261125T050000Z-000000000000", image_id, {"variant": 2}).status_code == 404


def test_an_image_that_has_not_succeeded_has_nothing_to_pick(client, token_for, store) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER, _event

    event = _event(store, {"variants": 2})  # submitted and running; the image has not finished
    response = _pick(client, token_for(OWNER), JOB_ID, event["image"]["imageId"], {"variant": 1})
    assert response.status_code == 409 and "PENDING" in response.json_body["message"]
