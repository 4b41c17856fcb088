"""Photos as people have them (issue 26, point 7): HEIC/HEIF and AVIF are read, an MPO is read as
its first frame, a refusal names what the bytes really are. Every image is made here with Pillow
and pillow-heif themselves; nothing is downloaded."""

from __future__ import annotations

import io
import zipfile

import pillow_heif
import pytest
from PIL import Image

from chalicelib.core import contracts
from chalicelib.core.errors import ImageInvalid
from chalicelib.imaging import images as imaging

RED, BLUE = (220, 20, 30), (20, 30, 220)


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    """HEIF through pillow-heif's own API, which registers nothing with Pillow: the tests then
    prove that chalicelib.imaging.images registers the opener itself."""
    buf = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.from_pillow(img).save(buf, **kwargs)
    else:
        img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[imaging.EXIF_ORIENTATION_TAG] = orientation
    return exif.tobytes()


def _turned(fmt: str) -> bytes:
    """A 160x80 picture, red on its left half, stored with EXIF orientation 6 (turn 90° clockwise)."""
    img = Image.new("RGB", (160, 80), BLUE)
    img.paste(RED, (0, 0, 80, 80))
    return _save(img, fmt, exif=_exif(6), quality=90)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heic_and_avif_are_decoded_and_turned_by_their_orientation(fmt) -> None:
    data = _turned(fmt)
    assert data[4:12] == (b"ftypheic" if fmt == "HEIF" else b"ftypavif")  # the real container
    img = imaging.load_original(data)
    assert img.mode == "RGB" and img.size == (80, 160)  # upright: portrait
    # 90° clockwise: the stored left (red) half is now the top
    top, bottom = img.getpixel((40, 20)), img.getpixel((40, 140))
    assert top[0] > 150 and top[2] < 100, top
    assert bottom[2] > 150 and bottom[0] < 100, bottom
    width, height, orientation = imaging.probe(data)
    shown = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    assert shown == (80, 160)  # probe and decode agree on the upright size


def test_an_iphone_heic_named_jpg_is_read_by_its_bytes() -> None:
    heic = _save(Image.new("RGB", (120, 90), RED), "HEIF")
    # the name plays no part: imaging reads bytes; and a ref may be stored as .jpg
    assert imaging.format_of(heic) == "HEIF"
    assert imaging.load_original(heic).size == (120, 90)


@pytest.mark.parametrize(("fmt", "expected"), [("HEIF", "jpeg"), ("AVIF", "jpeg")])
def test_a_heic_or_avif_photo_comes_back_as_jpeg_by_default(fmt, expected) -> None:
    data = _save(Image.new("RGB", (120, 90), RED), fmt)
    assert imaging.default_output_format(imaging.source_format(data)) == contracts.OutputFormat(expected)


def test_an_avif_with_transparency_comes_back_as_png() -> None:
    data = _save(Image.new("RGBA", (120, 90), (*RED, 128)), "AVIF")
    assert imaging.default_output_format(imaging.source_format(data)) == contracts.OutputFormat.PNG


def test_an_mpo_is_read_as_its_first_frame() -> None:
    first, second = Image.new("RGB", (200, 100), RED), Image.new("RGB", (200, 100), BLUE)
    data = _save(first, "MPO", save_all=True, append_images=[second], quality=90)
    opened = Image.open(io.BytesIO(data))
    assert opened.format == "MPO" and opened.n_frames == 2  # really a multi-picture file
    assert imaging.probe(data) == (200, 100, 1)
    img = imaging.load_original(data)
    pixel = img.getpixel((100, 50))
    assert img.size == (200, 100) and pixel[0] > 150 and pixel[2] < 100, pixel  # the first (red) frame
    source = imaging.source_format(data)
    assert source.jpeg_subsampling is not None  # its chroma sampling is kept like a JPEG's
    assert imaging.default_output_format(source) == contracts.OutputFormat.JPEG


def test_an_animated_avif_or_gif_is_still_refused() -> None:
    frames = [Image.new("RGB", (100, 100), c) for c in (RED, BLUE)]
    gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageInvalid, match="GIF images are not supported"):
        imaging.probe(gif)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("photo.jpg", b"x")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "it is a PDF document"),
        (_zip(), "it is a ZIP archive"),
        (b"<html><body>hi</body></html>", "it is text or markup"),
        (b"\x00\x00\x00\x18ftypqt  \x00\x00\x02\x00qt  \x00\x00\x00\x00", "it is a QuickTime (.mov) video"),
        (b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00isomiso2mp41" + bytes(32), "it is an MP4 video"),
        (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic" + bytes(32), "it is a HEIC image"),  # header only
        (bytes(range(256)) * 2, "a file of an unknown format"),
    ],
    ids=["pdf", "zip", "html", "mov", "mp4", "broken-heic", "unknown"],
)
def test_a_refusal_names_what_the_bytes_really_are(data, words) -> None:
    with pytest.raises(ImageInvalid) as caught:
        imaging.load_original(data)
    message = str(caught.value)
    assert words in message, message
    assert "looks like text" not in message


def test_pillow_heif_is_loaded_only_when_a_heic_is_seen() -> None:
    """libheif (and its bundled 23 MB x265) is loaded on the first HEIF, not for a job of JPEGs."""
    import subprocess
    import sys

    script = (
        "import io, sys\n"
        "from PIL import Image\n"
        "from chalicelib.imaging import images as imaging\n"
        "buf = io.BytesIO(); Image.new('RGB', (100, 100)).save(buf, 'JPEG')\n"
        "imaging.load_original(buf.getvalue())\n"
        "assert 'pillow_heif' not in sys.modules, 'loaded for a JPEG'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
