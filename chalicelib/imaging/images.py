"""Image decoding, validation, geometry and masks (Pillow only, no AWS).

Every bad input becomes a StepError with a message that names what was found and the limit,
so the user sees *why* an image failed, and no other image is affected.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageChops, ImageCms, ImageFilter, ImageOps, UnidentifiedImageError

from chalicelib.core import contracts
from chalicelib.core.errors import ImageInvalid, ImageTooLarge, ImageTooSmall, ModelResponseInvalid, RequestInvalid
from chalicelib.models.base import ASPECT_TOLERANCE, Box, Geometry, ImageLimits

# Pillow's format names. HEIF (HEIC: iPhone photos) is read by pillow-heif's opener, AVIF by Pillow
# itself (its 12.2.0 wheels carry libavif), MPO (a multi-picture JPEG that phones and stereo
# cameras write) by Pillow as a JPEG with extra frames (docs/aws-notes.md#n87-photo-formats-people-have).
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "HEIF", "AVIF", "MPO")
ACCEPTED_WORDS = "PNG, JPEG, WEBP, HEIC/HEIF or AVIF"
# Formats whose extra frames are not an animation: the picture is the first frame (MPO: the others
# are previews or the second eye of a stereo pair) or the primary image (HEIF: bursts, depth maps),
# which is what Pillow and pillow-heif open by default.
FIRST_FRAME_FORMATS = ("MPO", "HEIF")
# Photo formats that a result follows as JPEG when the job names no format (default_output_format).
PHOTO_FORMATS = ("JPEG", "MPO", "HEIF", "AVIF")
EXIF_ORIENTATION_TAG = 0x0112
PixelRect = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive

# Our own bomb guard is MAX_SOURCE_PIXELS, checked in _open from the header (Image.open decodes
# nothing). Pillow's guard is off: it warns through the process-wide warnings machinery, which
# cannot be scoped to one call (catch_warnings is not thread-safe, and labels are probed 16 threads
# at a time), so its warning either leaked to stderr or had to be turned into an error racily.
Image.MAX_IMAGE_PIXELS = None

# What bytes Pillow cannot open really are, told by their first bytes, so a refusal names it.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xff\xd8\xff", "a JPEG image whose data is corrupt"),
    (b"\x89PNG", "a PNG image whose data is corrupt"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg audio or video file"),
    (b"\x1a\x45\xdf\xa3", "a Matroska/WebM video"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
)
_HEIC = "a HEIC image"
# ISO base media files ("....ftyp<brand>"): the brand says which (HEIC, AVIF, MP4, QuickTime).
_FTYP_BRANDS: dict[bytes, str] = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"), _HEIC),
    **dict.fromkeys((b"avif", b"avis"), "an AVIF image"),
    b"qt  ": "a QuickTime (.mov) video",
    **dict.fromkeys((b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"M4V "), "an MP4 video"),
    **dict.fromkeys((b"3gp4", b"3gp5", b"3g2a"), "a 3GP video"),
    **dict.fromkeys((b"M4A ",), "an M4A audio file"),
    b"crx ": "a Canon CR3 raw photo",
}


_heif_registered = False


def _register_heif_if_needed(data: bytes) -> None:
    """HEIF/HEIC through Pillow's Image.open, registered on the first HEIF seen: pillow-heif loads
    libheif and its 23 MB x265 library (~26 ms warm here), which a job of JPEGs never needs.
    Registering twice is harmless, so two threads racing here is too."""
    global _heif_registered
    if _heif_registered or data[4:8] != b"ftyp" or _FTYP_BRANDS.get(data[8:12]) != _HEIC:
        return
    import pillow_heif  # pillow-heif's own AVIF is not used: Pillow reads AVIF itself

    pillow_heif.register_heif_opener()
    _heif_registered = True


def what_it_is(data: bytes) -> str:
    """What bytes that are not a readable image look like, for the refusal message."""
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12], "an ISO media file (MP4/HEIF family) of an unknown kind")
    if data[:4] == b"RIFF":
        riff = data[8:12]
        return {
            b"WAVE": "a WAV audio file",
            b"AVI ": "an AVI video",
            b"WEBP": "a WEBP image whose data is corrupt",
        }.get(riff, "a RIFF file of an unknown kind")
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    head = data[:512].lstrip()
    text = head.decode("utf-8", "ignore")  # a character cut at byte 512 is dropped, not an error
    if len(text.encode()) >= len(head) - 3 and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "text or markup (HTML/SVG/XML/JSON)" if head.startswith((b"<", b"{", b"[")) else "text"
    return "a file of an unknown format"


def _open(data: bytes) -> Image.Image:
    """The image, header read and pixels not decoded; ImageTooLarge past MAX_SOURCE_PIXELS."""
    if not data:
        raise ImageInvalid("the file is empty (0 bytes)")
    _register_heif_if_needed(data)
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageInvalid(
            f"the file is not a PNG, JPEG or WEBP image, nor a HEIC or AVIF one; it is {what_it_is(data)}"
        ) from exc
    except (OSError, ValueError, SyntaxError, RuntimeError) as exc:  # pillow-heif raises RuntimeError
        raise ImageInvalid(f"the image header is corrupt: {exc}") from exc
    width, height = img.size
    if width * height > contracts.MAX_SOURCE_PIXELS:
        raise ImageTooLarge(
            f"image is {width}x{height} px ({width * height:,} px); Backdrop accepts at most "
            f"{contracts.MAX_SOURCE_PIXELS:,} px"
        )
    return img


def format_of(data: bytes) -> str:
    """Pillow's name for the format the bytes really are (header only), whatever the file is called."""
    return str(_open(data).format)


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not fail an otherwise good image
        return 1
    return value if 1 <= value <= 8 else 1


def probe(data: bytes) -> tuple[int, int, int]:
    """(stored width, stored height, EXIF orientation) from the header, without decoding pixels."""
    img = _open(data)
    if img.format not in ACCEPTED_FORMATS:
        raise ImageInvalid(f"{img.format or 'this'} images are not supported; upload {ACCEPTED_WORDS}")
    frames = int(getattr(img, "n_frames", 1))  # only multi-frame formats have n_frames
    if frames > 1 and img.format not in FIRST_FRAME_FORMATS:
        raise ImageInvalid(f"animated images are not supported ({frames} frames); upload a single frame")
    width, height = img.size  # within MAX_SOURCE_PIXELS (_open)
    orientation = _orientation(img)
    shown = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    if min(shown) < contracts.MIN_SOURCE_SIDE:
        raise ImageTooSmall(
            f"image is {shown[0]}x{shown[1]} px; the smallest side must be at least {contracts.MIN_SOURCE_SIDE} px"
        )
    return width, height, orientation


def _to_8bit_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        return img
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in ("LA", "PA", "RGBa", "La"):
        return img.convert("RGBA")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grey: scale to 8 bits by the image's own range rather than clipping at 255
        lo, hi = cast(tuple[float, float], img.getextrema())  # one band: (min, max)
        scale = 255.0 / (hi - lo) if hi > lo else 1.0
        return img.point(lambda v: (v - lo) * scale).convert("L").convert("RGB")
    if mode == "F":
        return img.convert("L").convert("RGB")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, L, 1


# ------------------------------------------------------------------------------------ colour

# Backdrop works in sRGB: the models take and give sRGB, a colour background is given in sRGB, and a
# viewer shows an untagged file as sRGB. An original with an ICC profile (Adobe RGB, Display P3,
# a CMYK press profile, a grey one) is converted to sRGB at decode through LittleCMS, so its colours
# as displayed are kept; its numbers read as sRGB would shift every colour (a P3 green by ΔE ~5-10).
# The delivered file then carries an sRGB profile (SRGB_ICC) so a colour-managed viewer knows it.
# Relative colorimetric: in-gamut colours are kept exactly; a colour outside sRGB (a saturated P3
# green) is clipped to sRGB's edge, which is also what an sRGB display shows of the original.
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
_SRGB = ImageCms.createProfile("sRGB")
_INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
# Transforms by (profile bytes, mode): building one parses the profile (~1 ms); a batch repeats them.
# The value: whether LittleCMS could read the profile, and the transform (None: nothing to do).
_TRANSFORMS: dict[tuple[bytes, str], tuple[bool, ImageCms.ImageCmsTransform | None]] = {}
_CMS_MODES = {"RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK", "L": "L", "LA": "L"}


def _srgb_transform(icc: bytes, mode: str) -> tuple[bool, ImageCms.ImageCmsTransform | None]:
    """(readable, the transform from `icc` to sRGB for pixels in `mode`); the transform is None
    where there is nothing to do: an sRGB profile, or one LittleCMS cannot read (its numbers are
    then taken as sRGB, as a browser shows them)."""
    key = (icc, mode)
    if key in _TRANSFORMS:
        return _TRANSFORMS[key]
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform: ImageCms.ImageCmsTransform | None = ImageCms.buildTransform(profile, _SRGB, mode, "RGB", _INTENT)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        _TRANSFORMS[key] = (False, None)
        return _TRANSFORMS[key]
    if mode == "RGB" and transform is not None:
        # an sRGB profile under another name is the identity: a grey ramp, the primaries and a
        # green come back within one level
        levels = bytes(v for v in range(0, 256, 5) for _ in range(3)) + bytes(
            (255, 0, 0, 0, 255, 0, 0, 0, 255, 40, 200, 60)
        )
        back = transform.apply(Image.frombytes("RGB", (len(levels) // 3, 1), levels)).tobytes()
        if max(abs(a - b) for a, b in zip(levels, back, strict=True)) <= 1:
            transform = None
    _TRANSFORMS[key] = (True, transform)
    return _TRANSFORMS[key]


def to_srgb(img: Image.Image) -> Image.Image:
    """`img` (any mode) with its ICC profile applied: RGB/RGBA pixels in sRGB (alpha kept). An
    image without a profile, or with an sRGB one, is returned as it is."""
    icc = img.info.get("icc_profile")
    mode = _CMS_MODES.get(img.mode)
    if not icc or mode is None:
        return img
    _, transform = _srgb_transform(bytes(icc), mode)
    if transform is None:
        return img
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    colour = img if img.mode == mode else img.convert(mode)
    converted = transform.apply(colour)
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _delivery_profile(img: Image.Image) -> bytes | None:
    icc = img.info.get("icc_profile")
    mode = _CMS_MODES.get(img.mode)
    if not icc or mode is None:
        return None
    readable, transform = _srgb_transform(bytes(icc), mode)
    if not readable:
        return None  # the pixels were taken as sRGB: the file says nothing else
    if transform is None:
        # an sRGB profile is kept as the original carried it, where the pixels were kept as they came
        return bytes(icc) if mode == "RGB" else None
    return SRGB_ICC


def load_original(data: bytes, max_pixels_hint: int | None = None) -> Image.Image:
    """Decode, validate, colour-manage (`to_srgb`) and EXIF-orient an original; always returns
    8-bit RGB or RGBA in sRGB.

    With `max_pixels_hint`, a JPEG much larger than needed is decoded at a reduced scale (DCT
    draft mode), which is far cheaper than decoding 12 MP and resizing; the true size comes
    from `probe`.
    """
    width, height, _ = probe(data)
    img = _open(data)
    if max_pixels_hint and img.format in ("JPEG", "MPO") and width * height > 2 * max_pixels_hint:
        factor = math.sqrt(width * height / max_pixels_hint)
        img.draft("RGB", (max(1, int(width / factor)), max(1, int(height / factor))))
    try:
        img.load()  # an MPO or HEIF loads its first / primary image (FIRST_FRAME_FORMATS)
    except (OSError, SyntaxError, ValueError, RuntimeError) as exc:
        raise ImageInvalid(f"the image data is truncated or corrupt ({exc})") from exc
    if _orientation(img) != 1:  # exif_transpose copies the image even when there is nothing to turn
        img = ImageOps.exif_transpose(img) or img  # its info (the ICC profile) goes with it
    return _to_8bit_rgb(to_srgb(img))


def orient_box(box: Box, orientation: int) -> Box:
    """Map a box given on the stored pixel grid (as Rekognition reports it) to the oriented image.

    Rekognition does not apply EXIF orientation to DetectLabels boxes (UNCONFIRMED for every
    image type); Backdrop applies it here, the same way exif_transpose turns the pixels.
    """
    left, top, width, height = box
    right, bottom = left + width, top + height
    # (x, y) -> oriented (x', y') per EXIF orientation; applied to both corners
    transforms: dict[int, Callable[[float, float], tuple[float, float]]] = {
        1: lambda x, y: (x, y),
        2: lambda x, y: (1 - x, y),
        3: lambda x, y: (1 - x, 1 - y),
        4: lambda x, y: (x, 1 - y),
        5: lambda x, y: (y, x),
        6: lambda x, y: (1 - y, x),
        7: lambda x, y: (1 - y, 1 - x),
        8: lambda x, y: (y, 1 - x),
    }
    transform = transforms.get(orientation, transforms[1])
    (x0, y0), (x1, y1) = transform(left, top), transform(right, bottom)
    nx0, nx1 = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
    ny0, ny1 = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
    return (nx0, ny0, nx1 - nx0, ny1 - ny0)


def _fit_inside(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / width, box_h / height)
    return max(1, min(box_w, round(width * scale))), max(1, min(box_h, round(height * scale)))


def _floor_to(value: float, multiple: int) -> int:
    # the hair of slack keeps 3240.0000000001 from becoming 3239 when 3240 was meant
    return int(math.floor(value + 1e-9) // multiple * multiple)


def _range_canvas(width: int, height: int, limits: ImageLimits) -> tuple[int, int]:
    """The largest canvas a range-limited model accepts for a `width x height` original: never
    upscaled except to reach the minimum side, padded on the short side when the original is
    more extreme than the model's aspect bounds.

    Every rounding goes *down* (a side only ever shrinks to meet a bound): rounding up, then
    widening a side to restore the aspect ratio, is what once built 3238x1296 = 4,196,448 px for
    a model capped at 4,194,304."""
    m = max(1, limits.side_multiple)
    aspect = width / height
    canvas_aspect = min(max(aspect, limits.min_aspect), limits.max_aspect)
    # the canvas in original pixels: the short dimension padded when the image is too extreme
    if canvas_aspect > aspect:
        cw, ch = height * canvas_aspect, float(height)
    else:
        cw, ch = float(width), width / canvas_aspect
    scale = min(1.0, math.sqrt(limits.max_pixels / (cw * ch)))
    if limits.max_side:
        scale = min(scale, limits.max_side / max(cw, ch))
    if min(cw, ch) * scale < limits.min_side:  # only upscale to reach the minimum side
        scale = limits.min_side / min(cw, ch)
    min_side = -(-limits.min_side // m) * m  # the smallest multiple of m at or above min_side
    canvas_w = max(min_side, _floor_to(cw * scale, m))
    canvas_h = max(min_side, _floor_to(ch * scale, m))
    # rounding can nudge the ratio past a bound: shrink the long side back inside it
    if canvas_w / canvas_h > limits.max_aspect + ASPECT_TOLERANCE:
        canvas_w = _floor_to(canvas_h * limits.max_aspect, m)
    if canvas_w / canvas_h < limits.min_aspect - ASPECT_TOLERANCE:
        canvas_h = _floor_to(canvas_w / limits.min_aspect, m)
    # the arithmetic above keeps every limit; these guards only ever shrink, never grow
    while canvas_w * canvas_h > limits.max_pixels and max(canvas_w, canvas_h) - m >= min_side:
        if canvas_w >= canvas_h:
            canvas_w -= m
        else:
            canvas_h -= m
    return canvas_w, canvas_h


def fit_canvas(width: int, height: int, limits: ImageLimits) -> Geometry:
    """Choose the model canvas for an oriented `width x height` original, keeping its aspect ratio.

    Titan-like models accept only listed sizes: the closest aspect ratio is chosen and the image
    is scaled to fit inside it. Other models accept a range: an image more extreme than the
    allowed aspect ratio is letterboxed (padded, never cropped), and the canvas is scaled to the
    pixel and side limits. The padding is regenerated by the model like the rest of the
    background, and `from_canvas` crops it away again.

    The result is checked against every limit of the model; a canvas that breaks one is
    Backdrop's own error (RequestInvalid, INTERNAL_ERROR), raised before anything is sent.
    """
    if width < 1 or height < 1:
        raise ImageInvalid(f"image has no pixels ({width}x{height})")
    aspect = width / height
    if limits.allowed_sizes:
        canvas_w, canvas_h = min(
            limits.allowed_sizes, key=lambda s: (abs(math.log((s[0] / s[1]) / aspect)), -s[0] * s[1])
        )
    else:
        canvas_w, canvas_h = _range_canvas(width, height, limits)
    problems = limits.problems(canvas_w, canvas_h)
    if problems:
        raise RequestInvalid(
            f"Backdrop could not fit a {width}x{height} image into a canvas the model accepts "
            f"({canvas_w}x{canvas_h}: {'; '.join(problems)}); nothing was sent to the model"
        )
    scaled_w, scaled_h = _fit_inside(width, height, canvas_w, canvas_h)
    return Geometry(
        original_width=width,
        original_height=height,
        scaled_width=scaled_w,
        scaled_height=scaled_h,
        canvas_width=canvas_w,
        canvas_height=canvas_h,
        offset_x=(canvas_w - scaled_w) // 2,
        offset_y=(canvas_h - scaled_h) // 2,
    )


def flatten(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB: alpha composited onto a plain background (models that refuse transparency)."""
    if image.mode == "RGB":
        return image
    if image.mode != "RGBA":
        return image.convert("RGB")
    base = Image.new("RGB", image.size, background)
    base.paste(image, mask=image.getchannel("A"))
    return base


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    factor = min(image.width // size[0], image.height // size[1])
    if factor >= 2:  # integer box reduction first: cheap, and LANCZOS then works on fewer pixels
        image = image.reduce(factor)
    return image.resize(size, Image.Resampling.LANCZOS)


def to_canvas(image: Image.Image, geometry: Geometry) -> Image.Image:
    """Scale into the canvas; padding repeats the border so the model sees plausible content."""
    scaled = _resize(flatten(image), (geometry.scaled_width, geometry.scaled_height))
    if (geometry.canvas_width, geometry.canvas_height) == scaled.size:
        return scaled
    left, top = geometry.offset_x, geometry.offset_y
    right = geometry.canvas_width - left - scaled.width
    bottom = geometry.canvas_height - top - scaled.height
    canvas = Image.new("RGB", (geometry.canvas_width, geometry.canvas_height))
    canvas.paste(scaled, (left, top))
    if left:
        canvas.paste(scaled.crop((0, 0, 1, scaled.height)).resize((left, scaled.height)), (0, top))
    if right:
        strip = scaled.crop((scaled.width - 1, 0, scaled.width, scaled.height)).resize((right, scaled.height))
        canvas.paste(strip, (left + scaled.width, top))
    if top:
        row = canvas.crop((0, top, canvas.width, top + 1)).resize((canvas.width, top))
        canvas.paste(row, (0, 0))
    if bottom:
        y = top + scaled.height
        row = canvas.crop((0, y - 1, canvas.width, y)).resize((canvas.width, bottom))
        canvas.paste(row, (0, y))
    return canvas


def from_canvas(
    canvas_image: Image.Image,
    geometry: Geometry,
    size: tuple[int, int] | None = None,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
) -> Image.Image:
    """Undo `to_canvas`: crop the content region and scale it to `size` (default: the original)."""
    if canvas_image.size != (geometry.canvas_width, geometry.canvas_height):
        # a model may answer at another resolution: map the region proportionally
        canvas_image = canvas_image.resize((geometry.canvas_width, geometry.canvas_height), Image.Resampling.LANCZOS)
    region = canvas_image.crop(
        (
            geometry.offset_x,
            geometry.offset_y,
            geometry.offset_x + geometry.scaled_width,
            geometry.offset_y + geometry.scaled_height,
        )
    )
    target = size or (geometry.original_width, geometry.original_height)
    return region.resize(target, resample) if region.size != target else region


def boxes_to_canvas(boxes: Sequence[Box], geometry: Geometry) -> list[PixelRect]:
    """Boxes (fractions of the oriented image) → pixel rectangles in the canvas."""
    rects = []
    for left, top, width, height in boxes:
        x0 = geometry.offset_x + math.floor(left * geometry.scaled_width)
        y0 = geometry.offset_y + math.floor(top * geometry.scaled_height)
        x1 = geometry.offset_x + math.ceil((left + width) * geometry.scaled_width)
        y1 = geometry.offset_y + math.ceil((top + height) * geometry.scaled_height)
        x0, x1 = (min(max(v, geometry.offset_x), geometry.offset_x + geometry.scaled_width) for v in (x0, x1))
        y0, y1 = (min(max(v, geometry.offset_y), geometry.offset_y + geometry.scaled_height) for v in (y0, y1))
        if x1 > x0 and y1 > y0:
            rects.append((x0, y0, x1, y1))
    return rects


def binary(mask: Image.Image) -> Image.Image:
    """0/255: pixels at or above half strength become 255."""
    return mask.point(lambda v: 255 if v >= 128 else 0, mode="L")


def content_rect(geometry: Geometry) -> PixelRect:
    """Where the original sits in the canvas; everything around it is letterbox padding."""
    return (
        geometry.offset_x,
        geometry.offset_y,
        geometry.offset_x + geometry.scaled_width,
        geometry.offset_y + geometry.scaled_height,
    )


_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def cutout_alpha(cutout: Image.Image) -> Image.Image:
    """The subject's alpha ("L", 255 = subject) of a background-removal answer, whatever its mode.

    A palette PNG keeps its transparency in tRNS (`info["transparency"]`), not in a band: taking
    its luminance, as `convert("L")` would, turns a dark subject into background. A single-band
    image without transparency is already a mask; an opaque colour image carries no cut-out at all.
    """
    bands = cutout.getbands()
    if "A" in bands or "a" in bands or "transparency" in cutout.info:
        # RGBA, LA, PA, RGBa, La, and P / L / RGB with a tRNS chunk: let Pillow expand to RGBA
        rgba = cutout if cutout.mode == "RGBA" else cutout.convert("RGBA")
        return rgba.getchannel("A")
    if cutout.mode == "L":
        return cutout
    if cutout.mode == "1":
        return cutout.convert("L")
    if cutout.mode in _SIXTEEN_BIT_MODES or cutout.mode == "I":
        # a 16-bit mask: full strength is 65535, so scale rather than clip at 255
        return cutout.convert("I").point(lambda v: v / 257).convert("L")
    raise ModelResponseInvalid(
        f"background removal answered an opaque {cutout.mode} image with no transparency, so there is no "
        "subject to keep"
    )


def subject_alpha(
    cutout: Image.Image,
    boxes_px: Sequence[PixelRect],
    size: tuple[int, int] | None = None,
    within: PixelRect | None = None,
) -> Image.Image:
    """The cut-out's soft alpha ("L", 255 = subject), kept only inside the kept labels' boxes and
    inside `within` (the original's place in the canvas, so letterbox padding is always
    regenerated, never kept).

    With no boxes the whole cut-out is the subject. Its soft edge is what PRECISE pastes back,
    so hair and fine edges blend instead of showing a hard cut."""
    alpha = cutout_alpha(cutout)
    if size and alpha.size != size:
        alpha = alpha.resize(size, Image.Resampling.BILINEAR)
    region: Image.Image | None = None
    if boxes_px:
        region = Image.new("L", alpha.size, 0)
        for x0, y0, x1, y1 in boxes_px:
            region.paste(255, (max(0, x0), max(0, y0), x1, y1))
    if within and within != (0, 0, *alpha.size):
        content = Image.new("L", alpha.size, 0)
        content.paste(255, within)
        region = content if region is None else ImageChops.multiply(region, content)
    if region is not None:
        alpha = Image.composite(alpha, region, region)  # alpha inside the region, 0 outside
    return alpha


def keep_mask(alpha: Image.Image, grow_px: int) -> Image.Image:
    """Keep-mask for the model (0/255, 255 = keep): the subject alpha (see subject_alpha), made
    binary and grown by `grow_px` so the model keeps a thin band around the subject and blends
    from there."""
    return dilate(binary(alpha), grow_px)


def dilate(mask: Image.Image, px: int) -> Image.Image:
    """Grow a 0/255 mask by about `px` pixels: a box blur then any-coverage threshold, linear in
    the image size whatever `px` is (a MaxFilter of the same reach costs ~10x more at 4 MP)."""
    if px <= 0:
        return mask
    return mask.filter(ImageFilter.BoxBlur(px)).point(lambda v: 255 if v > 0 else 0)


def mask_is_empty(mask: Image.Image) -> bool:
    return mask.getbbox() is None


def invert_mask(mask: Image.Image) -> Image.Image:
    """White (255) = regenerate, black = keep: the Stability inpaint convention."""
    return binary(ImageOps.invert(mask.convert("L")))


def subject_alpha_and_kept_band(
    canvas_alpha: Image.Image, geometry: Geometry, size: tuple[int, int], grow_px: int
) -> tuple[Image.Image, Image.Image]:
    """The subject's soft alpha and the band the model was told to keep (`keep_mask`'s growth),
    both mapped from the model canvas to `size` ("L", 255 = subject / kept).

    The alpha is cropped to the content at canvas resolution and scaled up bilinearly: interior
    pixels stay 255 and only the edge softens."""
    content = from_canvas(canvas_alpha.convert("L"), geometry, (geometry.scaled_width, geometry.scaled_height))
    content = solid_interior(content)
    kept = dilate(binary(content), grow_px)
    return (
        content.resize(size, Image.Resampling.BILINEAR) if content.size != size else content,
        kept.resize(size, Image.Resampling.NEAREST) if kept.size != size else kept,
    )


@dataclass(frozen=True)
class SourceFormat:
    """What a result's default format is decided from: the original's format, whether it has
    transparency, and for a JPEG its chroma subsampling (Pillow: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0);
    and the colour profile the result carries."""

    format: str
    has_alpha: bool
    jpeg_subsampling: int | None = None
    # the ICC profile a result carries (None: untagged, i.e. sRGB): see to_srgb
    icc_profile: bytes | None = None


def source_format(data: bytes) -> SourceFormat:
    """Read from the header only."""
    img = _open(data)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    subsampling = None
    if img.format in ("JPEG", "MPO"):
        from PIL import JpegImagePlugin

        sampling = JpegImagePlugin.get_sampling(img)
        subsampling = sampling if sampling in (0, 1, 2) else None
    return SourceFormat(str(img.format), has_alpha, subsampling, _delivery_profile(img))


def default_output_format(source: SourceFormat) -> contracts.OutputFormat:
    """A result follows its original when the job names no format: a photo in gives a JPEG out
    (a 12 MP result is ~5 MB and 0.1-0.2 s to encode, against ~26 MB and ~1.4 s as PNG). Photos
    are JPEG, MPO, HEIC and AVIF: HEIC and AVIF results come back as JPEG because every viewer,
    browser and Rekognition reads JPEG, and Backdrop writes no HEIC or AVIF. An original with
    transparency, or any other format, gives a PNG (lossless, keeps alpha)."""
    if source.format in PHOTO_FORMATS and not source.has_alpha:
        return contracts.OutputFormat.JPEG
    return contracts.OutputFormat.PNG


# JPEG results (docs/aws-notes.md#n48-jpeg-chroma-subsampling-in-pillow): quality 95 and 4:4:4
# chroma, because the scorecard measures the delivered file (issue 27, point 3) and a PRECISE
# result's subject is the original's pixels through a second lossy encoding. Measured on
# bench/photos.py's 12 MP photo (docs/quality.md): 4:2:0 at 95 gives PSNR 38.4 dB, ΔE 1.59 (a WARN
# on the default thresholds) in 5.2 MB; 4:4:4 at 95 gives 43.6 dB, ΔE 0.83 (PASS) in 7.1 MB
# (+36 %); on the camera photos in samples/ 4:4:4 costs +19-29 % bytes. Quality 97 adds another
# ~20 % for ~1 dB. Following a 4:2:0 original's subsampling, as before, saved those bytes but
# delivered WARNs that a re-roll (which redraws only the background) cannot change.
JPEG_QUALITY = 95


def encode(
    image: Image.Image,
    fmt: str,
    *,
    text: dict[str, str] | None = None,
    jpeg_subsampling: int | None = None,
    icc_profile: bytes | None = None,
) -> bytes:
    """Encode a result in the requested format, tagged with `icc_profile` (its pixels' colour space:
    SourceFormat.icc_profile; None: untagged, i.e. sRGB). `jpeg_subsampling` is Pillow's (0 = 4:4:4,
    2 = 4:2:0); results are 4:4:4 (None: see JPEG_QUALITY), Huffman-optimized (docs/performance.md)."""
    buf = io.BytesIO()
    fmt = contracts.OutputFormat(fmt).value
    profile = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "png":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for key, value in (text or {}).items():
            info.add_text(key, value)
        image.save(buf, "PNG", pnginfo=info, optimize=False, **profile)
    elif fmt == "jpeg":
        # JPEG has no text chunks: the same "key: value" lines go in its comment (COM) segment
        comment = "\n".join(f"{key}: {value}" for key, value in (text or {}).items()).encode()
        options = {"comment": comment} if comment else {}
        flatten(image).save(
            buf, "JPEG", quality=JPEG_QUALITY, subsampling=jpeg_subsampling or 0, optimize=True, **options, **profile
        )
    else:
        image.save(buf, "WEBP", quality=90, method=4, **profile)
    return buf.getvalue()


def decode_delivered(data: bytes) -> Image.Image:
    """A delivered file's pixels as a viewer shows them: decoded, and through its ICC profile to
    sRGB where it carries one that is not sRGB (Backdrop's own are sRGB: nothing to convert)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return to_srgb(image)


def provenance(image: Image.Image) -> str | None:
    """What made a decoded model output, if it says so (contracts.PROVENANCE_TEXT_KEY)."""
    value = image.info.get(contracts.PROVENANCE_TEXT_KEY)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[: contracts.MAX_PROVENANCE_LENGTH]


def encode_png(image: Image.Image) -> bytes:
    """Fast PNG for intermediates (requests, masks): size matters less than time here."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def decode_image(data: bytes) -> Image.Image:
    """Decode a model output image (bytes)."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ModelResponseInvalid(f"the model returned data that is not a readable image ({exc})") from exc
    return img


# A cut-out engine answers 0.9-0.99 deep inside a solid product (issue #27: 14-32 % of its solid
# pixels came back alpha 230-254): the new background shows faintly through it. Interior pixels
# at least SOLID_INSET_PX inside the half-opaque region and at SOLID_SNAP or more are made solid;
# a truly see-through subject (a glass lets 65 % or more through: alpha <= 90) is left alone.
SOLID_SNAP = 200
SOLID_INSET_PX = 3


def solid_interior(alpha: Image.Image) -> Image.Image:
    """`alpha` ("L") with its nearly solid interior made solid (the scorecard's solidInterior
    check measures what is left; bench/scorecard.py the share of truly solid pixels below 255)."""
    core = alpha.point([0] * 128 + [255] * 128)
    # eroded by SOLID_INSET_PX: a box blur stays 255 only where the whole box is (O(n), unlike MinFilter)
    core = core.filter(ImageFilter.BoxBlur(SOLID_INSET_PX)).point([0] * 255 + [255])
    snap = ImageChops.multiply(core, alpha.point([0] * SOLID_SNAP + [255] * (256 - SOLID_SNAP)))
    if snap.getbbox() is None:
        return alpha
    return ImageChops.lighter(alpha, snap)
