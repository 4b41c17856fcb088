"""Photos as people have them, through the API and the workflow (issue 26, point 7): HEIC and AVIF
are accepted at POST /uploads, an iPhone HEIC saved as .jpg is labelled "HEIC" (not sent to
Rekognition, which reads JPEG and PNG only) and processed into a JPEG that is the right way up."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pillow_heif
from builders import BUCKET
from chalice.test import Client
from PIL import Image

from backend.local.bedrock_standin import StandInBedrock
from chalicelib.core import contracts
from chalicelib.imaging import images as imaging
from chalicelib.store.jobs import JobStore, NewImage
from chalicelib.workflow.steps import Steps

OWNER = "owner-photos"
JOB_ID = "20261207T230000Z-0123456789ab"


def _heic(png: bytes, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[imaging.EXIF_ORIENTATION_TAG] = orientation
    buf = io.BytesIO()
    # pillow-heif's own API: nothing is registered with Pillow, the app must do that itself
    pillow_heif.from_pillow(Image.open(io.BytesIO(png)).convert("RGB")).save(buf, exif=exif.tobytes(), quality=90)
    return buf.getvalue()


def _uploaded(data: bytes, ext: str) -> tuple[str, str]:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), ext)
    key = contracts.upload_key(OWNER, ref)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=data)
    return ref, key


def test_uploads_accept_heic_heif_and_avif(client: Client, token_for) -> None:
    files = [
        {"name": "IMG_0001.HEIC", "contentType": "image/heic", "size": 2_000_000},
        {"name": "scan.heif", "contentType": "image/heif", "size": 1_000},
        {"name": "web.avif", "contentType": "image/avif", "size": 1_000},
    ]
    response = client.http.post(
        "/uploads",
        headers={"Authorization": token_for(OWNER), "Content-Type": "application/json"},
        body=json.dumps({"files": files}),
    )
    assert response.status_code == 201, response.body
    body = response.json_body
    assert body["rejected"] == []
    refs = [u["imageRef"] for u in body["uploads"]]
    assert [r.rsplit(".", 1)[1] for r in refs] == ["heic", "heif", "avif"]
    assert all(contracts.IMAGE_REF_RE.match(r) for r in refs)  # and POST /jobs takes them as refs
    assert [u["fields"]["Content-Type"] for u in body["uploads"]] == ["image/heic", "image/heif", "image/avif"]


def test_a_heic_named_jpg_gets_no_labels_and_says_it_is_heic(client: Client, token_for, rekognition, photo) -> None:
    ref, _ = _uploaded(_heic(photo(320, 240, "PNG")), "jpg")
    response = client.http.post(
        "/labels",
        headers={"Authorization": token_for(OWNER), "Content-Type": "application/json"},
        body=json.dumps({"imageRefs": [ref]}),
    )
    assert response.status_code == 200, response.body
    assert response.json_body["labels"][ref] == []
    message = response.json_body["unavailable"][ref]["message"]
    assert "this is a HEIC/HEIF image" in message and "can still be processed" in message
    assert "looks like text" not in message
    assert rekognition.calls == []  # Rekognition would only refuse it


def test_an_iphone_heic_saved_as_jpg_is_processed_into_an_upright_jpeg(store: JobStore, photo) -> None:
    # stored 640x400 with EXIF orientation 6: the photo is 400x640 the right way up
    heic = _heic(photo(640, 400, "PNG"), orientation=6)
    ref, key = _uploaded(heic, "jpg")
    image_id = contracts.IMAGE_REF_RE.fullmatch(ref)["image_id"]  # type: ignore[index]
    settings = {"model": "stability-inpaint", "prompt": "a beach", "mode": "PRECISE", "seed": 9, "variants": 1}
    store.put_job(
        job_id=JOB_ID,
        owner=OWNER,
        model=settings["model"],
        settings=settings,
        images=[NewImage(image_id=image_id, image_ref=ref, key=key, name="IMG_0001.jpg")],
        created_at="2026-12-07T23:00:00Z",
    )
    assert store.mark_running(JOB_ID, "arn:aws:states:us-east-1:123456789012:execution:backdrop-test:x")
    event = {
        "jobId": JOB_ID,
        "owner": OWNER,
        "bucket": BUCKET,
        "settings": settings,
        "image": {"imageId": image_id, "key": key, "name": "IMG_0001.jpg"},
    }
    s3 = boto3.client("s3")
    steps, standin = Steps(s3, store), StandInBedrock()

    def answer(call: dict[str, Any]) -> None:
        body = json.loads(
            s3.get_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["requestUri"])[1])["Body"].read()
        )
        reply = json.dumps(standin(call["modelId"], body)).encode()
        s3.put_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["responseUri"])[1], Body=reply)

    answer(steps.prepare(event)["call"])
    answer(steps.build_mask(event)["call"])
    steps.finalize(event)
    (image,) = store.images(JOB_ID)
    assert image["status"] == "SUCCEEDED", image
    output_key = image["outputs"][0]["key"]
    assert output_key.endswith(".jpg")  # a HEIC photo in, a JPEG out (imaging.default_output_format)
    result = Image.open(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=output_key)["Body"].read()))
    assert result.format == "JPEG" and result.size == (400, 640)
