"""Subject fidelity: the product's pixels in the delivered file against the original's, and the
colour maths (CIE Lab, CIEDE2000) the scorecard's checks share.

A JPEG result is measured without decoding the whole delivered file (~90 ms of CPU at 12 MP,
~180 ms at 24 MP). A baseline JPEG at 4:4:4 codes every 8x8 block on its own: the
block's 64 pixels go through the colour transform, the DCT and the quantisation tables (set by the
quality) alone; only the DC coefficient is coded as a difference from the previous block's, and
that coding is lossless. No chroma subsampling means no upsampling across blocks on decoding, and
a baseline file gets no inter-block smoothing (libjpeg applies that to progressive scans only). So
a mosaic of some of the result's 8-aligned blocks, encoded with the delivered file's encoder and
settings (`images.encode`) and decoded as a viewer would (`images.decode_delivered`), holds bit for
bit what the delivered file holds in those blocks: tests/unit/test_fidelity.py checks it against
the whole file (docs/aws-notes.md#n113-a-baseline-444-jpeg-block-decodes-from-its-own-pixels).
The fidelity figure is measured on a regular sample of the product's blocks
(DELIVERED_SAMPLES pixels at most), every block when there are fewer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.core.scorecard import Check, CheckName, Outcome, Thresholds

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

    Colours = npt.NDArray[np.float64]  # (N, 3)

INFINITY = "Infinity"  # JSON has no infinity; float("Infinity") and Number("Infinity") read this back
DELTA_E_SAMPLES = 200_000  # mean ΔE over the product: a regular sample of at most this many pixels
# A JPEG's product is measured on a regular sample of its 8x8 blocks of at most this many pixels
# (3,072 blocks): on tests/unit/test_fidelity.py's photo the sample's PSNR is within 0.1 dB of the
# whole product's (tested), and its encode and decode cost a few ms, where decoding the whole delivered
# file cost ~90 ms at 12 MP and ~180 ms at 24 MP.
DELIVERED_SAMPLES = 196_608
# ... and its mean ΔE (CIEDE2000 costs ~0.5 us a pixel) on every n-th of those pixels, at most this many
DELIVERED_DELTA_E_SAMPLES = 32_768
JPEG_BLOCK = 8  # px: a JPEG's block at 4:4:4 (its MCU)


# ------------------------------------------------------------------------------------ colour


_SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_D65_WHITE = (0.95047, 1.0, 1.08883)
_LINEAR_LUT: Any = None  # sRGB's 256 8-bit levels, linearised once (the same float64 formula)


def _linear(values: Any) -> Any:
    import numpy as np

    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def srgb_to_lab(rgb: npt.NDArray[Any]) -> Colours:
    """CIE L*a*b* (D65) of sRGB colours, (N, 3) in 0..1 or 0..255 uint8. 8-bit colours are
    linearised through a 256-entry table (the power of 2.4 per value was most of the cost)."""
    import numpy as np

    global _LINEAR_LUT
    source = np.asarray(rgb)
    if source.dtype == np.uint8:
        if _LINEAR_LUT is None:
            _LINEAR_LUT = _linear(np.arange(256, dtype=np.float64) / 255.0)
        linear = _LINEAR_LUT[source]
    else:
        linear = _linear(source.astype(np.float64, copy=False))
    # three multiply-adds, not `linear @ matrix`: a (N, 3) x (3, 3) product goes to OpenBLAS, whose
    # threads cost ~10x the arithmetic in CPU, far more in wall time (docs/aws-notes.md#n114-openblas-threads-and-small-matrix-products)
    to_xyz = np.array(_SRGB_TO_XYZ) / np.array(_D65_WHITE)[:, None]
    xyz = linear[:, 0:1] * to_xyz[:, 0] + linear[:, 1:2] * to_xyz[:, 1] + linear[:, 2:3] * to_xyz[:, 2]
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116.0 * f[:, 1] - 16.0, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], axis=1)


def delta_e_2000(lab1: npt.NDArray[Any], lab2: npt.NDArray[Any]) -> Colours:
    """CIEDE2000 colour difference of each pair of Lab colours (N, 3) (Sharma, Wu, Dalal 2005)."""
    import numpy as np

    l1, a1, b1 = np.asarray(lab1, dtype=np.float64).T
    l2, a2, b2 = np.asarray(lab2, dtype=np.float64).T
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    chroma_zero = c1p * c2p == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_mean = np.where(chroma_zero, h_sum, h_mean)
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    difference: Colours = np.sqrt(
        (d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)
    )
    return difference


def mean_delta_e(first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8]) -> float:
    """Mean CIEDE2000 of pairs of 8-bit sRGB colours (N, 3); identical pairs count 0 uncomputed."""
    import numpy as np

    if first.shape[0] == 0:
        return 0.0
    differ = np.any(first != second, axis=1)
    if not differ.any():
        return 0.0
    total = float(delta_e_2000(srgb_to_lab(first[differ]), srgb_to_lab(second[differ])).sum())
    return total / first.shape[0]


# ------------------------------------------------------------------------------------ pixels


def erode(mask: Image.Image, px: int) -> Image.Image:
    """Shrink a 0/255 mask by at least `px` (<= 10): a box blur stays 255 only where the whole box
    is. A large mask is shrunk at half resolution (a half-size pixel is 255 only if its four are),
    which erodes a pixel or two more, four times cheaper."""
    from PIL import Image, ImageFilter

    if px <= 0:
        return mask
    if mask.width * mask.height <= 1_000_000:
        return mask.filter(ImageFilter.BoxBlur(px)).point([0] * 255 + [255])
    half = mask.reduce(2).point([0] * 255 + [255])
    half = half.filter(ImageFilter.BoxBlur(math.ceil(px / 2))).point([0] * 255 + [255])
    return half.resize(mask.size, Image.Resampling.NEAREST)


def sampled(
    images: Sequence[Image.Image], box: tuple[int, int, int, int], max_pixels: int
) -> list[npt.NDArray[np.uint8]]:
    """The same regular grid of pixels from each image (nearest-neighbour), as numpy arrays."""
    import numpy as np
    from PIL import Image

    width, height = box[2] - box[0], box[3] - box[1]
    step = max(1, math.ceil(math.sqrt(width * height / max_pixels)))
    size = (max(1, width // step), max(1, height // step))
    return [
        np.asarray(img.crop(box) if size == (width, height) else img.resize(size, Image.Resampling.NEAREST, box=box))
        for img in images
    ]


def crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`image.crop(box)`, but the image itself when the box is the whole frame (a crop copies)."""
    return image if box == (0, 0, *image.size) else image.crop(box)


@dataclass(frozen=True)
class JpegDelivery:
    """The result is delivered as `images.encode` writes a JPEG (quality 95, 4:4:4, baseline),
    tagged with `icc_profile`: its product is measured through that encoder, block by block."""

    icc_profile: bytes | None = None


def jpeg_block_sample(
    result: Image.Image,
    original: Image.Image,
    inner: Image.Image,
    origin: tuple[int, int],
    delivery: JpegDelivery,
    max_pixels: int | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], bool]:
    """(the delivered file's pixels, the original's) at the interior pixels (`inner` > 0, a mask
    whose top-left corner is at `origin` of the frame, both multiples of JPEG_BLOCK, and whose
    size is whole blocks inside the frame) of a regular sample of the blocks, each (N, 3) uint8;
    and whether every block with an interior pixel was measured."""
    import numpy as np
    from PIL import Image

    from chalicelib.imaging import images

    b = JPEG_BLOCK
    max_pixels = max_pixels or DELIVERED_SAMPLES
    cols = inner.width // b
    # blocks with any interior pixel (a block's mean above 0), then a regular grid of them: every
    # `step`-th block row and column (a fractional step, so the sample comes near max_pixels)
    touched = np.asarray(inner.reduce(b)) > 0
    count = int(touched.sum())
    step = max(1.0, math.sqrt(count * b * b / max_pixels))
    chosen = np.zeros_like(touched)
    rows_at = np.unique((np.arange(step / 2, touched.shape[0], step)).astype(np.intp))
    cols_at = np.unique((np.arange(step / 2, touched.shape[1], step)).astype(np.intp))
    chosen[np.ix_(rows_at, cols_at)] = True
    chosen &= touched
    if step == 1.0 or not chosen.any():
        chosen = touched
    strips: list[list[npt.NDArray[np.uint8]]] = [[], [], []]
    for row in np.nonzero(chosen.any(axis=1))[0].tolist():
        picked = np.nonzero(chosen[row])[0]
        y = row * b
        for which, (image, (left, top)) in enumerate(((result, origin), (original, origin), (inner, (0, 0)))):
            strip = np.asarray(image.crop((left, top + y, left + cols * b, top + y + b)))
            channels = strip.shape[2] if strip.ndim == 3 else 1
            # (b, cols, b, channels) -> the picked blocks (k, b, b, channels)
            blocks = strip.reshape(b, cols, b, channels)[:, picked].transpose(1, 0, 2, 3)
            strips[which].append(blocks)
    ours, theirs, where = (np.concatenate(parts) for parts in strips)
    n = ours.shape[0]
    side = math.ceil(math.sqrt(n))
    tiles = np.zeros((side * side, b, b, 3), dtype=np.uint8)
    tiles[:n] = ours
    mosaic = tiles.reshape(side, side, b, b, 3).transpose(0, 2, 1, 3, 4).reshape(side * b, side * b, 3)
    body = images.encode(Image.fromarray(mosaic, "RGB"), "jpeg", icc_profile=delivery.icc_profile)
    shown = np.asarray(images.decode_delivered(body).convert("RGB"))
    delivered = shown.reshape(side, b, side, b, 3).transpose(0, 2, 1, 3, 4).reshape(side * side, b, b, 3)[:n]
    inside = where[..., 0] > 0
    return delivered[inside], theirs[inside], bool(chosen.sum() == count)


def subject_fidelity(
    original: Image.Image,
    result: Image.Image,
    alpha: Image.Image,
    limits: Thresholds,
    delivery: JpegDelivery | None = None,
) -> Check:
    """The product's interior (solid, away from its edge) in `result` against `original`: PSNR and
    mean CIEDE2000. `result` is the delivered file's pixels, or with `delivery` the pixels that
    file was encoded from (its product is then measured through the encoder, on a block sample)."""
    import numpy as np
    from PIL import ImageChops

    name = CheckName.SUBJECT_FIDELITY
    solid = alpha.point([0] * 255 + [255])
    erode_px = min(10, max(2, round(max(alpha.size) / 1000)))
    bbox = solid.getbbox()
    if bbox is not None:
        # with a margin, so the blur sees zeros around the subject; at the frame's border the blur
        # copies the border, which is right: the subject goes on out of the frame, it has no edge there
        margin = erode_px + 2
        bbox = (
            max(0, bbox[0] - margin),
            max(0, bbox[1] - margin),
            min(alpha.width, bbox[2] + margin),
            min(alpha.height, bbox[3] + margin),
        )
        if delivery is not None:  # whole JPEG blocks: the box starts on the block grid, ends inside the frame
            b = JPEG_BLOCK
            bbox = (
                bbox[0] // b * b,
                bbox[1] // b * b,
                min(-(-bbox[2] // b) * b, alpha.width // b * b),
                min(-(-bbox[3] // b) * b, alpha.height // b * b),
            )
            if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
                bbox = None
    inner = erode(solid.crop(bbox), erode_px) if bbox else None
    if bbox is None or inner is None or inner.getbbox() is None:
        return Check(
            name,
            Outcome.WARN,
            "Not measured: the product has no solid interior to compare (it is too thin or all soft edge).",
        )
    if delivery is not None:
        shown, own, complete = jpeg_block_sample(result, original, inner, bbox[:2], delivery)
        count = int(shown.shape[0])
        squared = int(((shown.astype(np.int32) - own.astype(np.int32)) ** 2).sum()) if count else 0
        if squared == 0 and not complete:
            # "identical" is said of every pixel only: a sample cannot say it
            return subject_fidelity(original, _delivered(result, delivery), alpha, limits)
    else:
        # exact over every interior pixel: a histogram of the absolute differences, in C
        difference = ImageChops.difference(crop(result, bbox), crop(original, bbox))
        histogram = difference.histogram(mask=inner)
        count = sum(histogram[:256])
        squared = sum(n * (v % 256) ** 2 for v, n in enumerate(histogram) if n)
    if squared == 0:
        return Check(
            name,
            Outcome.PASS,
            "Product untouched: every pixel of the product is the original's (PSNR ∞, ΔE 0).",
            {"psnrDb": INFINITY, "deltaE": 0.0, "identical": True, "pixels": count},
        )
    psnr = 10 * math.log10(255.0**2 * 3 * count / squared)
    if delivery is not None:
        every = max(1, math.ceil(shown.shape[0] / DELIVERED_DELTA_E_SAMPLES))
        delta_e = mean_delta_e(shown[every // 2 :: every], own[every // 2 :: every])
    else:
        # mean colour difference on a regular sample of the interior (identical pixels count as 0)
        res, orig, mask = sampled(
            [crop(result, bbox), crop(original, bbox), inner], (0, 0, *inner.size), DELTA_E_SAMPLES
        )
        inside = mask > 0
        delta_e = mean_delta_e(res[inside], orig[inside])
    metrics = {"psnrDb": round(psnr, 2), "deltaE": round(delta_e, 2), "identical": False, "pixels": count}
    if psnr < limits.subject_psnr_fail_db or delta_e > limits.subject_delta_e_fail:
        outcome, words = Outcome.FAIL, "Product changed visibly"
    elif psnr < limits.subject_psnr_warn_db or delta_e > limits.subject_delta_e_warn:
        outcome, words = Outcome.WARN, "Product changed slightly"
    else:
        outcome, words = Outcome.PASS, "Product unchanged to the eye"
    return Check(name, outcome, f"{words} (PSNR {psnr:.1f} dB, mean colour shift ΔE {delta_e:.1f}).", metrics)


def _delivered(result: Image.Image, delivery: JpegDelivery) -> Image.Image:
    """The whole delivered file's pixels (encoded and decoded): the rare case a sample cannot settle."""
    from chalicelib.imaging import images

    return images.decode_delivered(images.encode(result, "jpeg", icc_profile=delivery.icc_profile))
