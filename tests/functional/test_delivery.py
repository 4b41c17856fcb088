"""What is delivered is what is measured (issue 27, point 3): Finalize scores the file as the user
downloads it, and an original with a colour profile comes back looking the same.

The checks here decode the delivered file themselves and convert colours with LittleCMS
(ImageCms) directly: nothing of Backdrop's scoring or colour code is reused to judge it."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import boto3
import iccprofiles
import numpy as np
from PIL import Image, ImageCms, ImageDraw, JpegImagePlugin

from backend.local.bedrock_standin import StandInBedrock
from chalicelib.core import contracts
from chalicelib.store.jobs import JobStore, NewImage
from chalicelib.workflow.steps import Steps

BUCKET = "backdrop-test-bucket"
OWNER = "owner-1"
JOB_ID = "20261208T010000Z-0123456789ab"
SRGB = ImageCms.createProfile("sRGB")
SIZE = (480, 360)
# the product: an ellipse; its interior, well inside the soft edge, is where fidelity is judged
ELLIPSE = (0.3, 0.25, 0.7, 0.85)
COLOUR_GRAIN = 30


def _product_photo(icc: bytes | None, *, grain: int, colour_grain: int = 0, subsampling: int = 2) -> bytes:
    """A green, textured product on a light backdrop, saved as a camera would (JPEG, 4:2:0).
    `colour_grain`: pixel-to-pixel colour variation at nearly constant brightness (a woven fabric's
    threads), which a 4:2:0 grid averages over 2x2 pixels."""
    rng = np.random.default_rng(5)
    width, height = SIZE
    img = Image.new("RGB", SIZE, (232, 230, 226))
    x0, y0, x1, y1 = ELLIPSE
    ImageDraw.Draw(img).ellipse((width * x0, height * y0, width * x1, height * y1), fill=(40, 170, 70))
    pixels = np.asarray(img, dtype=np.int16) + rng.integers(-grain, grain + 1, (height, width, 3))
    pixels += rng.integers(-colour_grain, colour_grain + 1, (height, width, 1)) * np.array([1, -1, 1], dtype=np.int16)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, subsampling=subsampling, **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


def _interior(share: float = 0.7) -> np.ndarray:
    """The inner `share` of the ellipse (by radius): solid product, away from the soft edge."""
    width, height = SIZE
    ys, xs = np.mgrid[0:height, 0:width]
    x0, y0, x1, y1 = ELLIPSE
    cx, cy = width * (x0 + x1) / 2, height * (y0 + y1) / 2
    rx, ry = width * (x1 - x0) / 2 * share, height * (y1 - y0) / 2 * share
    inside: np.ndarray = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    return inside


def _as_displayed(data: bytes) -> np.ndarray:
    """The file's pixels as a colour-managed viewer shows them on an sRGB display."""
    img = Image.open(io.BytesIO(data))
    icc = img.info.get("icc_profile")
    if icc:
        img = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)), SRGB, outputMode="RGB")
    return np.asarray(img.convert("RGB"), dtype=np.float64)


def _run(store: JobStore, data: bytes) -> tuple[dict[str, Any], bytes]:
    s3 = boto3.client("s3")
    settings = {"model": "stability-inpaint", "prompt": "a beach", "mode": "PRECISE", "seed": 9, "variants": 1}
    image_id = contracts.new_opaque_id()
    ref = contracts.image_ref_of(contracts.new_opaque_id(), image_id, "jpg")
    key = contracts.upload_key(OWNER, ref)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    store.put_job(
        job_id=JOB_ID,
        owner=OWNER,
        model="stability-inpaint",
        settings=settings,
        images=[NewImage(image_id=image_id, image_ref=ref, key=key, name="p.jpg")],
        created_at="2026-12-08T01:00:00Z",
    )
    assert store.mark_running(JOB_ID, "arn:aws:states:us-east-1:123456789012:execution:backdrop-test:x")
    event = {
        "jobId": JOB_ID,
        "owner": OWNER,
        "bucket": BUCKET,
        "settings": settings,
        "image": {"imageId": image_id, "key": key, "name": "p.jpg"},
    }
    steps, standin = Steps(s3, store), StandInBedrock()
    for step in (steps.prepare, steps.build_mask):
        call = step(event)["call"]
        body = json.loads(
            s3.get_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["requestUri"])[1])["Body"].read()
        )
        answer = json.dumps(standin(call["modelId"], body)).encode()
        s3.put_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["responseUri"])[1], Body=answer)
    steps.finalize(event)
    item = next(i for i in store.images(JOB_ID) if i["imageId"] == image_id)
    output = item["outputs"][0]
    return output, s3.get_object(Bucket=BUCKET, Key=output["key"])["Body"].read()


def _fidelity(output: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in output["quality"]["checks"] if c["check"] == "subjectFidelity")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0**2 / float(np.mean((a - b) ** 2)))


def _bracket(original: bytes, delivered: bytes) -> tuple[float, float]:
    """The delivered file's PSNR over the whole product (its edge included: the lowest a figure
    of the product can be) and over its interior (the highest): the card's figure lies between."""
    shown_original, shown_result = _as_displayed(original), _as_displayed(delivered)
    whole, inner = _interior(1.0), _interior(0.7)
    return _psnr(shown_result[whole], shown_original[whole]), _psnr(shown_result[inner], shown_original[inner])


def test_a_p3_jpeg_comes_back_looking_the_same_and_its_card_is_the_files(store) -> None:
    original = _product_photo(iccprofiles.display_p3(), grain=6)
    output, delivered = _run(store, original)
    assert output["key"].endswith(".jpg")
    inside = _interior()
    shown_original, shown_result = _as_displayed(original)[inside], _as_displayed(delivered)[inside]
    # as displayed, the product is the original's (within a quality-95 JPEG's loss) ...
    assert np.abs(shown_result.mean(axis=0) - shown_original.mean(axis=0)).max() < 1.0
    independent = _psnr(shown_result, shown_original)
    assert independent > 38
    # ... while the same numbers shown as sRGB (no profile, as before) would shift the green
    raw = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.float64)[inside]
    assert np.abs(raw.mean(axis=0) - shown_original.mean(axis=0)).max() > 10
    # the card says what the file holds: not "identical", and the PSNR measured on it
    fidelity = _fidelity(output)
    assert fidelity["identical"] is False and fidelity["psnrDb"] != "Infinity"
    low, high = _bracket(original, delivered)
    assert low <= float(fidelity["psnrDb"]) <= high, (fidelity, low, high)


def test_a_camera_jpeg_is_delivered_at_full_colour_resolution_and_keeps_its_pass(store) -> None:
    """A 4:2:0 original whose product has fine colour detail: at 4:2:0 the delivered file's card
    would be WARN (a re-roll cannot change it); at 4:4:4 it is PASS, and says the file's figure."""
    original = _product_photo(None, grain=4, colour_grain=COLOUR_GRAIN)
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(original))) == 2
    output, delivered = _run(store, original)
    fidelity = _fidelity(output)
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(delivered))) == 0
    assert fidelity["outcome"] == "PASS", fidelity
    low, high = _bracket(original, delivered)
    assert low <= float(fidelity["psnrDb"]) <= high, (fidelity, low, high)


def test_a_jpegs_card_is_the_files_without_decoding_it_whole(store) -> None:
    """Issue 28 point 2: the product is measured through the encoder on a sample of its blocks
    (chalicelib/imaging/fidelity.py); the figure still lies where the whole file's does."""
    from unittest import mock

    from chalicelib.imaging import images

    original = _product_photo(iccprofiles.display_p3(), grain=6)
    decode, sizes = images.decode_delivered, []

    def decoded(data: bytes) -> Image.Image:
        image = decode(data)
        sizes.append(image.size)
        return image

    with mock.patch.object(images, "decode_delivered", side_effect=decoded):
        output, delivered = _run(store, original)
    assert sizes and SIZE not in sizes  # only the sampled blocks' mosaic
    fidelity = _fidelity(output)
    low, high = _bracket(original, delivered)
    assert low <= float(fidelity["psnrDb"]) <= high, (fidelity, low, high)
