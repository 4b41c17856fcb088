"""The scorecard's calibration set: composites with a TRUE alpha, built here in seconds.

Method (documented in docs/quality.md#the-calibration-set). Every case is drawn by this script
from a seed; nothing is downloaded. A subject is a shape drawn 4x larger and reduced (an
anti-aliased edge, like a camera's), filled with a photo-like texture: a crop of one of the sample
photos in samples/ (public domain, samples/CREDITS.md) mixed with numpy noise blurred at two
scales. Its old background is another texture (a sample photo, a studio sweep, grey or white
paper with grain), its new background a plain colour or a third photo. The original is
`alpha * F + (1 - alpha) * B_old`, the perfect result `alpha * F + (1 - alpha) * B_new`, both
8-bit; half of the results are also JPEG-encoded (quality 95, 4:4:4 chroma: the setting that
keeps a delivered product's pixels, see docs/quality.md).

Categories (`CATEGORIES`): a single product, fur/hair (strands of partial opacity, each with its
own colour), transparent and thin (a glass whose body lets 65-85 % of the background through, a
thin cable), white on white, grey on grey, printed text, the subject touching the frame, two
kept objects, a busy background. Most originals also hold a background object that is NOT kept
(a distractor), so "extra object kept" can be injected.

The kept labels' boxes are the true subject's box per object, each side moved by up to 3 % of
the box (a detector is not pixel-exact).

`defects(case, rng)` injects one defect of each class into the perfect result (`DEFECTS`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZE = (320, 240)
SS = 3  # supersampling of the drawn alphas

CATEGORIES = (
    "single product",
    "fur/hair",
    "transparent/thin",
    "white on white",
    "grey on grey",
    "printed text",
    "at the frame",
    "two objects",
    "busy background",
)
DEFECTS = (
    "lost part",
    "extra object",
    "background unchanged",
    "shift",
    "colour change",
    "old-background ring",
    "see-through interior",
    "text changed",
)

Array = np.ndarray


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    original: Image.Image  # RGB
    alpha: Image.Image  # the true alpha, L
    result: Image.Image  # RGB: the perfect result (or a defective one)
    foreground: Array  # float 0..1 (H, W, 3): the true subject colour
    old: Array  # float 0..1: the old background
    new: Image.Image  # RGB: the new background
    boxes: tuple[tuple[float, float, float, float], ...]  # kept labels' boxes (fractions)
    solid: Array  # bool: the truly solid subject pixels (alpha == 255)
    distractor: Array | None  # bool: a background object that is not kept
    text_box: tuple[int, int, int, int] | None  # where printed text is on the subject
    jpeg: bool = False


_photo_cache: dict[str, Array] = {}


def _photo(name: str) -> Array:
    if name not in _photo_cache:
        _photo_cache[name] = np.asarray(Image.open(SAMPLES / f"{name}.jpg").convert("RGB"), dtype=np.float64) / 255
    return _photo_cache[name]


def _crop(name: str, rng: np.random.Generator, size: tuple[int, int] = SIZE) -> Array:
    photo = _photo(name)
    h, w = photo.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    cw, ch = int(w * scale), int(h * scale)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = Image.fromarray((photo[y : y + ch, x : x + cw] * 255).astype(np.uint8))
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR), dtype=np.float64) / 255


def _noise(rng: np.random.Generator, size: tuple[int, int], sigma: float) -> Array:
    """Grain: white noise blurred at `sigma` px, normalised to -1..1-ish, one per channel."""
    w, h = size
    out = []
    for _ in range(3):
        field = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))
        blurred = np.asarray(field.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float64)
        out.append((blurred - blurred.mean()) / (blurred.std() + 1e-6))
    return np.stack(out, axis=2)


def _texture(rng: np.random.Generator, base: tuple[float, float, float] | None, spread: float) -> Array:
    """Photo-like: a sample photo's crop (or a flat colour) with noise at a fine and a coarse scale."""
    if base is None:
        tex = _crop(PHOTOS[int(rng.integers(len(PHOTOS)))], rng)
    else:
        tex = np.ones((SIZE[1], SIZE[0], 3)) * np.array(base)
    tex = tex + spread * (0.4 * _noise(rng, SIZE, 1.5) + 0.6 * _noise(rng, SIZE, 10))
    return np.clip(tex, 0, 1)


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float) -> list[tuple[float, float]]:
    phases = rng.uniform(0, 2 * math.pi, 4)
    amps = rng.uniform(0.0, 0.08, 4)
    points = []
    for i in range(180):
        t = 2 * math.pi * i / 180
        wobble = 1 + sum(a * math.sin((k + 2) * t + p) for k, (a, p) in enumerate(zip(amps, phases, strict=True)))
        points.append(((cx + rx * wobble * math.cos(t)) * SS, (cy + ry * wobble * math.sin(t)) * SS))
    return points


def _reduce(big: Image.Image) -> Array:
    return np.asarray(big.resize(SIZE, Image.Resampling.BOX), dtype=np.float64) / 255


def _shape(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, rect: bool = False) -> Image.Image:
    big = Image.new("L", (SIZE[0] * SS, SIZE[1] * SS), 0)
    draw = ImageDraw.Draw(big)
    if rect:  # a box-like product with rounded corners
        draw.rounded_rectangle(
            ((cx - rx) * SS, (cy - ry) * SS, (cx + rx) * SS, (cy + ry) * SS),
            radius=int(min(rx, ry) * SS * 0.2),
            fill=255,
        )
    else:
        draw.polygon(_blob(rng, cx, cy, rx, ry), fill=255)
    return big


def _strands(rng: np.random.Generator, big: Image.Image, count: int, length: float) -> Image.Image:
    """Hair: thin curved strands growing out of the shape's outline, partly opaque."""
    mask = np.asarray(big.reduce(SS)) > 128
    edge = mask & ~np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))).astype(
        bool
    )
    ys, xs = np.nonzero(edge)
    if ys.size == 0:
        return big
    hair = Image.new("L", big.size, 0)
    draw = ImageDraw.Draw(hair)
    cy, cx = ys.mean(), xs.mean()
    for _ in range(count):
        i = int(rng.integers(ys.size))
        x, y = float(xs[i]), float(ys[i])
        angle = math.atan2(y - cy, x - cx) + rng.uniform(-0.6, 0.6)
        pts = [(x * SS, y * SS)]
        for _ in range(6):
            angle += rng.uniform(-0.3, 0.3)
            x += math.cos(angle) * length / 6 * rng.uniform(0.5, 1.2)
            y += math.sin(angle) * length / 6 * rng.uniform(0.5, 1.2)
            pts.append((x * SS, y * SS))
        draw.line(pts, fill=int(rng.integers(120, 256)), width=int(rng.integers(2, 6)))
    return Image.fromarray(np.maximum(np.asarray(big), np.asarray(hair)))


def _box(alpha: Array, rng: np.random.Generator) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(alpha >= 0.5)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    bw, bh = x1 - x0, y1 - y0
    jit = rng.uniform(-0.03, 0.03, 4)
    x0, x1 = max(0, x0 + jit[0] * bw), min(SIZE[0], x1 + jit[1] * bw)
    y0, y1 = max(0, y0 + jit[2] * bh), min(SIZE[1], y1 + jit[3] * bh)
    return (x0 / SIZE[0], y0 / SIZE[1], (x1 - x0) / SIZE[0], (y1 - y0) / SIZE[1])


def _u8(x: Array) -> Image.Image:
    return Image.fromarray(np.clip(np.round(x * 255), 0, 255).astype(np.uint8))


def _composite(alpha: Array, fg: Array, bg: Array) -> Array:
    a = alpha[..., None]
    return a * fg + (1 - a) * bg


def _jpeg(image: Image.Image, quality: int = 95) -> Image.Image:
    """A JPEG round trip as a delivered file keeps the product: quality 95, 4:4:4 chroma."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=0)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def make_case(category: str, index: int, seed: int = 0) -> Case:
    rng = np.random.default_rng([seed, CATEGORIES.index(category), index])
    w, h = SIZE
    text_box = None
    alpha_parts: list[Array] = []
    # the subject's place and size
    cx, cy = rng.uniform(0.38, 0.62) * w, rng.uniform(0.42, 0.6) * h
    rx, ry = rng.uniform(0.14, 0.22) * w, rng.uniform(0.22, 0.32) * h
    fg_base: tuple[float, float, float] | None = None
    old_base: tuple[float, float, float] | None = tuple(rng.uniform(0.55, 0.9, 3))  # a studio sweep
    spread_fg, spread_old = 0.08, 0.03
    if category == "white on white":
        fg_base, old_base, spread_fg, spread_old = (0.93, 0.93, 0.92), (0.96, 0.96, 0.96), 0.03, 0.015
    elif category == "grey on grey":
        fg_base, old_base, spread_fg, spread_old = (0.48, 0.48, 0.5), (0.5, 0.5, 0.5), 0.06, 0.03
    elif category == "busy background":
        old_base, spread_old = None, 0.03
    if category == "at the frame":  # touching the bottom and one side
        cx = rx * rng.uniform(0.5, 0.9) if rng.random() < 0.5 else w - rx * rng.uniform(0.5, 0.9)
        cy = h - ry * rng.uniform(0.5, 0.8)
    if category == "two objects":
        rx, ry = rx * 0.7, ry * 0.7
        big = _shape(rng, w * 0.28, cy, rx, ry, rect=True)
        big2 = _shape(rng, w * 0.72, cy + rng.uniform(-0.1, 0.1) * h, rx * 0.9, ry * 1.1)
        alpha_parts = [_reduce(big), _reduce(big2)]
    elif category == "transparent/thin":
        if index % 2 == 0:  # a glass: a solid rim and base, a body mostly see-through
            outer = _shape(rng, cx, cy, rx * 0.8, ry, rect=True)
            inner = Image.new("L", outer.size, 0)
            ImageDraw.Draw(inner).rounded_rectangle(
                ((cx - rx * 0.8 + 5) * SS, (cy - ry + 5) * SS, (cx + rx * 0.8 - 5) * SS, (cy + ry * 0.75) * SS),
                radius=int(rx * 0.1 * SS),
                fill=255,
            )
            body = rng.uniform(0.15, 0.35)
            a = _reduce(outer) * (1 - (1 - body) * _reduce(inner))
            alpha_parts = [a]
        else:  # a thin cable across the frame and a small plug
            big = Image.new("L", (w * SS, h * SS), 0)
            draw = ImageDraw.Draw(big)
            pts = [(x * SS, (cy + 40 * math.sin(x / 50 + index)) * SS) for x in np.linspace(w * 0.1, w * 0.9, 40)]
            draw.line(pts, fill=255, width=int(rng.uniform(2.5, 5) * SS))
            draw.rounded_rectangle(
                ((w * 0.8) * SS, (cy - 25) * SS, (w * 0.9) * SS, (cy + 25) * SS), radius=6 * SS, fill=255
            )
            alpha_parts = [_reduce(big)]
    else:
        big = _shape(rng, cx, cy, rx, ry, rect=category in ("printed text", "single product") and index % 2 == 0)
        if category == "fur/hair":
            big = _strands(rng, big, int(rng.integers(150, 400)), rng.uniform(12, 30))
            big = big.filter(ImageFilter.GaussianBlur(SS * 0.6))
        alpha_parts = [_reduce(big)]
    alpha = np.clip(sum(alpha_parts), 0, 1)
    fg = _texture(rng, fg_base, spread_fg)
    if category == "fur/hair":  # each strand its own colour: the fur's texture, coarser
        fg = np.clip(fg + 0.04 * _noise(rng, SIZE, 1.0), 0, 1)
    if category == "printed text":
        label = Image.new("L", SIZE, 0)
        draw = ImageDraw.Draw(label)
        font = ImageFont.load_default(size=int(rng.integers(14, 20)))
        words = ["ORGANIC", "500 ml", "BEST BEFORE", "No. 7", "EXTRA FINE", "LOT 42A"]
        x0, y0 = int(cx - rx * 0.7), int(cy - ry * 0.4)
        for k in range(3):
            draw.text((x0, y0 + k * 22), words[(index + k) % len(words)], fill=255, font=font)
        ink = np.asarray(label, dtype=np.float64)[..., None] / 255
        ink = ink * (alpha[..., None] >= 0.99)
        fg = fg * (1 - ink) + ink * np.array([0.08, 0.08, 0.1])
        text_box = label.getbbox()
    old = _texture(rng, old_base, spread_old)
    distractor = None
    if category not in ("two objects", "transparent/thin") and index % 3 != 2:
        # a background object (a cup on the table, a lamp): in the original, never kept
        side = 0.1 * w if cx > w / 2 else 0.9 * w
        d_alpha = _reduce(_shape(rng, side, h * rng.uniform(0.25, 0.5), w * 0.07, h * 0.12))
        d_alpha = d_alpha * (alpha < 0.01)
        d_colour = _texture(rng, tuple(rng.uniform(0.1, 0.8, 3)), 0.06)
        old = _composite(d_alpha, d_colour, old)
        distractor = d_alpha >= 0.5
    if index % 2 == 0:
        new_arr = np.ones((h, w, 3)) * (
            np.array([1.0, 1.0, 1.0]) if category == "white on white" else rng.uniform(0.05, 1.0, 3)
        )
    else:
        new_arr = _texture(rng, None, 0.02)
    original = _u8(_composite(alpha, fg, old))
    result = _u8(_composite(alpha, fg, new_arr))
    boxes = tuple(_box(part, rng) for part in alpha_parts)
    jpeg = index % 2 == 1
    if jpeg:
        result = _jpeg(result)
    return Case(
        f"{category} #{index}",
        category,
        original,
        _u8(alpha),
        result,
        fg,
        old,
        _u8(new_arr),
        boxes,
        np.asarray(_u8(alpha)) == 255,
        distractor,
        text_box,
        jpeg,
    )


def cases(per_category: int = 8, seed: int = 0) -> Iterator[Case]:
    for category in CATEGORIES:
        for index in range(per_category):
            yield make_case(category, index, seed)


# ------------------------------------------------------------------------------------ defects


def _result(case: Case, alpha: Array, fg: Array | None = None, bg: Array | None = None) -> Image.Image:
    fg = case.foreground if fg is None else fg
    bg = np.asarray(case.new, dtype=np.float64) / 255 if bg is None else bg
    out = _u8(_composite(alpha, fg, bg))
    return _jpeg(out) if case.jpeg else out


RING_MIN_CONTRAST = 10.0  # ΔE: below, a ring of the old background cannot be told from the product


def _edge_contrast(case: Case) -> float:
    """Median ΔE between the true subject colour and the old background along the true edge."""
    from chalicelib.imaging.quality import delta_e_2000, srgb_to_lab

    a = np.asarray(case.alpha)
    edge = (a >= 128) & (np.asarray(case.alpha.filter(ImageFilter.MinFilter(5))) < 128)
    if not edge.any():
        return 0.0
    return float(np.median(delta_e_2000(srgb_to_lab(case.foreground[edge]), srgb_to_lab(case.old[edge]))))


def inject(case: Case, defect: str, rng: np.random.Generator) -> Case | None:
    """`case` with one defect in its delivered result / alpha; None where the class does not apply."""
    a = np.asarray(case.alpha, dtype=np.float64) / 255
    h, w = a.shape
    if defect == "lost part":  # a quarter to a third of the subject gone from one side
        ys, xs = np.nonzero(a >= 0.5)
        side = int(rng.integers(4))
        cut = rng.uniform(0.25, 0.35)
        lost = a.copy()
        if side == 0:
            lost[: int(ys.min() + cut * (ys.max() - ys.min())), :] = 0
        elif side == 1:
            lost[int(ys.max() - cut * (ys.max() - ys.min())) :, :] = 0
        elif side == 2:
            lost[:, : int(xs.min() + cut * (xs.max() - xs.min()))] = 0
        else:
            lost[:, int(xs.max() - cut * (xs.max() - xs.min())) :] = 0
        return replace(case, alpha=_u8(lost), result=_result(case, lost))
    if defect == "extra object":  # the background object kept as well
        if case.distractor is None:
            return None
        orig = np.asarray(case.original, dtype=np.float64) / 255
        grown = np.asarray(
            Image.fromarray(case.distractor.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3)), dtype=np.float64
        )
        extra = np.maximum(a, grown / 255 * (a < 0.01))
        fg = np.where((a < 0.01)[..., None], orig, case.foreground)
        return replace(case, alpha=_u8(extra), result=_result(case, extra, fg))
    if defect == "background unchanged":  # the model gave the original back
        return replace(case, result=_jpeg(case.original, 92) if case.jpeg else case.original)
    if defect == "shift":  # the subject drawn 1-3 % of the frame away from where the cut-out says
        dx, dy = (int(v) for v in rng.integers(-1, 2, 2) * rng.integers(4, 10, 2))
        if dx == 0 and dy == 0:
            dx = 7
        moved_a = np.roll(a, (dy, dx), axis=(0, 1))
        moved_f = np.roll(case.foreground, (dy, dx), axis=(0, 1))
        return replace(case, result=_result(case, moved_a, moved_f))
    if defect == "colour change":  # a visible cast on the product: each channel 10-15 % up or down
        gain = np.array([1, 1, 1]) + rng.choice([-1, 1], 3) * rng.uniform(0.1, 0.15, 3)
        fg = np.clip(case.foreground * gain, 0, 1)
        return replace(case, result=_result(case, a, fg))
    if defect == "old-background ring":  # the cut-out 3 px too wide: the old background pasted round it
        if _edge_contrast(case) < RING_MIN_CONTRAST:
            return None  # a ring the product's own colour reads as the product: nothing to catch
        wide = np.asarray(case.alpha.filter(ImageFilter.MaxFilter(7)), dtype=np.float64) / 255
        orig = np.asarray(case.original, dtype=np.float64) / 255
        out = _composite(wide, orig, np.asarray(case.new, dtype=np.float64) / 255)
        result = _u8(out)
        return replace(case, alpha=_u8(wide), result=_jpeg(result) if case.jpeg else result)
    if defect == "see-through interior":  # a part of the solid product made 10-35 % see-through
        solid = case.solid
        if solid.sum() < 400:
            return None
        ys, xs = np.nonzero(solid)
        cy, cx = ys.mean() + rng.normal(0, 5), xs.mean() + rng.normal(0, 5)
        ry, rx = (ys.max() - ys.min()) * rng.uniform(0.3, 0.45), (xs.max() - xs.min()) * rng.uniform(0.3, 0.45)
        yy, xx = np.mgrid[0:h, 0:w]
        region = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1) & solid
        see = a.copy()
        see[region] = rng.uniform(0.65, 0.9)
        return replace(case, alpha=_u8(see), result=_result(case, see))
    if defect == "text changed":  # the printed text re-drawn wrong
        if case.text_box is None:
            return None
        x0, y0, x1, y1 = case.text_box
        fg = case.foreground.copy()
        patch = fg[y0:y1, x0:x1]
        fg[y0:y1, x0:x1] = np.roll(patch, int(rng.integers(6, 12)), axis=1)  # letters moved along the line
        return replace(case, result=_result(case, a, fg))
    raise ValueError(defect)
