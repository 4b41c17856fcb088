"""Decoding, validation, geometry and masks."""

from __future__ import annotations

import io
import struct
import sys
import threading
import warnings
import zlib

import pytest
from PIL import Image, ImageDraw

from chalicelib.core import contracts
from chalicelib.core.errors import ImageInvalid, ImageTooLarge, ImageTooSmall
from chalicelib.imaging import images as imaging
from chalicelib.models.base import ImageLimits
from chalicelib.models.registry import get_model

STABILITY_INPAINT, TITAN_V2, NOVA_CANVAS = (
    get_model(k) for k in ("stability-inpaint", "titan-image-v2", "nova-canvas")
)
LIMITS = [STABILITY_INPAINT.image_limits, TITAN_V2.image_limits, NOVA_CANVAS.image_limits]


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but carries (almost) no pixel data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", ImageInvalid, "empty"),
        (b"<html><body>hi</body></html>", ImageInvalid, "not a PNG, JPEG or WEBP"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', ImageInvalid, "markup"),
        (b"\x00\x01\x02binary junk" * 10, ImageInvalid, "not a PNG"),
        (_png_header_only(100_000, 100_000), ImageTooLarge, "10,000,000,000"),
        (_save(Image.new("RGB", (40, 30)), "PNG"), ImageTooSmall, "40x30"),
    ],
    ids=["empty", "html", "svg", "binary", "bomb", "tiny"],
)
def test_bad_inputs_get_a_clear_error(data, error, words) -> None:
    with pytest.raises(error) as caught:
        imaging.load_original(data)
    assert words in str(caught.value)


def test_truncated_jpeg_is_invalid() -> None:
    data = _save(Image.effect_noise((400, 400), 60).convert("RGB"), "JPEG")
    with pytest.raises(ImageInvalid, match="truncated|corrupt"):
        imaging.load_original(data[: len(data) // 2])


def test_animated_gif_is_refused_with_frame_count() -> None:
    frames = [Image.new("P", (100, 100), i) for i in range(3)]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageInvalid, match="GIF|animated"):
        imaging.load_original(data)


@pytest.mark.parametrize(
    "img",
    [
        Image.new("CMYK", (120, 90), (0, 255, 255, 0)),
        Image.new("I;16", (120, 90), 40000),
        Image.new("L", (120, 90), 128),
        Image.new("RGBA", (120, 90), (10, 20, 30, 128)),
    ],
    ids=["cmyk", "16-bit", "grey", "rgba"],
)
def test_modes_normalize_to_8bit_rgb(img) -> None:
    fmt = "JPEG" if img.mode == "CMYK" else "PNG"
    loaded = imaging.load_original(_save(img, fmt))
    assert loaded.mode in ("RGB", "RGBA") and loaded.size == (120, 90)


def test_palette_png_with_transparency_keeps_alpha() -> None:
    img = Image.new("P", (100, 100), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    ImageDraw.Draw(img).rectangle((50, 0, 99, 99), fill=1)
    loaded = imaging.load_original(_save(img, "PNG", transparency=0))
    assert loaded.mode == "RGBA" and loaded.getpixel((10, 10))[3] == 0 and loaded.getpixel((80, 10))[3] == 255


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation) -> None:
    img = Image.new("RGB", (300, 200), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((0, 0, 29, 19), fill=(255, 0, 0))  # red marker top-left of stored grid
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(img, "JPEG", exif=exif, quality=95)
    assert imaging.probe(data) == (300, 200, orientation)
    loaded = imaging.load_original(data)
    assert loaded.size == ((200, 300) if orientation in (6, 8) else (300, 200))
    # the marker box, mapped with orient_box, lands on red pixels in the oriented image
    left, top, width, height = imaging.orient_box((0.0, 0.0, 0.1, 0.1), orientation)
    x = int((left + width / 2) * loaded.width)
    y = int((top + height / 2) * loaded.height)
    r, g, b = loaded.getpixel((x, y))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("size", [(480, 320), (320, 480), (500, 500), (100, 2000), (2000, 100), (4000, 3000), (64, 64)])
@pytest.mark.parametrize("limits", LIMITS, ids=["stability", "titan", "nova"])
def test_canvas_respects_limits_and_round_trips_exactly(size, limits: ImageLimits) -> None:
    geometry = imaging.fit_canvas(*size, limits)
    w, h = geometry.canvas_width, geometry.canvas_height
    if limits.allowed_sizes:
        assert (w, h) in limits.allowed_sizes
    assert min(w, h) >= limits.min_side
    assert w * h <= limits.max_pixels
    assert limits.min_aspect - 1e-9 <= w / h <= limits.max_aspect + 1e-9
    assert w % limits.side_multiple == 0 and h % limits.side_multiple == 0
    # the content keeps the original aspect ratio (within a pixel of rounding)
    ratio = (geometry.scaled_width / geometry.scaled_height) / (size[0] / size[1])
    assert abs(ratio - 1) <= 1 / min(geometry.scaled_width, geometry.scaled_height) + 0.005
    original = Image.new("RGB", size, (30, 120, 200))
    ImageDraw.Draw(original).ellipse((size[0] * 0.3, size[1] * 0.3, size[0] * 0.7, size[1] * 0.7), fill=(250, 200, 10))
    canvas = imaging.to_canvas(original, geometry)
    assert canvas.size == (w, h)
    restored = imaging.from_canvas(canvas, geometry)
    assert restored.size == size
    centre = (size[0] // 2, size[1] // 2)
    assert max(abs(a - b) for a, b in zip(restored.getpixel(centre), original.getpixel(centre), strict=True)) < 12


def test_padding_repeats_the_border() -> None:
    geometry = imaging.fit_canvas(100, 2000, STABILITY_INPAINT.image_limits)  # 1:20 padded to 1:2.5
    assert geometry.canvas_width > geometry.scaled_width
    canvas = imaging.to_canvas(Image.new("RGB", (100, 2000), (0, 200, 0)), geometry)
    assert canvas.getpixel((0, geometry.canvas_height // 2)) == (0, 200, 0)


def test_boxes_map_into_the_canvas_content_region() -> None:
    geometry = imaging.fit_canvas(1000, 400, TITAN_V2.image_limits)
    ((x0, y0, x1, y1),) = imaging.boxes_to_canvas([(0.5, 0.5, 0.5, 0.5)], geometry)
    assert x1 == geometry.offset_x + geometry.scaled_width and y1 == geometry.offset_y + geometry.scaled_height
    assert abs(x0 - (geometry.offset_x + geometry.scaled_width / 2)) <= 1


def test_keep_mask_is_alpha_within_boxes_grown() -> None:
    cutout = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    ImageDraw.Draw(cutout).rectangle((20, 20, 59, 79), fill=(255, 0, 0, 255))  # subject A
    ImageDraw.Draw(cutout).rectangle((120, 20, 159, 79), fill=(0, 0, 255, 255))  # subject B
    only_a = imaging.keep_mask(imaging.subject_alpha(cutout, [(15, 15, 65, 85)]), grow_px=2)
    assert only_a.getpixel((40, 50)) == 255 and only_a.getpixel((140, 50)) == 0
    assert only_a.getpixel((18, 50)) == 255  # grown by 2 px
    assert only_a.getpixel((10, 50)) == 0
    assert set(only_a.getdata()) <= {0, 255}
    both = imaging.keep_mask(imaging.subject_alpha(cutout, []), grow_px=0)
    assert both.getpixel((140, 50)) == 255
    assert imaging.mask_is_empty(imaging.keep_mask(imaging.subject_alpha(cutout, [(80, 0, 100, 10)]), grow_px=0))
    inverted = imaging.invert_mask(only_a)
    assert inverted.getpixel((40, 50)) == 0 and inverted.getpixel((140, 50)) == 255


def test_subject_alpha_keeps_soft_edges_inside_boxes_only() -> None:
    cutout = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    ImageDraw.Draw(cutout).rectangle((10, 10, 40, 40), fill=(9, 9, 9, 200))  # semi-transparent edge value
    ImageDraw.Draw(cutout).rectangle((60, 10, 90, 40), fill=(9, 9, 9, 255))
    alpha = imaging.subject_alpha(cutout, [(5, 5, 45, 45)])
    assert alpha.getpixel((20, 20)) == 200 and alpha.getpixel((70, 20)) == 0


def test_canvas_alpha_maps_back_to_the_original_with_the_kept_band() -> None:
    from chalicelib.models.base import Geometry

    # a 200x100 original shown at half size in a padded 128x64 canvas (offset 14, 7)
    geometry = Geometry(200, 100, 100, 50, 128, 64, 14, 7)
    canvas_alpha = Image.new("L", (128, 64), 0)
    ImageDraw.Draw(canvas_alpha).rectangle((14 + 30, 7 + 10, 14 + 69, 7 + 39), fill=255)
    alpha, kept = imaging.subject_alpha_and_kept_band(canvas_alpha, geometry, (200, 100), grow_px=4)
    assert alpha.size == kept.size == (200, 100)
    assert alpha.getpixel((100, 50)) == 255 and alpha.getpixel((5, 5)) == 0  # interior stays solid
    assert 0 < alpha.getpixel((60, 50)) < 255  # the edge softens when scaled up
    # the model kept a band about 4 canvas px (8 original px) beyond the subject
    assert kept.getpixel((60 - 6, 50)) == 255 and kept.getpixel((60 - 14, 50)) == 0


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_writes_the_requested_format(fmt) -> None:
    data = imaging.encode(Image.new("RGBA", (70, 70), (1, 2, 3, 255)), fmt, text={"backdrop-stand-in": "true"})
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]
    if fmt == "png":
        assert decoded.info["backdrop-stand-in"] == "true"


def test_large_jpeg_is_draft_decoded_for_a_small_canvas() -> None:
    data = _save(Image.new("RGB", (4000, 3000), (90, 90, 90)), "JPEG", quality=80)
    assert imaging.probe(data)[:2] == (4000, 3000)
    small = imaging.load_original(data, max_pixels_hint=1_000_000)
    assert small.width * small.height <= 4000 * 3000 / 4  # DCT scaling: 1/2 per side or more
    assert abs(small.width / small.height - 4 / 3) < 0.01


def test_source_pixel_limit_is_the_contract_constant() -> None:
    side = int(contracts.MAX_SOURCE_PIXELS**0.5) + 10
    with pytest.raises(ImageTooLarge, match=f"{contracts.MAX_SOURCE_PIXELS:,}"):
        imaging.probe(_png_header_only(side, side))


@pytest.mark.parametrize("times", [1.5, 3, 40])  # Pillow's own guard warned past 2x and raised past 4x
def test_a_decompression_bomb_is_image_too_large_and_warns_nothing(times: float) -> None:
    side = int((contracts.MAX_SOURCE_PIXELS * times) ** 0.5)
    with warnings.catch_warnings(record=True) as issued:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLarge, match=f"{side}x{side} px"):
            imaging.probe(_png_header_only(side, side))
    assert [str(w.message) for w in issued] == []


def test_probing_from_many_threads_leaves_the_warning_machinery_alone() -> None:
    # label detection probes 16 uploads at once; a probe that swapped the process's warning
    # filters or showwarning back and forth would, racing another, leave them changed, and a CLI
    # in the same process (--json) printed library warnings to stderr
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race shows at once
    data = _save(Image.new("RGB", (64, 64)), "PNG")
    filters, show = list(warnings.filters), warnings.showwarning
    try:
        threads = [threading.Thread(target=lambda: [imaging.probe(data) for _ in range(200)]) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert warnings.filters == filters and warnings.showwarning is show


# ---------------------------------------------------------------------------------- default format


def _saved(mode: str, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (64, 48), (10, 200, 30) if mode == "RGB" else (10, 200, 30, 120)).save(buf, fmt, **options)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_saved("RGB", "JPEG"), "jpeg"),
        (_saved("RGB", "PNG"), "png"),
        (_saved("RGBA", "PNG"), "png"),
        (_saved("RGB", "WEBP"), "png"),
        (_saved("RGBA", "WEBP"), "png"),
    ],
    ids=["jpeg", "png", "png-alpha", "webp", "webp-alpha"],
)
def test_a_result_follows_its_original_jpeg_in_jpeg_out_png_otherwise(data: bytes, expected: str) -> None:
    assert imaging.default_output_format(imaging.source_format(data)).value == expected


@pytest.mark.parametrize(("subsampling", "sampling"), [(0, 0), (2, 2)], ids=["4:4:4", "4:2:0"])
def test_a_jpeg_result_keeps_the_originals_subsampling_at_quality_95(subsampling: int, sampling: int) -> None:
    from PIL import JpegImagePlugin

    source = imaging.source_format(_saved("RGB", "JPEG", subsampling=subsampling))
    assert source.jpeg_subsampling == sampling
    result = Image.open(
        io.BytesIO(
            imaging.encode(Image.new("RGB", (64, 48), (200, 30, 40)), "jpeg", jpeg_subsampling=source.jpeg_subsampling)
        )
    )
    assert result.format == "JPEG" and JpegImagePlugin.get_sampling(result) == sampling
    # a JPEG asked for without a JPEG original keeps full colour resolution
    plain = Image.open(io.BytesIO(imaging.encode(Image.new("RGB", (64, 48)), "jpeg")))
    assert JpegImagePlugin.get_sampling(plain) == 0
