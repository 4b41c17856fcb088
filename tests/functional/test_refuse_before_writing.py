"""Bodies the published schema refuses are refused by the API with the field named, before anything
is written (chalicelib/catalogue/schemas.py): out-of-range settings, blank labels, a list or an object where
a content type or a review decision belongs, an archive request that is not a JSON object.

Each of these was accepted, or answered 500, before the request bodies were checked against the
models. Through Chalice's test client on moto; "nothing written" compares every S3 key and every
table item before and after the request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from chalice.test import Client

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, JobStatus
from chalicelib.store.jobs import NewImage

BUCKET = "backdrop-test-bucket"
TABLE = "backdrop-test-jobs"
OWNER = "owner-refuse"
JOB_ID = "20261124T120000Z-0123456789ab"
IMAGE_ID = "0" * 32


@pytest.fixture
def client(resources: dict[str, Any], rekognition: Any) -> Iterator[Client]:
    with Client(backdrop_app.app, stage_name="dev") as test_client:
        yield test_client


def _written() -> tuple[list[str], list[dict[str, Any]]]:
    """Every S3 key and every table item: what a refused request must leave as it was."""
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])
    items = boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
    return sorted(o["Key"] for o in listed), sorted(items, key=lambda i: json.dumps(i, sort_keys=True, default=str))


def _post(client: Client, path: str, token: str, body: Any) -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.http.post(path, headers={"Authorization": token, "Content-Type": "application/json"}, body=raw)


def _uploaded(photo: Any) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(OWNER, ref), Body=photo())
    return ref


def _refused(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.body
    body = response.json_body
    assert set(body) == {"code", "message", "details"}, body  # the one error shape
    assert field in {d.get("field") for d in body["details"]}, body
    return body


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        # an intersection over union is a fraction: 7 can never be reached, so every image would WARN
        ({"qualityThresholds": {"boxMinOverlap": 7}}, "qualityThresholds.boxMinOverlap", "at most 1"),
        # Rekognition's confidence is a percentage
        ({"qualityThresholds": {"labelMinConfidence": 101}}, "qualityThresholds.labelMinConfidence", "at most 100"),
        # a blank label was dropped without a word; the document always refused it
        ({"labels": [""]}, "images[0].labels[0]", "must not be empty or blank"),
        ({"labels": ["Person", "   "]}, "images[0].labels[1]", "must not be empty or blank"),
    ],
)
def test_a_job_the_schema_refuses_is_refused_naming_the_field_and_nothing_is_written(
    client, token_for, photo, settings, field, words
) -> None:
    ref = _uploaded(photo)
    image: dict[str, Any] = {"imageRef": ref, "name": "a.png", "labels": settings.pop("labels", ["Person"])}
    before = _written()
    response = _post(client, "/jobs", token_for(OWNER), {"prompt": "a beach", "images": [image], **settings})
    body = _refused(response, field)
    assert body["code"] == "VALIDATION_FAILED" and words in body["message"], body
    assert _written() == before


def test_every_schema_problem_of_a_job_is_named_at_once(client, token_for, photo) -> None:
    ref = _uploaded(photo)
    body = {
        "prompt": "a beach",
        "qualityThresholds": {"boxMinOverlap": 7},
        "placement": {"fill": 60, "anchor": "middle"},
        "background": {"source": "color", "color": "#fff", "prompt": "x"},
        "images": [{"imageRef": ref, "labels": [""]}],
    }
    answer = _refused(_post(client, "/jobs", token_for(OWNER), body), "qualityThresholds.boxMinOverlap")
    fields = {d["field"] for d in answer["details"]}
    assert {"placement.anchor", "background.prompt", "images[0].labels[0]"} <= fields, fields
    codes = {d["field"]: d.get("code") for d in answer["details"]}
    assert codes["placement.anchor"] == "PLACEMENT_INVALID" and codes["background.prompt"] == "BACKGROUND_INVALID"


@pytest.mark.parametrize("content_type", [["image/png"], {"type": "image/png"}])
def test_an_upload_whose_content_type_is_a_list_or_an_object_is_a_400_not_a_500(
    client, token_for, content_type
) -> None:
    before = _written()
    files = [{"name": "a.png", "contentType": content_type, "size": 100}]
    response = _post(client, "/uploads", token_for(OWNER), {"files": files})
    assert response.status_code == 400, response.body
    (rejected,) = response.json_body["details"]
    assert rejected["index"] == 0 and "content type" in rejected["message"], rejected
    assert _written() == before


def _waiting_job(store: Any) -> None:
    """A job under review: its one image SUCCEEDED, the owner's decisions awaited."""
    ref = contracts.image_ref_of("a" * 32, IMAGE_ID, "png")
    store.put_job(
        job_id=JOB_ID,
        owner=OWNER,
        model="stability-inpaint",
        settings={"prompt": "x", "reviewSeconds": 3600},
        images=[NewImage(IMAGE_ID, ref, contracts.upload_key(OWNER, ref), "a.png", (), ())],
    )
    store.set_image_status(JOB_ID, IMAGE_ID, ImageStatus.SUCCEEDED, outputs=[])
    deadline = datetime.now(UTC) + timedelta(hours=2)
    store.open_review(JOB_ID, "token-1", deadline.replace(microsecond=0).isoformat().replace("+00:00", "Z"))


@pytest.mark.parametrize("decision", [["REJECTED"], {"decision": "REJECTED"}])
def test_a_review_decision_that_is_a_list_or_an_object_is_a_400_not_a_500(client, token_for, store, decision) -> None:
    _waiting_job(store)
    before = _written()
    response = _post(client, f"/jobs/{JOB_ID}/review", token_for(OWNER), {"decisions": {IMAGE_ID: decision}})
    answer = _refused(response, f"decisions.{IMAGE_ID}")
    assert "APPROVED or REJECTED" in answer["message"], answer
    assert _written() == before
    assert "reviewDecision" not in store.images(JOB_ID)[0]
    # a real decision still goes through
    ok = _post(client, f"/jobs/{JOB_ID}/review", token_for(OWNER), {"decisions": {IMAGE_ID: "REJECTED"}})
    assert ok.status_code == 200, ok.body


def _finished_job(store: Any) -> None:
    s3 = boto3.client("s3")
    ref = contracts.image_ref_of("a" * 32, IMAGE_ID, "jpg")
    store.put_job(
        job_id=JOB_ID,
        owner=OWNER,
        model="stability-inpaint",
        settings={"prompt": "x"},
        images=[NewImage(IMAGE_ID, ref, contracts.upload_key(OWNER, ref), "a.jpg", (), ())],
    )
    key = contracts.result_key(OWNER, JOB_ID, IMAGE_ID, 1, "jpeg")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"result")
    store.set_image_status(JOB_ID, IMAGE_ID, ImageStatus.SUCCEEDED, outputs=[{"key": key, "variant": 1}])
    counts = {s.value: 0 for s in ImageStatus} | {"SUCCEEDED": 1}
    store.finish_job(JOB_ID, JobStatus.COMPLETED, counts, {}, contracts.utc_now_iso())


@pytest.mark.parametrize("body", ["[]", "null", '"originals"', '["originals"]'])
def test_an_archive_request_whose_body_is_not_an_object_is_refused_and_nothing_is_built(
    client, token_for, store, monkeypatch, body
) -> None:
    _finished_job(store)
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(backdrop_app, "start_background", started.append)
    before = _written()
    _refused(_post(client, f"/jobs/{JOB_ID}/archive", token_for(OWNER), body), "body")
    assert _written() == before and started == []
    # an empty body and {} still ask for the results' zip
    assert _post(client, f"/jobs/{JOB_ID}/archive", token_for(OWNER), "{}").status_code in (200, 202)
