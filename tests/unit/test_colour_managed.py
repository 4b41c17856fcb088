"""Originals with an ICC profile (issue 27, point 3): their colours as displayed are kept.

The profiles are written by tests/iccprofiles.py from their published definitions (no profile file
is shipped). Every expectation is LittleCMS's own conversion of the original, called here through
ImageCms directly, never Backdrop's code."""

from __future__ import annotations

import io

import iccprofiles
import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from chalicelib.imaging import images as imaging

SRGB = ImageCms.createProfile("sRGB")
GREEN, RED = (40, 190, 70), (200, 40, 50)


def _tagged(mode: str, colour: tuple[int, ...] | int, icc: bytes, fmt: str = "JPEG") -> bytes:
    img = Image.new(mode, (120, 90), colour)
    img.paste((0,) * len(colour) if isinstance(colour, tuple) else 0, (0, 0, 30, 30))
    buf = io.BytesIO()
    img.save(buf, fmt, icc_profile=icc, **({"quality": 98, "subsampling": 0} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _expected(data: bytes) -> np.ndarray:
    """The original as a colour-managed viewer shows it on an sRGB display: LittleCMS, directly."""
    img = Image.open(io.BytesIO(data))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
    return np.asarray(ImageCms.profileToProfile(img, profile, SRGB, outputMode="RGB"), dtype=np.int16)


CASES = {
    "Display P3": ("RGB", GREEN, iccprofiles.display_p3()),
    "Adobe RGB": ("RGB", GREEN, iccprofiles.adobe_rgb()),
    "CMYK": ("CMYK", (20, 200, 180, 10), iccprofiles.cmyk()),
    "grey": ("L", 140, iccprofiles.grey()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_tagged_original_is_decoded_to_srgb_as_displayed(name) -> None:
    mode, colour, icc = CASES[name]
    data = _tagged(mode, colour, icc)
    got = np.asarray(imaging.load_original(data), dtype=np.int16)
    expected = _expected(data)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1
    raw = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    # the numbers read as sRGB would show another colour: the conversion is not a no-op
    assert np.abs(raw - expected).max() >= 8, name
    # the result of such an original says it is sRGB
    assert imaging.source_format(data).icc_profile == imaging.SRGB_ICC


def test_an_untagged_or_srgb_original_is_left_as_it_is() -> None:
    plain = io.BytesIO()
    Image.new("RGB", (120, 90), GREEN).save(plain, "PNG")
    assert imaging.source_format(plain.getvalue()).icc_profile is None
    own_srgb = ImageCms.ImageCmsProfile(SRGB).tobytes()
    data = _tagged(
        "RGB", GREEN, iccprofiles.rgb_profile("my sRGB", iccprofiles.SRGB_PRIMARIES, iccprofiles._srgb_curve())
    )
    assert np.array_equal(
        np.asarray(imaging.load_original(data)), np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    )
    # an sRGB profile is kept as the original carried it (the pixels were not converted)
    assert imaging.source_format(data).icc_profile == Image.open(io.BytesIO(data)).info["icc_profile"]
    assert imaging.source_format(_tagged("RGB", GREEN, own_srgb)).icc_profile == own_srgb


def test_a_broken_profile_is_ignored_not_fatal() -> None:
    data = _tagged("RGB", GREEN, b"not a profile at all" * 10)
    assert imaging.load_original(data).getpixel((60, 60)) == Image.open(io.BytesIO(data)).convert("RGB").getpixel(
        (60, 60)
    )
    assert imaging.source_format(data).icc_profile is None


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_tags_the_file_with_the_profile_given(fmt) -> None:
    data = imaging.encode(Image.new("RGB", (64, 64), RED), fmt, icc_profile=imaging.SRGB_ICC)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile") == imaging.SRGB_ICC
    untagged = imaging.encode(Image.new("RGB", (64, 64), RED), fmt)
    assert not Image.open(io.BytesIO(untagged)).info.get("icc_profile")


def test_decode_delivered_applies_a_files_profile() -> None:
    data = _tagged("RGB", GREEN, iccprofiles.display_p3(), fmt="PNG")
    assert np.abs(np.asarray(imaging.decode_delivered(data), dtype=np.int16) - _expected(data)).max() <= 1


def test_jpeg_subsampling_asked_is_written() -> None:
    for subsampling in (0, 2):
        data = imaging.encode(Image.new("RGB", (64, 64), RED), "jpeg", jpeg_subsampling=subsampling)
        assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(data))) == subsampling


def test_a_turned_p3_photo_is_turned_and_converted() -> None:
    """EXIF orientation and the profile together: the profile survives the turn (exif_transpose
    keeps the image's info), so the pixels are converted as well as turned."""
    img = Image.new("RGB", (200, 100), GREEN)
    img.paste(RED, (0, 0, 100, 100))
    exif = Image.Exif()
    exif[imaging.EXIF_ORIENTATION_TAG] = 6  # turn 90° clockwise: the left (red) half goes on top
    buf = io.BytesIO()
    icc = iccprofiles.display_p3()
    img.save(buf, "PNG", icc_profile=icc, exif=exif)
    got = imaging.load_original(buf.getvalue())
    assert got.size == (100, 200)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    expected_green = ImageCms.profileToProfile(Image.new("RGB", (1, 1), GREEN), profile, SRGB).getpixel((0, 0))
    expected_red = ImageCms.profileToProfile(Image.new("RGB", (1, 1), RED), profile, SRGB).getpixel((0, 0))
    assert max(abs(a - b) for a, b in zip(got.getpixel((50, 160)), expected_green, strict=True)) <= 1
    assert max(abs(a - b) for a, b in zip(got.getpixel((50, 40)), expected_red, strict=True)) <= 1


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_a_png_result_decodes_to_exactly_its_pixels(mode) -> None:
    """Finalize scores a PNG result's pixels without decoding the file: that holds only while the
    PNG gives them back exactly, with the sRGB tag it carries."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (48, 64, len(mode)), dtype=np.uint8)
    result = Image.fromarray(pixels, mode)
    data = imaging.encode(result, "png", text={"k": "v"}, icc_profile=imaging.SRGB_ICC)
    assert np.array_equal(np.asarray(imaging.decode_delivered(data)), pixels)
