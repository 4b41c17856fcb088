"""Canvas fitting for any aspect ratio, checked as properties over sizes and ratios, and the
masks built on the canvas (letterbox padding is always regenerated; any cut-out mode)."""

from __future__ import annotations

import io
import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from chalicelib.core import contracts
from chalicelib.core.errors import ModelResponseInvalid, RequestInvalid, classify_step_failure
from chalicelib.imaging import images as imaging
from chalicelib.models import registry
from chalicelib.models.adapter import check_canvas
from chalicelib.models.base import Geometry, ImageLimits, ModelSpec

MODELS = registry.all_models()
MAX_RATIO = 20  # the property covers 1:20 to 20:1
ISSUE_SIZES = [(4000, 1000), (8000, 2000), (1000, 4000), (5000, 2000), (8000, 100)]


def _assert_valid(spec: ModelSpec, width: int, height: int, geometry: Geometry) -> None:
    w, h = geometry.canvas_width, geometry.canvas_height
    assert spec.image_limits.problems(w, h) == [], (spec.key, width, height, w, h)
    check_canvas(spec, w, h)  # what the adapters run before a request is written
    lim = spec.image_limits
    assert w * h <= lim.max_pixels and min(w, h) >= lim.min_side
    assert lim.max_side is None or max(w, h) <= lim.max_side
    # the original sits wholly inside the canvas ...
    assert geometry.offset_x >= 0 and geometry.offset_y >= 0
    assert geometry.offset_x + geometry.scaled_width <= w and geometry.offset_y + geometry.scaled_height <= h
    # ... with its own aspect ratio, to within the half pixel each side is rounded by
    ratio = (geometry.scaled_width / geometry.scaled_height) / (width / height)
    assert abs(ratio - 1) <= 1 / min(geometry.scaled_width, geometry.scaled_height) + 1e-9
    assert (geometry.original_width, geometry.original_height) == (width, height)


@st.composite
def original_sizes(draw: st.DrawFn) -> tuple[int, int]:
    """Any size Backdrop accepts: every side >= 64 px, at most 50 MP, from 1:20 to 20:1."""
    short = draw(st.integers(contracts.MIN_SOURCE_SIDE, math.isqrt(contracts.MAX_SOURCE_PIXELS)))
    longest = min(short * MAX_RATIO, contracts.MAX_SOURCE_PIXELS // short)
    long = draw(st.integers(short, longest))
    return (long, short) if draw(st.booleans()) else (short, long)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(original_sizes())
@example((64, 64))
@example((64, 1280))
@example((1280, 64))
@example((31_622, 1_581))  # 20:1 at the 50 MP limit
@example((1_581, 31_622))
@example((7071, 7071))
def test_every_canvas_is_within_every_limit_of_every_model(size: tuple[int, int]) -> None:
    for spec in MODELS:
        _assert_valid(spec, *size, imaging.fit_canvas(*size, spec.image_limits))


def test_a_dense_grid_of_sizes_and_ratios_fits_every_model() -> None:
    """Deterministic companion of the property: 81 ratios from 1:20 to 20:1 (log-spaced) times
    48 long sides from 64 px to the 50 MP limit, for every registered model."""
    checked = 0
    for step in range(81):
        ratio = MAX_RATIO ** ((step - 40) / 40)  # width / height
        for k in range(48):
            long = round(64 * (35_000 / 64) ** (k / 47))
            width, height = (long, round(long / ratio)) if ratio >= 1 else (round(long * ratio), long)
            if min(width, height) < contracts.MIN_SOURCE_SIDE or width * height > contracts.MAX_SOURCE_PIXELS:
                continue
            for spec in MODELS:
                _assert_valid(spec, width, height, imaging.fit_canvas(width, height, spec.image_limits))
                checked += 1
    assert checked > 8_000


@pytest.mark.parametrize("size", ISSUE_SIZES, ids=[f"{w}x{h}" for w, h in ISSUE_SIZES])
@pytest.mark.parametrize("spec", MODELS, ids=[m.key for m in MODELS])
def test_wide_and_tall_images_round_trip_to_their_original_geometry(spec: ModelSpec, size: tuple[int, int]) -> None:
    geometry = imaging.fit_canvas(*size, spec.image_limits)
    _assert_valid(spec, *size, geometry)
    # a model answer where the original's place is white and the padding black: cropping back
    # must give exactly the original's size, with no padding in it
    answer = Image.new("L", (geometry.canvas_width, geometry.canvas_height), 0)
    answer.paste(255, imaging.content_rect(geometry))
    restored = imaging.from_canvas(answer, geometry)
    assert restored.size == size
    assert restored.getextrema() == (255, 255)


def test_the_default_model_canvas_for_a_banner_stays_under_its_pixel_cap() -> None:
    """The reported failure: 4000x1000 became 3238x1296 = 4,196,448 px for a 4,194,304 px cap."""
    spec = registry.get_model("stability-inpaint")
    geometry = imaging.fit_canvas(4000, 1000, spec.image_limits)
    assert geometry.canvas_width * geometry.canvas_height <= 4_194_304
    assert geometry.canvas_width / geometry.canvas_height <= 2.5
    assert geometry.scaled_width == geometry.canvas_width  # letterboxed top and bottom, not cropped
    assert geometry.scaled_height < geometry.canvas_height


def test_limits_no_canvas_can_meet_are_backdrops_own_error() -> None:
    impossible = ImageLimits(min_side=1024, max_side=None, max_pixels=500_000, min_aspect=0.5, max_aspect=2.0)
    with pytest.raises(RequestInvalid, match="Backdrop could not fit") as caught:
        imaging.fit_canvas(4000, 3000, impossible)
    assert caught.value.code == contracts.ErrorCode.INTERNAL_ERROR


def test_a_request_backdrop_built_wrong_is_never_blamed_on_the_model() -> None:
    spec = registry.get_model("stability-inpaint")
    with pytest.raises(RequestInvalid) as caught:
        check_canvas(spec, 3238, 1296)
    message = str(caught.value)
    assert "4,196,448 px exceeds 4,194,304" in message and "Backdrop built" in message
    # what record_failure makes of it when the state machine's Catch hands it over
    cause = json.dumps({"errorType": type(caught.value).__name__, "errorMessage": message})
    code, text = classify_step_failure("RequestInvalid", cause)
    assert code == contracts.ErrorCode.INTERNAL_ERROR
    assert "Backdrop built" in text
    # a refusal by Bedrock itself is still the model's
    assert classify_step_failure("Bedrock.ValidationException", "bad")[0] == contracts.ErrorCode.MODEL_REJECTED_REQUEST


# ------------------------------------------------------------------------------ masks on the canvas


def test_letterbox_padding_is_never_kept_even_when_the_cutout_spills_into_it() -> None:
    spec = registry.get_model("stability-inpaint")
    geometry = imaging.fit_canvas(4000, 1000, spec.image_limits)
    canvas = (geometry.canvas_width, geometry.canvas_height)
    # a subject touching the top edge: the border-repeating padding above it looks like subject too
    cutout = Image.new("RGBA", canvas, (0, 0, 0, 255))
    alpha = imaging.subject_alpha(cutout, [], size=canvas, within=imaging.content_rect(geometry))
    x0, y0, x1, y1 = imaging.content_rect(geometry)
    assert alpha.getpixel((x0 + 5, y0 + 5)) == 255
    assert alpha.getpixel((x0 + 5, y0 - 1)) == 0 and alpha.getpixel((x0 + 5, y1)) == 0
    regenerate = imaging.invert_mask(imaging.dilate(imaging.binary(alpha), 0))
    assert regenerate.getpixel((10, 0)) == 255  # white: the model fills the padding


def _png_bytes(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kwargs)
    return buf.getvalue()


def _palette_cutout() -> Image.Image:
    """A palette PNG as a remove-background answer could come: index 0 fully transparent white,
    index 1 a dark opaque subject, index 2 a half-transparent edge (tRNS per index)."""
    img = Image.new("P", (60, 40), 0)
    img.putpalette([255, 255, 255, 20, 20, 20, 20, 20, 20] + [0] * 759)
    ImageDraw.Draw(img).rectangle((10, 10, 29, 29), fill=1)
    ImageDraw.Draw(img).rectangle((30, 10, 34, 29), fill=2)
    return imaging.decode_image(_png_bytes(img, transparency=bytes([0, 255, 128])))


def test_a_palette_cutout_gives_its_transparency_as_the_mask_not_its_luminance() -> None:
    cutout = _palette_cutout()
    assert cutout.mode == "P" and "transparency" in cutout.info
    alpha = imaging.subject_alpha(cutout, [])
    assert alpha.getpixel((15, 15)) == 255  # the dark subject is kept (its luminance is ~20)
    assert alpha.getpixel((32, 15)) == 128  # the soft edge keeps its strength
    assert alpha.getpixel((50, 5)) == 0  # the white background is regenerated
    keep = imaging.keep_mask(alpha, grow_px=0)
    assert keep.getpixel((15, 15)) == 255 and keep.getpixel((50, 5)) == 0


@pytest.mark.parametrize(
    ("cutout", "inside", "outside"),
    [
        (Image.merge("LA", (Image.new("L", (20, 20), 10), Image.new("L", (20, 20), 255))), 255, None),
        (Image.new("PA", (20, 20), (0, 200)), 200, None),
        (Image.new("RGBA", (20, 20), (0, 0, 0, 77)), 77, None),
        (Image.new("L", (20, 20), 255), 255, None),  # already a mask
        (Image.new("1", (20, 20), 1), 255, None),
        (Image.new("I;16", (20, 20), 65535), 255, None),  # a 16-bit mask at full strength
    ],
    ids=["LA", "PA", "RGBA", "L-mask", "1-bit-mask", "16-bit-mask"],
)
def test_every_cutout_mode_gives_the_right_alpha(cutout: Image.Image, inside: int, outside: int | None) -> None:
    round_tripped = imaging.decode_image(_png_bytes(cutout)) if cutout.mode != "PA" else cutout
    assert imaging.cutout_alpha(round_tripped).getpixel((5, 5)) == inside


def test_a_grey_or_rgb_png_with_a_transparent_colour_uses_it() -> None:
    img = Image.new("RGB", (20, 20), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((5, 5, 14, 14), fill=(10, 10, 10))
    cutout = imaging.decode_image(_png_bytes(img, transparency=(255, 255, 255)))
    alpha = imaging.cutout_alpha(cutout)
    assert alpha.getpixel((8, 8)) == 255 and alpha.getpixel((1, 1)) == 0


def test_an_opaque_colour_cutout_is_an_invalid_model_answer() -> None:
    with pytest.raises(ModelResponseInvalid, match="no transparency"):
        imaging.cutout_alpha(Image.new("RGB", (20, 20), (10, 10, 10)))
