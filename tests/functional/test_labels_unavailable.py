"""Images label detection cannot read get no labels and a reason, never an error: POST /labels
answers 200 for every image, and the image can still be submitted and processed."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from builders import BUCKET, TABLE
from chalice.test import Client
from PIL import Image

from chalicelib.core import contracts

OWNER = "owner-labels"


def _image(size: tuple[int, int], fmt: str = "PNG", **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _uploaded(data: bytes, ext: str = "png") -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), ext)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(OWNER, ref), Body=data)
    return ref


def _labels(client: Client, token: str, refs: list[str]) -> Any:
    return client.http.post(
        "/labels",
        headers={"Authorization": token, "Content-Type": "application/json"},
        body=json.dumps({"imageRefs": refs}),
    )


def test_a_64_to_79_px_image_has_no_labels_and_says_why_and_can_still_be_submitted(
    client, token_for, rekognition
) -> None:
    small = _uploaded(_image((70, 64)))
    normal = _uploaded(_image((320, 240)))
    response = _labels(client, token_for(OWNER), [small, normal])
    assert response.status_code == 200, response.body
    body = response.json_body
    assert body["labels"][small] == [] and body["labels"][normal][0]["name"] == "Person"
    reason = body["unavailable"][small]
    assert reason["code"] == "LABELS_UNAVAILABLE"
    assert "70x64 px" in reason["message"] and "at least 80 px" in reason["message"]
    assert "can still be processed" in reason["message"]
    assert normal not in body["unavailable"]
    assert rekognition.calls == [contracts.upload_key(OWNER, normal)]  # never sent to Rekognition
    assert _labels(client, token_for(OWNER), [small]).json_body["unavailable"][small] == reason  # cached
    assert len(rekognition.calls) == 1
    job = {"prompt": "a beach", "images": [{"imageRef": small, "name": "tiny.png", "labels": []}]}
    submitted = client.http.post(
        "/jobs", headers={"Authorization": token_for(OWNER), "Content-Type": "application/json"}, body=json.dumps(job)
    )
    assert submitted.status_code == 202, submitted.body


@pytest.mark.parametrize(
    ("data", "ext", "words"),
    [
        (_image((320, 240), "WEBP"), "webp", "JPEG and PNG only"),
        (_image((10_400, 80)), "png", "at most 10,000 px per side"),
        (b"<html>not an image</html>", "png", "not a PNG, JPEG or WEBP"),
    ],
    ids=["webp", "wider-than-10000", "not-an-image"],
)
def test_other_images_label_detection_cannot_read_say_why(client, token_for, rekognition, data, ext, words) -> None:
    ref = _uploaded(data, ext)
    response = _labels(client, token_for(OWNER), [ref])
    assert response.status_code == 200, response.body
    assert response.json_body["labels"][ref] == []
    assert words in response.json_body["unavailable"][ref]["message"]
    assert rekognition.calls == []


def test_rekognition_refusing_an_image_is_a_reason_not_a_500(client, token_for, rekognition, monkeypatch) -> None:
    def refuse(Image: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # boto3's parameter name
        error = {"Error": {"Code": "InvalidParameterException", "Message": "Request has invalid parameters"}}
        raise ClientError(error, "DetectLabels")

    monkeypatch.setattr(rekognition, "detect_labels", refuse)
    ref = _uploaded(_image((320, 240)))
    response = _labels(client, token_for(OWNER), [ref])
    assert response.status_code == 200, response.body
    message = response.json_body["unavailable"][ref]["message"]
    assert "Rekognition refused this image" in message and "[InvalidParameterException]" in message


def test_a_header_too_long_to_probe_is_left_to_rekognition(client, token_for, rekognition) -> None:
    # a JPEG whose ICC profile alone is larger than the header read: the size cannot be told from it
    big_header = _image((320, 240), "JPEG", icc_profile=bytes(400_000))
    ref = _uploaded(big_header, "jpg")
    response = _labels(client, token_for(OWNER), [ref])
    assert response.status_code == 200
    assert response.json_body["labels"][ref][0]["name"] == "Person" and response.json_body["unavailable"] == {}
    assert rekognition.calls == [contracts.upload_key(OWNER, ref)]


def test_the_upload_event_caches_the_reason_instead_of_failing(client, rekognition, event) -> None:
    key = contracts.upload_key(OWNER, _uploaded(_image((79, 200))))
    landed = event("s3-object-created")
    landed["detail"]["object"]["key"] = key
    client.lambda_.invoke("detect_labels", landed)  # raises (and Lambda would retry) if it failed
    item = (
        boto3.resource("dynamodb")
        .Table(TABLE)
        .get_item(Key={"pk": contracts.labels_pk(key), "sk": contracts.LABELS_SK})["Item"]
    )
    assert json.loads(item["labels"]) == [] and "79x200 px" in json.loads(item["unavailable"])["message"]
    assert rekognition.calls == []
