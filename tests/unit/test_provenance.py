"""Provenance in every delivered file (issue #30): IPTC/XMP, and C2PA Content Credentials read back
with the C2PA library itself (chalicelib/delivery/provenance.py, chalicelib/delivery/provenance_sign.py)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from chalicelib.delivery import provenance, provenance_sign

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def _original(*, gps: bool = True) -> bytes:
    img = Image.new("RGB", (80, 60), (200, 30, 30))
    exif = img.getexif()
    exif[0x013B] = "Ann Artist"
    exif[0x8298] = "(c) ACME Shoes 2026"
    if gps:
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "W", 4: (2.0, 21.0, 0.0)}
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def _result(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (80, 60), (20, 180, 40, 255)[: len(mode)]).save(
        buf, {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt]
    )
    return buf.getvalue()


def _record(original: bytes, background: str = "prompt", **changes: object) -> provenance.Record:
    values: dict[str, object] = dict(
        job_id="job-1",
        image_id="img-1",
        variant=1,
        model="stability-inpaint",
        model_ids=("stability.stable-image-remove-background-v1:0", "stability.stable-image-inpaint-v1:0"),
        seed=4242,
        background=background,
        mode="PRECISE",
        blend=1.0,
        original=original,
        original_name="shoe.jpg",
        scorecard={
            "outcome": "PASS",
            "checks": [{"check": "subjectFidelity", "outcome": "PASS", "reason": "subject PSNR 51.2 dB"}],
        },
        size=(80, 60),
        resized=True,
        produced_by=None,
    )
    values.update(changes)
    return provenance.record_for(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("background", "term"),
    [
        ("prompt", "compositeWithTrainedAlgorithmicMedia"),
        ("scene", "compositeWithTrainedAlgorithmicMedia"),
        ("color", "composite"),
        ("image", "composite"),
        ("transparent", "algorithmicallyEnhanced"),
    ],
)
def test_digital_source_type_follows_the_recipe(background: str, term: str) -> None:
    assert provenance.source_type_for(background).uri == IPTC + term


def _pillow_xmp(data: bytes) -> str:
    """The XMP as Pillow finds it in the container (an independent reader of the segment/chunk)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        raw = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    assert raw, f"Pillow finds no XMP in this {img.format}"
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("jpeg", "RGB"), ("png", "RGB"), ("png", "RGBA"), ("webp", "RGB"), ("webp", "RGBA")]
)
def test_xmp_in_every_format_pixels_untouched(fmt: str, mode: str) -> None:
    original = _original()
    plain = _result(fmt, mode)
    record = _record(original)
    out = provenance.embed_xmp(
        plain, fmt, provenance.xmp_packet(record, provenance.original_rights(original), keep_location=False), (80, 60)
    )
    fields = provenance.xmp_fields(_pillow_xmp(out))
    assert fields["Iptc4xmpExt:DigitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert fields["backdrop:JobId"] == "job-1" and fields["backdrop:ImageId"] == "img-1"
    assert fields["backdrop:Model"] == "stability-inpaint"
    assert "stability.stable-image-inpaint-v1:0" in fields["Iptc4xmpExt:AISystemUsed"]
    assert fields["dc:creator"] == "Ann Artist" and fields["dc:rights"] == "(c) ACME Shoes 2026"
    # GPS is dropped by default: a published product photo should not say where it was taken
    assert "exif:GPSLatitude" not in fields
    with Image.open(io.BytesIO(out)) as a, Image.open(io.BytesIO(plain)) as b:
        assert a.mode == b.mode and a.tobytes() == b.tobytes()


def test_location_kept_only_when_the_job_asks() -> None:
    original = _original()
    rights = provenance.original_rights(original)
    fields = provenance.xmp_fields(provenance.xmp_packet(_record(original), rights, keep_location=True).decode())
    assert fields["exif:GPSLatitude"] == "48,51.500000N"
    assert fields["exif:GPSLongitude"] == "2,21.000000W"
    assert provenance.original_rights(_original(gps=False)).gps is None


def test_hostile_rights_text_is_escaped() -> None:
    rights = provenance.Rights(creator='<x a="1">&amp;</x>', copyright="]]><!-- -->")
    packet = provenance.xmp_packet(_record(_original()), rights, keep_location=False).decode()
    fields = provenance.xmp_fields(packet)
    assert fields["dc:creator"] == '<x a="1">&amp;</x>' and fields["dc:rights"] == "]]><!-- -->"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_c2pa_round_trip_in_every_format(fmt: str) -> None:
    original = _original()
    record = _record(original)
    out = provenance_sign.deliver(
        _result(fmt),
        fmt,
        record,
        original,
        credentials=True,
        keep_location=False,
        identity=provenance_sign.test_identity,
    )
    creds = provenance_sign.read(out)
    assert creds is not None
    # locally: the signature is valid, the test signer is on no trust list, nothing else failed
    assert creds.state == "Valid" and creds.untrusted and not creds.tampered
    assert "signingCredential.untrusted" in creds.failures
    assert "NOT TRUSTED" in creds.signer
    assert creds.result["original"]["sha256"] == provenance.sha256_hex(original)
    assert creds.result["jobId"] == "job-1" and creds.result["seed"] == 4242
    assert creds.result["subjectUnchanged"] is True
    assert creds.result["fidelity"]["outcome"] == "PASS"
    words = [a.get("description", "") for a in creds.actions]
    assert any("background generated by model stability-inpaint with seed 4242" in w for w in words)
    assert any("subject composited back unchanged" in w for w in words)
    assert any(a.get("action") == "c2pa.resized" for a in creds.actions)
    generated = [a for a in creds.actions if a.get("digitalSourceType")]
    assert generated and generated[0]["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert creds.generator.startswith("Backdrop ")
    # the XMP is still there under the manifest, and the file still decodes
    assert provenance.xmp_fields(_pillow_xmp(out))["backdrop:OriginalSha256"] == provenance.sha256_hex(original)


def test_a_changed_file_fails_validation() -> None:
    original = _original()
    out = provenance_sign.deliver(
        _result("png"),
        "png",
        _record(original),
        original,
        credentials=True,
        keep_location=False,
        identity=provenance_sign.test_identity,
    )
    # change the image data (the IDAT chunk's first byte of compressed data) after signing
    at = out.index(b"IDAT") + 6
    changed = out[:at] + bytes([out[at] ^ 0x01]) + out[at + 1 :]
    creds = provenance_sign.read(changed)
    assert creds is not None and creds.tampered


def test_colour_background_says_no_generated_pixels() -> None:
    original = _original()
    out = provenance_sign.deliver(
        _result("jpeg"),
        "jpeg",
        _record(original, background="color", seed=None),
        original,
        credentials=True,
        keep_location=False,
        identity=provenance_sign.test_identity,
    )
    creds = provenance_sign.read(out)
    assert creds is not None
    assert not any("background generated" in a.get("description", "") for a in creds.actions)
    assert creds.result["digitalSourceType"] == IPTC + "composite"


def test_credentials_left_out_on_request_xmp_stays() -> None:
    original = _original()
    out = provenance_sign.deliver(
        _result("jpeg"),
        "jpeg",
        _record(original),
        original,
        credentials=False,
        keep_location=False,
        identity=lambda: pytest.fail("no signer is needed when the job asks for no credentials"),
    )
    assert provenance_sign.read(out) is None
    assert provenance.xmp_fields(_pillow_xmp(out))["backdrop:JobId"] == "job-1"


def test_subject_not_unchanged_when_blended_or_failed() -> None:
    original = _original()
    assert not _record(original, blend=0.5).subject_unchanged
    assert not _record(original, mode="DEFAULT").subject_unchanged
    failed = {"outcome": "FAIL", "checks": [{"check": "subjectFidelity", "outcome": "FAIL", "reason": "x"}]}
    assert not _record(original, scorecard=failed).subject_unchanged


def test_describe_says_it_in_words() -> None:
    original = _original()
    out = provenance_sign.deliver(
        _result("webp"),
        "webp",
        _record(original),
        original,
        credentials=True,
        keep_location=False,
        identity=provenance_sign.test_identity,
    )
    text = "\n".join(provenance_sign.describe(out))
    assert provenance.sha256_hex(original) in text
    assert "stability-inpaint" in text
    assert "subject unchanged" in text
    assert "NOT on a trust list" in text
    assert "compositeWithTrainedAlgorithmicMedia" in text


def test_the_job_options_parse_with_their_defaults() -> None:
    from chalicelib.core.errors import ValidationError
    from chalicelib.jobs.service import parse_job_request
    from chalicelib.models.base import settings_from_dict, settings_to_dict

    images = [{"imageRef": f"{'a' * 32}/{0:032x}.png", "labels": []}]
    _, settings, _ = parse_job_request({"prompt": "x", "images": images})
    assert settings.content_credentials is True and settings.keep_location is False
    _, settings, _ = parse_job_request(
        {"prompt": "x", "images": images, "contentCredentials": False, "keepLocation": True}
    )
    assert settings.content_credentials is False and settings.keep_location is True
    # stored on the job and read back by the workflow
    assert settings_from_dict(settings_to_dict(settings)) == settings
    with pytest.raises(ValidationError) as refused:
        parse_job_request({"prompt": "x", "images": images, "contentCredentials": "no"})
    assert "contentCredentials" in json.dumps(refused.value.details)
