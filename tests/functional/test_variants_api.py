"""Variants through the HTTP API (Chalice's test client, on moto): asking for n variants of each
photo on a model that returns one image per call, and what it will cost before submitting."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from builders import BUCKET
from chalice.test import Client

from chalicelib.core import contracts
from chalicelib.models import registry


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
    from chalicelib.delivery.report import Reporter
    from chalicelib.workflow.steps import Steps

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


# ------------------------------------------------------------------------------ regenerate


def _run_job(store: Any, job_id: str) -> None:
    """Run a submitted job's one image through the workflow's steps with the stand-in model."""
    from harness import write_job_images

    from backend.local.bedrock_standin import StandInBedrock
    from chalicelib.workflow.steps import Steps

    write_job_images(job_id, BUCKET)  # its stream record reaches the starter: the image item is written
    job = store.get_job(job_id)
    (image,) = store.images(job_id)
    item = {k: image.get(k) for k in ("imageId", "key", "name", "labels", "boxes", "prompt", "background")}
    event = {"jobId": job_id, "owner": job["owner"], "bucket": BUCKET, "settings": job["settings"], "image": item}
    steps, standin = Steps(boto3.client("s3"), store), StandInBedrock()
    assert store.mark_running(job_id, f"arn:aws:states:us-east-1:123456789012:execution:backdrop-test:{job_id}")
    from test_finalize_checks_and_rerolls import _answer

    _answer(steps.prepare(event)["call"], standin)
    _answer(steps.build_mask(event)["call"], standin)
    assert steps.finalize(event)["reroll"] is None


def test_regenerate_makes_a_linked_job_whose_result_becomes_the_next_variant(client, token_for, store) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    image_id = _finished_job(store, variants=2)
    parent = store.get_image(JOB_ID, image_id)
    store.put_labels(parent["key"], [{"name": "Bottle", "confidence": 96.0, "instances": []}])
    token = token_for(OWNER)
    headers = {"Authorization": token, "Content-Type": "application/json"}
    path = f"/jobs/{JOB_ID}/images/{image_id}/regenerate"
    answer = client.http.post(path, headers=headers, body=json.dumps({"seed": 777, "prompt": "a pale oak table"}))
    assert answer.status_code == 202, answer.body
    regen = answer.json_body
    assert regen["regenerateOf"] == {"jobId": JOB_ID, "imageId": image_id} and regen["seed"] == 777
    assert regen["follow"] == f"/jobs/{regen['jobId']}" and regen["estimate"]["modelCalls"]["total"] == 2
    linked = store.get_job(regen["jobId"])
    assert linked["settings"]["variants"] == 1 and linked["settings"]["seed"] == 777 and linked["notify"] is False
    _run_job(store, regen["jobId"])

    view = client.http.get(f"/jobs/{JOB_ID}", headers={"Authorization": token}).json_body
    outputs = view["images"][0]["outputs"]
    assert [o["variant"] for o in outputs] == [1, 2, 3]
    added = outputs[2]
    assert (added["source"], added["jobId"], added["seed"], added["prompt"]) == (
        "REGENERATED",
        regen["jobId"],
        777,
        "a pale oak table",
    )
    assert added["delivered"] is False and added["costUsd"] > 0
    assert added["key"] == contracts.result_key(OWNER, JOB_ID, image_id, 3, "png")
    assert boto3.client("s3").head_object(Bucket=BUCKET, Key=added["key"])["ContentLength"] > 0
    report = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key(OWNER, JOB_ID, "json"))["Body"].read()
    )
    assert [o.get("source") for o in report["images"][0]["outputs"]][-1] == "REGENERATED"
    # it is one more variant to pick
    assert _pick(client, token, JOB_ID, image_id, {"variant": 3}).json_body["delivered"] == 3


def test_regenerate_refuses_what_it_cannot_make(client, token_for, store) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    image_id = _finished_job(store, variants=1)
    parent = store.get_image(JOB_ID, image_id)
    store.put_labels(parent["key"], [{"name": "Bottle", "confidence": 96.0, "instances": []}])
    headers = {"Authorization": token_for(OWNER), "Content-Type": "application/json"}
    path = f"/jobs/{JOB_ID}/images/{image_id}/regenerate"

    def post(body: Any, where: str = path, who: dict[str, str] = headers) -> Any:
        return client.http.post(where, headers=who, body=json.dumps(body))

    for body, field in (({"seed": "7"}, "seed"), ({"seed": -1}, "seed"), ({"prompt": "  "}, "prompt")):
        response = post(body)
        assert response.status_code == 400 and response.json_body["details"][0]["field"] == field, body
    assert post({"colour": "red"}).status_code == 400
    other = {"Authorization": token_for("someone-else"), "Content-Type": "application/json"}
    assert post({}, who=other).status_code == 404
    assert post({}, where=f"/jobs/{JOB_ID}/images/{'0' * 32}/regenerate").status_code == 404
    for _ in range(contracts.MAX_REGENERATIONS):
        assert post({}).status_code == 202
    refused = post({})
    assert refused.status_code == 409 and "pick among its variants" in refused.json_body["message"]


def test_a_regenerations_cost_is_billed_to_its_own_job_and_said_apart_on_the_parent(client, token_for, store) -> None:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    from chalicelib.catalogue import costs
    from chalicelib.delivery.variants import VariantService

    image_id = _finished_job(store, variants=2)
    parent = store.get_image(JOB_ID, image_id)
    store.put_labels(parent["key"], [{"name": "Bottle", "confidence": 96.0, "instances": []}])
    token = token_for(OWNER)
    headers = {"Authorization": token, "Content-Type": "application/json"}
    before = client.http.get(f"/jobs/{JOB_ID}?limit=0", headers=headers).json_body["cost"]
    assert "regenerations" not in before
    path = f"/jobs/{JOB_ID}/images/{image_id}/regenerate"
    linked_id = client.http.post(path, headers=headers, body=json.dumps({"seed": 778})).json_body["jobId"]
    _run_job(store, linked_id)

    linked = client.http.get(f"/jobs/{linked_id}?limit=0", headers=headers).json_body["cost"]
    after = client.http.get(f"/jobs/{JOB_ID}?limit=0", headers=headers).json_body["cost"]
    assert linked["actualUsd"] > 0
    # the parent's own cost is unchanged; the regeneration is a separate figure, the linked job's cost
    assert after["actualUsd"] == before["actualUsd"] and after["modelCalls"] == before["modelCalls"]
    assert after["regenerations"] == 1 and after["regeneratedUsd"] == pytest.approx(linked["actualUsd"])
    assert costs.cost_words(after, finished=True).endswith(f"· plus ${linked['actualUsd']:.2f} in 1 regeneration")
    report = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key(OWNER, JOB_ID, "json"))["Body"].read()
    )
    assert report["cost"]["regenerations"] == 1 and report["cost"]["regeneratedUsd"] == after["regeneratedUsd"]

    # the workflow step retried (Lambda runs it again): the variant and its cost are added once
    added = store.get_image(JOB_ID, image_id)["outputs"][-1]
    service = VariantService(store, boto3.client("s3"), BUCKET)
    again = service.add_regenerated(OWNER, {"jobId": JOB_ID, "imageId": image_id}, added, linked_id, None, 0.5)
    assert again == added["variant"]
    assert client.http.get(f"/jobs/{JOB_ID}?limit=0", headers=headers).json_body["cost"] == after
