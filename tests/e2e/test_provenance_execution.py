"""Every delivered file says what made it (issue #30), end to end on moto's Step Functions interpreter.

Each output of an executed batch is read back with the C2PA library (chalicelib.delivery.provenance_sign.read)
and Pillow's XMP reader, and what the file claims is checked against the job's own record: the
original's hash (of the object in S3), the model and seed, the recipe's IPTC digital source type,
the scorecard's fidelity verdict. Locally the signature is valid and the test signer untrusted.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import boto3
import pytest
from builders import SCENE_REGION
from harness import upload
from PIL import Image

from chalicelib.core import contracts
from chalicelib.delivery import provenance, provenance_sign
from chalicelib.delivery.report import Reporter

pytestmark = pytest.mark.slow
BUCKET = "backdrop-test-bucket"
OWNER = "user-a"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def _get(key: str) -> bytes:
    return bytes(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _xmp(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        raw = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    assert raw, "no XMP in the delivered file"
    return provenance.xmp_fields(raw.decode() if isinstance(raw, bytes) else str(raw))


def _check_file(
    image: dict[str, Any], output: dict[str, Any], original: bytes, view: dict[str, Any], term: str
) -> None:
    data = _get(output["key"])
    fields = _xmp(data)
    assert fields["Iptc4xmpExt:DigitalSourceType"] == IPTC + term
    assert fields["backdrop:JobId"] == view["jobId"] and fields["backdrop:ImageId"] == image["imageId"]
    assert fields["backdrop:Model"] == view["model"]
    creds = provenance_sign.read(data)
    assert creds is not None, f"{output['key']} carries no Content Credentials"
    assert creds.state == "Valid" and creds.untrusted and not creds.tampered, creds.failures
    claims = creds.result
    assert claims["original"]["sha256"] == hashlib.sha256(original).hexdigest()
    assert claims["original"]["name"] == image["name"]
    assert claims["jobId"] == view["jobId"] and claims["imageId"] == image["imageId"]
    assert claims["model"] == view["model"]
    assert claims["fidelity"]["outcome"] == next(
        c["outcome"] for c in output["quality"]["checks"] if c["check"] == "subjectFidelity"
    )
    assert claims["digitalSourceType"] == IPTC + term
    if "seed" in output:
        assert claims["seed"] == output["seed"]
    assert output["contentCredentials"] is True
    words = "\n".join(provenance_sign.describe(data))
    assert hashlib.sha256(original).hexdigest() in words and view["model"] in words


def test_every_output_format_carries_xmp_and_verified_credentials(run_job, photo) -> None:
    originals = {"a.png": photo(480, 320, "PNG"), "b.jpg": photo(400, 300, "JPEG")}
    images = [
        {"imageRef": upload(OWNER, n, d, n.rsplit(".", 1)[1]), "name": n, "labels": ["Product"]}
        for n, d in originals.items()
    ]
    _, view = run_job(OWNER, {"prompt": "a marble table", "seed": 7, "images": images})
    assert view["status"] == "COMPLETED", json.dumps(view)[:2000]
    formats = set()
    for image in view["images"]:
        for output in image["outputs"]:
            formats.add(output["key"].rsplit(".", 1)[1])
            _check_file(image, output, originals[image["name"]], view, "compositeWithTrainedAlgorithmicMedia")
            creds = provenance_sign.read(_get(output["key"]))
            assert creds is not None and creds.result["subjectUnchanged"] is (
                creds.result["fidelity"]["outcome"] == "PASS"
            )
            assert any(f"seed {output['seed']}" in a.get("description", "") for a in creds.actions)
    assert formats == {"png", "jpg"}

    # WebP, a colour background (no generated pixels) and a transparent cut-out in one job
    originals2 = {"c.png": photo(480, 320, "PNG"), "d.png": photo(480, 320, "PNG")}
    images2 = [{"imageRef": upload(OWNER, n, d, "png"), "name": n} for n, d in originals2.items()]
    images2[1]["background"] = {"source": "transparent"}
    body = {"background": {"source": "color", "color": "#FFFFFF"}, "outputFormat": "webp", "images": images2}
    _, view2 = run_job(OWNER, body)
    assert view2["status"] == "COMPLETED"
    terms = {"c.png": "composite", "d.png": "algorithmicallyEnhanced"}
    for image in view2["images"]:
        (output,) = image["outputs"]
        assert output["key"].endswith(".webp")
        _check_file(image, output, originals2[image["name"]], view2, terms[image["name"]])


def test_a_job_can_leave_credentials_out_and_says_so(run_job, photo) -> None:
    original = photo(480, 320, "PNG")
    images = [{"imageRef": upload(OWNER, "e.png", original, "png"), "name": "e.png"}]
    body = {"background": {"source": "color", "color": "#FFFFFF"}, "contentCredentials": False, "images": images}
    _, view = run_job(OWNER, body)
    (image,) = view["images"]
    (output,) = image["outputs"]
    data = _get(output["key"])
    assert provenance_sign.read(data) is None
    assert output["contentCredentials"] is False
    # the XMP (digital source type, ids) stays: only the signed manifest is left out
    assert _xmp(data)["backdrop:JobId"] == view["jobId"]
    report = json.loads(_get(contracts.report_key(OWNER, view["jobId"], "json")))
    assert report["contentCredentials"] == {
        "requested": False,
        "outputs": 1,
        "withCredentials": 0,
        "keepLocation": False,
    }
    _, email = Reporter.summary(report, BUCKET, OWNER)
    assert "Content Credentials: none, as the job asked" in email
    csv_text = _get(contracts.report_key(OWNER, view["jobId"], "csv")).decode("utf-8-sig")
    assert "contentCredentials" in csv_text.splitlines()[0] and ",False," in csv_text.splitlines()[1]


def test_the_report_and_email_say_the_results_carry_credentials(run_job, photo) -> None:
    images = [{"imageRef": upload(OWNER, "f.png", photo(480, 320, "PNG"), "png"), "name": "f.png"}]
    _, view = run_job(OWNER, {"background": {"source": "color", "color": "#000000"}, "images": images})
    report = json.loads(_get(contracts.report_key(OWNER, view["jobId"], "json")))
    assert report["contentCredentials"]["withCredentials"] == 1 == report["contentCredentials"]["outputs"]
    _, email = Reporter.summary(report, BUCKET, OWNER)
    assert "Content Credentials: all 1 results carry a signed C2PA manifest" in email


def test_a_signing_failure_delivers_the_image_without_credentials_and_says_so(run_job, photo, monkeypatch) -> None:
    def refuse(*_: Any, **__: Any) -> bytes:
        raise ConnectionError("KMS did not answer")

    monkeypatch.setattr(provenance_sign, "sign", refuse)
    images = [{"imageRef": upload(OWNER, "g.png", photo(480, 320, "PNG"), "png"), "name": "g.png"}]
    _, view = run_job(OWNER, {"background": {"source": "color", "color": "#FFFFFF"}, "images": images})
    (image,) = view["images"]
    assert image["status"] == "SUCCEEDED"
    (output,) = image["outputs"]
    assert output["contentCredentials"] is False and "KMS did not answer" in output["credentialsError"]
    data = _get(output["key"])
    assert provenance_sign.read(data) is None and _xmp(data)["backdrop:JobId"] == view["jobId"]
    report = json.loads(_get(contracts.report_key(OWNER, view["jobId"], "json")))
    _, email = Reporter.summary(report, BUCKET, OWNER)
    assert "Content Credentials: 0 of 1 results carry a signed C2PA manifest" in email


@pytest.mark.region(SCENE_REGION)
def test_a_scene_result_names_the_scene_model(run_job, photo) -> None:
    original = photo(480, 320, "PNG")
    images = [{"imageRef": upload(OWNER, "s.png", original, "png"), "name": "s.png"}]
    body = {"background": {"source": "scene", "prompt": "a pale oak table"}, "seed": 7, "images": images}
    _, view = run_job(OWNER, body)
    (image,) = view["images"]
    (output,) = image["outputs"]
    _check_file(image, output, original, view, "compositeWithTrainedAlgorithmicMedia")
    data = _get(output["key"])
    # the batch's scene was generated by the text-to-image model: the file says so
    assert "stability.stable-image-core-v1:1" in _xmp(data)["Iptc4xmpExt:AISystemUsed"]
    creds = provenance_sign.read(data)
    assert creds is not None and "stability.stable-image-core-v1:1" in creds.result["modelIds"]
