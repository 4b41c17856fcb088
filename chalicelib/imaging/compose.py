"""Compositing: the subject, with its cut-out's soft alpha, over a new background.

Four parts, each usable alone:

- `estimate_foreground`: the subject's true colours in its soft edge. A pixel where alpha is
  between 0 and 1 is a mix of the subject and the *old* background; pasting it as it is carries a
  fringe of the old background into the new picture. The estimate removes that share.
- `fill_background`: a smooth fill of the part of a background that still shows the old scene
  (the band the inpainting model was told to keep), so the soft edge blends into the new scene.
- `cast_shadow`: a soft drop shadow or a contact shadow drawn from the subject's mask.
- `compose`: all of it, plus the harmonise blend (1 = the original subject's pixels, 0 = the
  model's re-lit subject).

Invariant (tested): with blend 1, every pixel where alpha is 255 is the original's, bit for bit.

The foreground estimate is "push-pull" interpolation of the sure-subject and sure-background
colours into the edge (a masked image pyramid), followed by the per-pixel correction of blur-fusion
foreground estimation (Forte and Pitie, 2021). It was chosen over pymatting's multi-level
estimator by measurement: on the quality benchmark it is as good or better at the edge, it needs
numpy only, and pymatting's dependencies (numba, llvmlite, scipy) exceed Lambda's 250 MB
unzipped limit and compile for tens of seconds on a cold start (docs/quality.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from chalicelib.core.contracts import ShadowKind
from chalicelib.imaging.images import flatten  # a transparent original is flattened onto white, as the model saw it
from chalicelib.imaging.regions import objects as objects  # the kept objects, each with its own contact shadow

Floats = npt.NDArray[np.float32]  # colours (..., 3) and alphas, 0..1
Pixels = npt.NDArray[np.intp]  # row or column indices of pixels

# A pixel at or above FOREGROUND_SURE is taken as a sample of the subject's own colour, at or below
# BACKGROUND_SURE as a sample of the old background (0..255 alpha).
FOREGROUND_SURE = 230
BACKGROUND_SURE = 25
# The subject's colour field trusts a pixel from this alpha (0..1) on, fully from the next.
SUBJECT_TRUST_FROM = 0.2
SUBJECT_TRUST_FULL = 0.9
# The colour fields are smooth, so they are estimated at no more than this many pixels and scaled
# up; the per-pixel correction runs at full resolution on the edge pixels only.
WORK_PIXELS = 500_000
# The fill under the edge is a smooth extension of the new scene: a coarser field will do.
FILL_WORK_PIXELS = WORK_PIXELS // 4
# How far the edge's bounding box is widened for the fields' context (fraction of the long side).
CONTEXT_FRACTION = 0.04
# Where the subject's colour and the old background's are this close (RGB distance of their smooth
# fields, 0..1 scale) unmixing cannot tell them apart, and a plain paste of the original pixel
# carries almost none of the old background (its error is alpha * (1 - alpha) * that distance):
# the edge keeps the original pixel there, blended in between LOW and HIGH (issue 27: grey on grey,
# decontamination was measured up to 3.3 dB below a paste). On bench/edges.py's composites the
# decontamination never lost to a paste, and these bounds move the edge by -0.3..+0.3 dB there;
# wider bounds cost up to 2 dB on grey-on-grey (docs/quality.md).
FALLBACK_CONTRAST_LOW = 0.02
FALLBACK_CONTRAST_HIGH = 0.06


@dataclass(frozen=True)
class Shadow:
    """A shadow under the subject. `angle` is the direction the shadow falls, in degrees clockwise
    from pointing right (90 = straight down, 45 = down and to the right); `strength` is its
    opacity where darkest, 0..1."""

    kind: ShadowKind = ShadowKind.NONE
    angle: float = 90.0
    strength: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ShadowKind(self.kind))
        if not 0.0 <= self.strength <= 1.0 or not math.isfinite(self.strength):
            raise ValueError(f"shadow strength must be between 0 and 1, not {self.strength}")
        if not math.isfinite(self.angle):
            raise ValueError(f"shadow angle must be a number of degrees, not {self.angle}")


NO_SHADOW = Shadow()


# ------------------------------------------------------------------------------------ helpers


def _grey(image: Image.Image) -> Image.Image:
    return image if image.mode == "L" else image.convert("L")  # convert would copy an "L" image


def _crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`image.crop(box)`, or the image itself when the box is the whole frame (a crop copies it)."""
    return image if box == (0, 0, *image.size) else image.crop(box)


def _flat(image: Image.Image, box: tuple[int, int, int, int]) -> npt.NDArray[np.uint8]:
    """The pixels of `image` inside `box`, (h * w, bands) uint8, row-major: through tobytes, about
    half what np.asarray costs on a 12 MP frame (it adds a copy)."""
    region = _crop(image, box)
    return np.frombuffer(region.tobytes(), dtype=np.uint8).reshape(-1, len(region.getbands()))


def _at(image: Image.Image, edge: Edge) -> npt.NDArray[np.uint8]:
    """`image`'s pixels at the edge's pixels, (N, bands) uint8."""
    return np.take(_flat(image, edge.box), edge.index, axis=0)


def _check_sizes(size: tuple[int, int], **images: Image.Image | None) -> None:
    for name, image in images.items():
        if image is not None and image.size != size:
            raise ValueError(f"{name} is {image.size[0]}x{image.size[1]}, expected {size[0]}x{size[1]}")


def _context_box(bbox: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """`bbox` widened so the colour fields see the surroundings, within the image."""
    margin = 8 + round(CONTEXT_FRACTION * max(size))
    return (
        max(0, bbox[0] - margin),
        max(0, bbox[1] - margin),
        min(size[0], bbox[2] + margin),
        min(size[1], bbox[3] + margin),
    )


def _halve(values: Floats) -> Floats:
    """Sum of each 2x2 block (odd edges padded with zeros, i.e. no samples)."""
    h, w = values.shape[:2]
    if h % 2 or w % 2:
        pad = [(0, h % 2), (0, w % 2)] + [(0, 0)] * (values.ndim - 2)
        values = np.pad(values, pad)
    return values[0::2, 0::2] + values[1::2, 0::2] + values[0::2, 1::2] + values[1::2, 1::2]


def _upsample(field: Floats, shape: tuple[int, int]) -> Floats:
    h, w = shape
    channels = [
        np.asarray(Image.fromarray(field[..., c]).resize((w, h), Image.Resampling.BILINEAR))
        for c in range(field.shape[2])
    ]
    return np.stack(channels, axis=-1)


def push_pull(rgb: Floats, samples: npt.NDArray[np.bool_] | Floats) -> Floats | None:
    """Fill every pixel with the colour of the nearest samples (a masked image pyramid).

    `rgb` is float32 (h, w, 3); `samples` (h, w) says how much each pixel is to be trusted: a
    boolean mask, or weights 0..1. A fully trusted pixel keeps its colour; elsewhere the colour
    comes from the coarsest level that has samples nearby, so the fill is smooth and local. None
    if there is no sample at all."""
    weight = samples.astype(np.float32)
    if not weight.any():
        return None
    num, den = rgb * weight[..., None], weight
    levels = []
    while den.shape[0] > 1 or den.shape[1] > 1:
        levels.append((num, den))
        num, den = _halve(num), _halve(den)
    field = num / den[..., None]
    for num, den in reversed(levels):
        coarse = _upsample(field.astype(np.float32), den.shape)
        known = np.minimum(den, 1.0)[..., None]
        field = known * (num / np.maximum(den, 1e-6)[..., None]) + (1.0 - known) * coarse
    return field.astype(np.float32)


class WorkGrid:
    """A full-resolution region and its working-resolution copy (at most `work_pixels`)."""

    def __init__(self, size: tuple[int, int], work_pixels: int) -> None:
        width, height = size
        scale = min(1.0, math.sqrt(work_pixels / (width * height)))
        self.size = size
        self.small = (max(1, round(width * scale)), max(1, round(height * scale)))

    def shrink(self, image: Image.Image) -> Image.Image:
        return image if image.size == self.small else image.resize(self.small, Image.Resampling.BOX)

    def sample(self, field: Floats, ys: Pixels, xs: Pixels) -> Floats:
        """Bilinear values of a working-resolution `field` at full-resolution pixels (ys, xs):
        only the pixels asked for are computed, a thin edge rather than the whole region."""
        h, w = field.shape[:2]
        fy = (ys.astype(np.float32) + 0.5) * np.float32(h / self.size[1]) - 0.5
        fx = (xs.astype(np.float32) + 0.5) * np.float32(w / self.size[0]) - 0.5
        np.clip(fy, 0, h - 1, out=fy)
        np.clip(fx, 0, w - 1, out=fx)
        y0, x0 = fy.astype(np.intp), fx.astype(np.intp)
        # float32 weights: an intp operand would promote every (N, C) product to float64
        wy, wx = (fy - y0.astype(np.float32))[:, None], (fx - x0.astype(np.float32))[:, None]
        # flat indices and np.take: several times faster than 2-D fancy indexing
        flat = field.reshape(h * w, -1)
        top, left = y0 * w, x0
        down, right = np.where(y0 + 1 < h, w, 0), np.where(x0 + 1 < w, 1, 0)
        near = np.take(flat, top + left, axis=0)
        near_right = np.take(flat, top + left + right, axis=0)
        far = np.take(flat, top + down + left, axis=0)
        far_right = np.take(flat, top + down + left + right, axis=0)
        values: Floats = (near + (near_right - near) * wx) * (1 - wy) + (far + (far_right - far) * wx) * wy
        return values


def _colour_fields(rgb: Floats, alpha: Floats) -> tuple[Floats | None, Floats | None]:
    """(subject colour, old background colour) fields, float32 (h, w, 3), from `rgb` and its
    `alpha` (0..1).

    The old background comes from the nearly pure background pixels. A "sure" pixel still holds a
    little of the other side (alpha 0.9 is 10% background), so each side's samples are unmixed
    with the other side's first estimate. The subject's colour then comes from every pixel that
    is at least partly subject, unmixed and trusted more the more solid it is: a strand of hair
    keeps its own colour along its length instead of taking the body's."""
    a = alpha[..., None]
    sure_subject, sure_background = alpha >= FOREGROUND_SURE / 255, alpha <= BACKGROUND_SURE / 255
    background = push_pull(rgb, sure_background)
    if background is None:
        return push_pull(rgb, sure_subject), None
    body = push_pull(_unmix(rgb, a, background), sure_subject)
    if body is None:
        return None, background
    refined = push_pull(np.clip((rgb - a * body) / np.maximum(1 - a, 1e-3), 0, 1), sure_background)
    background = refined if refined is not None else background  # the same samples: never None here
    trust = np.clip((alpha - SUBJECT_TRUST_FROM) / (SUBJECT_TRUST_FULL - SUBJECT_TRUST_FROM), 0, 1) ** 2
    return push_pull(_unmix(rgb, a, background), trust), background


def _unmix(rgb: Floats, a: Floats, background: Floats) -> Floats:
    """The subject's colour if the pixel is `a` subject over `background`."""
    colours: Floats = np.clip((rgb - (1 - a) * background) / np.maximum(a, 1e-3), 0, 1)
    return colours


# 255 where 0 < alpha < 255: a lookup table for Image.point, which runs in C
_EDGE_LUT = [0] + [255] * 254 + [0]


@dataclass(frozen=True)
class Edge:
    """The soft edge of a subject: its pixels (ys, xs) inside `box` (x0, y0, x1, y1) of the image,
    their alpha (N, 1) and the subject's own colours estimated there (N, 3), float32 0..1.
    Working inside the edge's bounding box keeps the numpy copies of a 12 MP image small."""

    box: tuple[int, int, int, int]
    ys: Pixels
    xs: Pixels
    alpha: Floats
    colours: Floats
    index: Pixels  # ys * box width + xs: where each pixel is in the box's row-major pixels


def _local_contrast(subject: Floats, background: Floats, levels: int = 3) -> Floats:
    """(h, w, 1): the distance between the subject's and the old background's colours, each
    averaged over 2**levels pixel blocks first, so a textured subject's own grain does not read as
    contrast (the fields keep each sure pixel's own colour)."""
    difference = subject - background
    shape = (difference.shape[0], difference.shape[1])
    weight: Floats = np.ones(shape, dtype=np.float32)
    for _ in range(levels):
        if difference.shape[0] < 2 or difference.shape[1] < 2:
            break
        difference, weight = _halve(difference), _halve(weight)
    mean = (difference / weight[..., None]).astype(np.float32)
    distance = np.sqrt(np.sum(mean**2, axis=2, keepdims=True)).astype(np.float32)
    return _upsample(distance, shape)


def estimate_edge(image: Image.Image, alpha: Image.Image, *, work_pixels: int = WORK_PIXELS) -> Edge | None:
    """The subject's own colours in its soft edge, or None if the alpha has no soft edge.

    `image` is RGB, `alpha` "L" of the same size (255 = subject). The old background's share of
    each edge pixel is removed: the smooth colours of the sure subject and the sure old background
    are pulled into the edge (at `work_pixels` resolution), then each pixel keeps the detail they
    do not explain."""
    bbox = alpha.point(_EDGE_LUT).getbbox()
    if bbox is None:
        return None
    edge_alpha = _flat(alpha, bbox)[:, 0]
    # flat indices and np.take: several times cheaper than np.nonzero and 2-D fancy indexing
    index = np.flatnonzero((edge_alpha - np.uint8(1)) < 254)  # uint8 wrap-around: 0 and 255 fall outside
    ys, xs = np.divmod(index, bbox[2] - bbox[0])
    a = (np.take(edge_alpha, index).astype(np.float32) / 255.0)[:, None]
    observed = np.take(_flat(image, bbox), index, axis=0).astype(np.float32) / 255.0
    box = _context_box(bbox, image.size)
    grid = WorkGrid((box[2] - box[0], box[3] - box[1]), work_pixels)
    small_rgb = np.asarray(grid.shrink(_crop(image, box)), dtype=np.float32) / 255.0
    small_alpha = np.asarray(grid.shrink(_crop(alpha, box)))
    subject, background = _colour_fields(small_rgb, small_alpha.astype(np.float32) / 255.0)
    if background is None:  # no old background anywhere near: nothing to remove
        return Edge(bbox, ys, xs, a, observed, index)
    field_ys, field_xs = ys + (bbox[1] - box[1]), xs + (bbox[0] - box[0])
    if subject is not None:  # the fields in one pass: the indices and weights are computed once
        fields = [subject, background]
        if FALLBACK_CONTRAST_HIGH > 0:
            fields.append(_local_contrast(subject, background))
        both = grid.sample(np.concatenate(fields, axis=2), field_ys, field_xs)
        f, b = both[:, :3], both[:, 3:6]
        contrast = both[:, 6:7] if FALLBACK_CONTRAST_HIGH > 0 else None
    else:
        f, b, contrast = observed, grid.sample(background, field_ys, field_xs), None
    # blur-fusion correction: what the smooth subject colour does not explain in the observed
    # pixel is the subject's own detail, weighted so a faint pixel leans on the smooth estimate
    # (its own colour is mostly the old background's)
    colours = f + np.sqrt(a) * (observed - a * f - (1.0 - a) * b)
    if contrast is not None:
        # low contrast between the subject and the old background: the original pixel, as pasted
        span = max(FALLBACK_CONTRAST_HIGH - FALLBACK_CONTRAST_LOW, 1e-6)
        trust = np.clip((contrast - FALLBACK_CONTRAST_LOW) / span, 0.0, 1.0)
        colours = observed + trust * (colours - observed)
    return Edge(bbox, ys, xs, a, np.clip(colours, 0.0, 1.0), index)


def _to_uint8(values: Floats) -> npt.NDArray[np.uint8]:
    return np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _replace(image: Image.Image, edge: Edge, colours: Floats, *, in_place: bool = False) -> Image.Image:
    """`image` (a copy unless `in_place`) with the edge pixels set to `colours` (N, 3, 0..1)."""
    pixels = _flat(image, edge.box).copy()  # frombuffer is read-only
    pixels[edge.index] = _to_uint8(colours)
    width, height = edge.box[2] - edge.box[0], edge.box[3] - edge.box[1]
    patch = Image.frombytes("RGB", (width, height), pixels.tobytes())
    if edge.box == (0, 0, *image.size):  # the whole frame: the patch is the result, no paste
        return patch
    result = image if in_place else image.copy()
    result.paste(patch, edge.box[:2])
    return result


def estimate_foreground(image: Image.Image, alpha: Image.Image, *, work_pixels: int = WORK_PIXELS) -> Image.Image:
    """The subject's own colours (RGB): `image` everywhere except in the soft edge, where the old
    background's share is removed (`estimate_edge`)."""
    image = flatten(image)
    alpha = _grey(alpha)
    _check_sizes(image.size, alpha=alpha)
    edge = estimate_edge(image, alpha, work_pixels=work_pixels)
    if edge is None:
        return image
    return _replace(image, edge, edge.colours)


class _Fill:
    """The new scene pulled into a hole from around it, at working resolution."""

    def __init__(self, background: Image.Image, hole: Image.Image, bbox: tuple[int, int, int, int], work_pixels: int):
        self.box = _context_box(bbox, background.size)
        self.grid = WorkGrid((self.box[2] - self.box[0], self.box[3] - self.box[1]), work_pixels)
        # a working pixel is a sample only if none of it is hole: the box reduction of a single
        # hole pixel stays above zero at these scales
        small_hole = np.asarray(self.grid.shrink(_crop(hole, self.box)))
        small = np.asarray(self.grid.shrink(_crop(background, self.box)), dtype=np.float32) / 255.0
        self.field = push_pull(small, small_hole == 0)  # None: the hole is everything, nothing to extend

    def at(self, ys: Pixels, xs: Pixels) -> Floats:
        """Fill colours (N, 3, 0..1) at full-resolution pixels of the whole image."""
        assert self.field is not None
        return self.grid.sample(self.field, ys - self.box[1], xs - self.box[0])


def fill_background(
    background: Image.Image,
    hole: Image.Image,
    alpha: Image.Image | None = None,
    *,
    work_pixels: int = FILL_WORK_PIXELS,
) -> Image.Image:
    """`background` with the pixels where `hole` is non-zero replaced by a smooth fill from around
    them: the inpainting model was told to keep a band around the subject, so that band may still
    show the old background, which must not show through the subject's soft edge. With the
    subject's `alpha`, only the hole pixels under the soft edge (0 < alpha < 255) are filled: the
    subject covers the rest of the hole, and beyond the edge the model's own blend is kept."""
    background = flatten(background)
    hole = _grey(hole)
    _check_sizes(background.size, hole=hole, alpha=alpha)
    bbox = hole.getbbox()
    if bbox is None:
        return background
    todo = np.asarray(hole.crop(bbox)) > 0
    if alpha is not None:
        todo &= (np.asarray(_grey(alpha).crop(bbox)) - np.uint8(1)) < 254  # 0 < alpha < 255 (uint8 wrap)
    ys, xs = np.nonzero(todo)
    fill = _Fill(background, hole, bbox, work_pixels) if ys.size else None
    if fill is None or fill.field is None:
        return background
    pixels = np.array(background.crop(bbox))
    pixels[ys, xs] = _to_uint8(fill.at(ys + bbox[1], xs + bbox[0]))
    result = background.copy()
    result.paste(Image.fromarray(pixels, "RGB"), bbox[:2])
    return result


# An object smaller than this share of the largest kept object gets no contact shadow of its own: a
# speck the cut-out kept (a crumb, a stray pixel) does not stand on the floor.
SHADOW_MIN_OBJECT_SHARE = 0.02


def shadow_mask(alpha: Image.Image, shadow: Shadow, *, work_pixels: int = 500_000) -> Image.Image | None:
    """The shadow's opacity ("L", 255 = black) for a subject `alpha`, or None for no shadow.

    A contact shadow is drawn under each object of the subject (several kept objects stand at
    different heights), a soft one from the whole silhouette."""
    if shadow.kind == ShadowKind.NONE or shadow.strength <= 0:
        return None
    alpha = _grey(alpha)
    bbox = alpha.point(lambda v: 255 if v >= 128 else 0).getbbox()
    if bbox is None:
        return None
    width, height = alpha.size
    scale = min(1.0, math.sqrt(work_pixels / (width * height)))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = alpha.resize(small_size, Image.Resampling.BOX) if scale < 1 else alpha
    x0, y0, x1, y1 = (round(v * scale) for v in bbox)
    subject_size = max(x1 - x0, y1 - y0, 1)
    dx, dy = math.cos(math.radians(shadow.angle)), math.sin(math.radians(shadow.angle))
    canvas = Image.new("L", small_size, 0)
    if shadow.kind == ShadowKind.SOFT:
        distance = 0.05 * subject_size
        canvas.paste(small, (round(dx * distance), round(dy * distance)))
        blur = 0.04 * subject_size
    else:
        # each object's silhouette squashed flat onto the line where it stands, nudged along the angle
        found = objects(np.asarray(small.crop((x0, y0, x1, y1))) >= 128)
        largest = max(int(own.sum()) for _, own in found)
        sizes = []
        for (ox0, oy0, ox1, oy1), own in found:
            if own.sum() < SHADOW_MIN_OBJECT_SHARE * largest:
                continue
            size = max(ox1 - ox0, oy1 - oy0, 1)
            sizes.append(size)
            flat_height = max(1, round(0.06 * size))
            silhouette = Image.fromarray(own.astype(np.uint8) * 255, "L")
            silhouette = silhouette.resize((max(1, ox1 - ox0), flat_height), Image.Resampling.BOX)
            silhouette = silhouette.point(lambda v: 255 if v else 0)
            at = (x0 + ox0 + round(dx * 0.02 * size), y0 + oy1 - flat_height // 2)
            canvas.paste(255, at, silhouette)  # pasted through itself: overlapping shadows add up, never cut
        blur = 0.012 * max(sizes)
    canvas = canvas.filter(ImageFilter.GaussianBlur(max(0.5, blur)))
    canvas = canvas.point(lambda v: round(v * shadow.strength))
    return canvas.resize(alpha.size, Image.Resampling.BILINEAR) if canvas.size != alpha.size else canvas


def cast_shadow(background: Image.Image, alpha: Image.Image, shadow: Shadow) -> Image.Image:
    """`background` darkened by the subject's shadow (the subject itself is drawn on top later)."""
    background = flatten(background)
    mask = shadow_mask(alpha, shadow)
    if mask is None:
        return background
    # towards black: each pixel keeps its hue and loses `mask` of its light
    return Image.composite(Image.new("RGB", background.size, (0, 0, 0)), background, mask)


def compose(
    original: Image.Image,
    alpha: Image.Image,
    background: Image.Image,
    *,
    blend: float = 1.0,
    relit: Image.Image | None = None,
    shadow: Shadow = NO_SHADOW,
    decontaminate: bool = True,
    background_hole: Image.Image | None = None,
    work_pixels: int = WORK_PIXELS,
) -> Image.Image:
    """The subject of `original`, weighted by `alpha` ("L", 255 = subject), over `background`.

    `blend` 1 keeps the original subject's pixels; below 1 it mixes in `relit` (the model's
    version of the subject, same size) down to 0 = the model's pixels only. `background_hole`
    marks background pixels that still show the old scene (filled before compositing). With
    `decontaminate`, the soft edge carries the subject's estimated own colours instead of the
    original pixels, which hold some of the old background."""
    if not 0.0 <= blend <= 1.0 or not math.isfinite(blend):
        raise ValueError(f"blend must be between 0 and 1, not {blend}")
    if blend < 1.0 and relit is None:
        raise ValueError("blend below 1 needs the model's re-lit subject (relit)")
    original = flatten(original)
    alpha = _grey(alpha)
    background = flatten(background)
    _check_sizes(original.size, alpha=alpha, background=background, relit=relit, background_hole=background_hole)
    relit = flatten(relit) if relit is not None else None
    foreground = original if relit is None or blend == 1.0 else Image.blend(relit, original, blend)
    edge = estimate_edge(original, alpha, work_pixels=work_pixels) if decontaminate else None
    hole = _grey(background_hole) if background_hole is not None else None
    if hole is not None and edge is None:
        background = fill_background(background, hole, alpha, work_pixels=work_pixels // 4)
    shade = shadow_mask(alpha, shadow)
    shaded = background if shade is None else Image.composite(Image.new("RGB", background.size), background, shade)
    # alpha 255 takes the foreground's pixels unchanged: the original's, bit for bit, at blend 1
    result = Image.composite(foreground, shaded, alpha)
    if edge is None:
        return result
    # the edge pixels, recomposed from the subject's own colours over what lies behind them
    colours = edge.colours
    if relit is not None and blend < 1.0:
        model = _at(relit, edge).astype(np.float32) / 255.0
        colours = blend * colours + (1.0 - blend) * model
    behind = _at(background, edge).astype(np.float32) / 255.0
    if hole is not None:  # only the edge pixels of the hole are filled: no full-frame copy
        in_hole = _at(hole, edge)[:, 0] > 0
        hole_bbox = hole.getbbox()
        fill = _Fill(background, hole, hole_bbox, work_pixels // 4) if in_hole.any() and hole_bbox else None
        if fill is not None and fill.field is not None and in_hole.all():  # no boolean copies of the indices
            behind = fill.at(edge.ys + edge.box[1], edge.xs + edge.box[0])
        elif fill is not None and fill.field is not None:
            behind[in_hole] = fill.at(edge.ys[in_hole] + edge.box[1], edge.xs[in_hole] + edge.box[0])
    if shade is not None:
        darkness = _at(shade, edge).astype(np.float32) / 255.0
        behind = behind * (1.0 - darkness)
    return _replace(result, edge, edge.alpha * colours + (1.0 - edge.alpha) * behind, in_place=True)


def cutout(original: Image.Image, alpha: Image.Image, *, decontaminate: bool = True) -> Image.Image:
    """RGBA: the subject with its soft alpha and clean edge colours, for transparent outputs."""
    original = flatten(original)
    alpha = _grey(alpha)
    _check_sizes(original.size, alpha=alpha)
    result = estimate_foreground(original, alpha) if decontaminate else original.copy()
    result.putalpha(alpha)
    return result


# ------------------------------------------------------------------------------------ placement

# (x, y) of an anchor within the free room: 0 = left/top, 0.5 = centre, 1 = right/bottom
_ANCHOR_FRACTIONS = {
    "center": (0.5, 0.5),
    "top": (0.5, 0.0),
    "bottom": (0.5, 1.0),
    "left": (0.0, 0.5),
    "right": (1.0, 0.5),
    "top-left": (0.0, 0.0),
    "top-right": (1.0, 0.0),
    "bottom-left": (0.0, 1.0),
    "bottom-right": (1.0, 1.0),
}
# Pixels of the original kept around the subject when it is re-framed: the soft edge's colour
# estimate reads the old background from there.
PLACEMENT_CONTEXT_FRACTION = 0.08
# Below this alpha a pixel is not part of the subject's extent (fill, margins, touching the edge).
SUBJECT_EXTENT_ALPHA = 16


@dataclass(frozen=True)
class Placed:
    """The original and its subject alpha laid out on the output canvas, and what was done."""

    original: Image.Image  # RGB, canvas size
    alpha: Image.Image  # "L", canvas size
    scale: float  # original pixels → canvas pixels
    subject_box: tuple[int, int, int, int] | None  # on the canvas, (x0, y0, x1, y1)
    notes: tuple[str, ...] = ()
    # the subject is smaller than asked: reaching the fill would have enlarged it past its own pixels
    held_at_own_resolution: bool = False


def subject_extent(alpha: Image.Image) -> tuple[int, int, int, int] | None:
    """The subject's bounding box (x0, y0, x1, y1) from its alpha; None if there is none."""
    return _grey(alpha).point(lambda v: 255 if v >= SUBJECT_EXTENT_ALPHA else 0).getbbox()


def place(
    original: Image.Image,
    alpha: Image.Image,
    canvas: tuple[int, int],
    *,
    fill: float | None = None,
    anchor: str = "center",
    margin: float = 0.0,
    allow_upscale: bool = False,
) -> Placed:
    """Scale and position the subject of `original` (by its `alpha`) on a `canvas` (width, height).

    `fill` is the share (%) of the frame inside the margins that the subject takes along its
    limiting side; without it, the original's framing is scaled to fit the canvas (and shrunk
    further if the subject would cross the margins). Resampling is LANCZOS. The subject is never
    enlarged past its own resolution unless `allow_upscale`; either way a note says so."""
    original = flatten(original)
    alpha = _grey(alpha)
    _check_sizes(original.size, alpha=alpha)
    cw, ch = canvas
    box = subject_extent(alpha)
    if box is None:
        raise ValueError("the cut-out has no subject to place")
    bw, bh = box[2] - box[0], box[3] - box[1]
    room_w, room_h = cw * (1 - 2 * margin / 100), ch * (1 - 2 * margin / 100)
    fits = min(room_w / bw, room_h / bh)
    notes: list[str] = []
    held = False
    scale = fill / 100 * fits if fill is not None else min(cw / original.width, ch / original.height, fits)
    if scale > 1.0 + 1e-6:
        asked = f"fill {fill:g}%" if fill is not None else "this canvas"
        if allow_upscale:
            notes.append(
                f"the subject was enlarged {scale:.2f}x past its own resolution for {asked} "
                f"({bw}x{bh} px shown at {round(bw * scale)}x{round(bh * scale)} px)"
            )
        else:
            shown = 100 * min(bw / room_w, bh / room_h)
            notes.append(
                f"{asked} would enlarge the subject {scale:.2f}x past its own resolution; it is shown at its own "
                f"{bw}x{bh} px instead (fill {shown:.0f}%); allowUpscale enlarges it"
            )
            scale = 1.0
            held = True
    fx, fy = _ANCHOR_FRACTIONS.get(anchor, (0.5, 0.5))
    sw, sh = bw * scale, bh * scale
    mx, my = cw * margin / 100, ch * margin / 100
    x = mx + max(0.0, room_w - sw) * fx if sw <= room_w else (cw - sw) / 2
    y = my + max(0.0, room_h - sh) * fy if sh <= room_h else (ch - sh) / 2
    # the subject and a band of context around it, cut from the original, then scaled once
    pad = round(PLACEMENT_CONTEXT_FRACTION * max(bw, bh))
    crop = (
        max(0, box[0] - pad),
        max(0, box[1] - pad),
        min(original.width, box[2] + pad),
        min(original.height, box[3] + pad),
    )
    size = (max(1, round((crop[2] - crop[0]) * scale)), max(1, round((crop[3] - crop[1]) * scale)))
    piece = original.crop(crop).resize(size, Image.Resampling.LANCZOS)
    piece_alpha = alpha.crop(crop).resize(size, Image.Resampling.LANCZOS)
    at = (round(x - (box[0] - crop[0]) * scale), round(y - (box[1] - crop[1]) * scale))
    # what lies beyond the context band is never seen (alpha 0 there); the crop's mean colour
    # keeps the edge estimate's old-background samples plausible
    mean = tuple(round(v) for v in np.asarray(piece).reshape(-1, 3).mean(axis=0))
    placed_original = Image.new("RGB", canvas, mean)
    placed_original.paste(piece, at)
    placed_alpha = Image.new("L", canvas, 0)
    placed_alpha.paste(piece_alpha, at)
    return Placed(placed_original, placed_alpha, scale, subject_extent(placed_alpha), tuple(notes), held)


def cover(image: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, float]:
    """`image` scaled (LANCZOS) to cover `size` and centre-cropped to it; and the scale used."""
    image = flatten(image)
    scale = max(size[0] / image.width, size[1] / image.height)
    scaled = (max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale)))
    resized = image if scaled == image.size else image.resize(scaled, Image.Resampling.LANCZOS)
    left, top = (resized.width - size[0]) // 2, (resized.height - size[1]) // 2
    return resized.crop((left, top, left + size[0], top + size[1])), scale


def plain(size: tuple[int, int], color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", size, color)
