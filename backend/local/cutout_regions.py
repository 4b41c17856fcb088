"""Region-level corrections of the local cut-out engine's alpha (backend/local/cutout.py), cheap
and weights-free (issue #27 point 7). A salient-object model answers "what stands out", which is
not always "the product":

- it keeps background objects that stand out too (a cup on the table behind the product): given
  the kept labels' boxes, confident regions that touch no kept box are dropped, and nothing is
  kept far outside every box (`keep_boxes`);
- it leaves holes inside a solid product where the product looks unremarkable: a hole fully
  enclosed by the subject is filled unless its colour is the background's (a mug's handle shows
  the background through it and stays open; `fill_holes`);
- it loses thin parts (a cable) and answers them faintly: within a kept box, faint answers whose
  colour is far from the background's are kept (`thin_within_boxes`).

The region logic runs on the alpha reduced to at most REGION_SIDE px on its long side (connected
regions are about shapes, not pixels) and its answer is brought back as a mask: the cost does not
grow with the photo beyond one resize and a few full-size multiplications.

Boxes are (left, top, width, height) in fractions of the image, as Rekognition's BoundingBox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageFilter

Box = Sequence[float]
Array = Any  # numpy arrays; numpy's own typing of boolean indexing is not worth the noise here

REGION_SIDE = 400  # the region logic's working size (long side, px)
CONFIDENT = 0.5  # alpha at or above: the subject (the scorecard's IoU threshold too)
# A kept label's box is a detector's, not pixel-exact (the calibration set moves each side by up
# to 3 % of the box): the subject may reach this share of the box's side beyond it (plus 2 px).
BOX_MARGIN = 0.06
# A hole is filled when its median colour is closer to the subject around it than to the
# background around the subject by this many RGB units (0-255 scale): a hole that looks like
# neither stays as the model answered.
HOLE_MARGIN = 12.0
HOLE_LIMIT = 16  # at most this many holes are weighed (the largest)...
HOLE_MIN_PX = 16  # ...of at least this many pixels at REGION_SIDE
# Thin parts: an answer at or above THIN_FLOOR inside a kept box whose colour is at least
# THIN_DISTANCE RGB units from the background around it is raised to solid.
THIN_FLOOR = 0.08
THIN_DISTANCE = 40.0
THIN_AWAY_PX = 3
# ... and only on a plain background: the median distance of its pixels to its median colour at
# most this (a busy background's colour is no reference; there the rule only added clutter)
THIN_PLAIN_SPREAD = 20.0


# ------------------------------------------------------------------ connected regions


def _run_min(labels: Array, mask: Array) -> Array:
    """Each horizontal run of `mask` takes the smallest label in it (labels outside the mask are kept)."""
    start = mask.copy()
    start[:, 1:] &= ~mask[:, :-1]
    flat_mask = mask.ravel()
    values = labels.ravel()[flat_mask]
    if values.size == 0:
        return labels
    starts = np.flatnonzero(start.ravel()[flat_mask])  # masked pixels are contiguous within a run
    mins = np.minimum.reduceat(values, starts)
    run_of = np.cumsum(start.ravel()[flat_mask]) - 1
    out = labels.copy()
    out.ravel()[flat_mask] = mins[run_of]
    return out


def components(mask: Array) -> Array:
    """4-connected regions of a boolean mask: an int array, -1 outside the mask, one id per region.

    Runs along rows and then columns take their smallest label until nothing changes: a handful
    of vectorised passes for product-like shapes (no scipy in the local extra)."""
    labels = np.where(mask, np.arange(mask.size).reshape(mask.shape), -1)
    while True:
        merged = _run_min(labels, mask)
        merged = _run_min(merged.T.copy(), mask.T.copy()).T
        if np.array_equal(merged, labels):
            return labels
        labels = merged


def _grow(mask: Array, px: int) -> Array:
    """A boolean mask grown by about `px` (box blur, any coverage)."""
    if px <= 0:
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.BoxBlur(px))
    return np.asarray(image) > 0


def _reduced(alpha: Image.Image) -> tuple[Array, float]:
    """The alpha (0..1) at most REGION_SIDE px on its long side, and the reduction's scale."""
    scale = min(1.0, REGION_SIDE / max(alpha.size))
    size = (max(1, round(alpha.width * scale)), max(1, round(alpha.height * scale)))
    small = alpha if size == alpha.size else alpha.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32) / 255.0, scale


def _full(mask: Array, size: tuple[int, int]) -> Image.Image:
    """A reduced 0/1 float mask back at `size` ("L"), soft at its edges."""
    image = Image.fromarray(np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def _box_pixels(box: Box, size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """A fractional box in pixels of `size`, each side moved out by `margin` of the box's side + 2 px."""
    left, top, width, height = (float(v) for v in box)
    w, h = size
    dx, dy = margin * width * w + 2, margin * height * h + 2
    x0, y0 = max(0, int(left * w - dx)), max(0, int(top * h - dy))
    x1, y1 = min(w, int(np.ceil((left + width) * w + dx))), min(h, int(np.ceil((top + height) * h + dy)))
    return x0, y0, x1, y1


def _box_mask(boxes: Sequence[Box], shape: tuple[int, int], margin: float) -> Array:
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = _box_pixels(box, (shape[1], shape[0]), margin)
        mask[y0:y1, x0:x1] = True
    return mask


# ------------------------------------------------------------------ the kept labels' boxes


def box_agreement(probability: Array, boxes: Sequence[Box]) -> float:
    """IoU of the confident answer (any size, 0..1) with the union of the kept boxes: which of
    two answers for one photo is closer to what the labels say the subject is."""
    confident = probability >= CONFIDENT
    inside = _box_mask(boxes, confident.shape, 0.0)
    union = int((confident | inside).sum())
    return float((confident & inside).sum() / union) if union else 0.0


def keep_boxes(alpha: Image.Image, boxes: Sequence[Box]) -> Image.Image:
    """`alpha` ("L") with what is not a kept label removed: confident regions that touch no kept
    box, and anything beyond the boxes grown by BOX_MARGIN. No boxes: `alpha` unchanged."""
    if not boxes:
        return alpha
    a, _ = _reduced(alpha)
    confident = a >= CONFIDENT
    labels = components(confident)
    touching = np.unique(labels[confident & _box_mask(boxes, a.shape, 0.0)])
    dropped = confident & ~np.isin(labels, touching)
    # the soft fringe of a dropped region goes with it, never into a kept region
    dropped = _grow(dropped, 2) & ~(confident & ~dropped)
    keep = Image.new("L", alpha.size, 0)
    for box in boxes:
        keep.paste(255, _box_pixels(box, alpha.size, BOX_MARGIN))
    if dropped.any():
        keep = ImageChops.subtract(keep, _full(dropped.astype(np.float32), alpha.size))
    return ImageChops.multiply(alpha, keep)


# ------------------------------------------------------------------ interior holes


def _median_colour(rgb: Array, where: Array) -> Array | None:
    return np.median(rgb[where], axis=0) if where.any() else None


def fill_holes(rgb: Image.Image, alpha: Image.Image) -> Image.Image:
    """`alpha` ("L") with each hole fully enclosed by the confident subject filled, unless the
    hole's colour is the background's (then it shows the background, as a handle's opening does).

    The background's colour is the median of the confident background in a band around the
    subject; the subject's, that of the subject in a band around the hole."""
    a, scale = _reduced(alpha)
    solid = a >= CONFIDENT
    if not solid.any():
        return alpha
    outside = ~solid
    # reached from the frame: not a hole (a subject cut by the frame has no enclosed hole there)
    padded = np.pad(outside, 1, constant_values=True)
    labels = components(padded)[1:-1, 1:-1]
    frame = labels[0, 0] if padded[0, 0] else -1
    holes = outside & (labels != frame)
    if not holes.any():
        return alpha
    small_rgb = np.asarray(rgb.convert("RGB").resize((a.shape[1], a.shape[0]), Image.Resampling.BILINEAR), np.float32)
    band = max(2, round(8 * scale * max(alpha.size) / REGION_SIDE))
    background = _median_colour(small_rgb, _grow(solid, band) & (a < 0.1) & ~holes)
    fill = np.zeros(a.shape, dtype=bool)
    ids, sizes = np.unique(labels[holes], return_counts=True)
    # the largest holes only, and none of a few pixels (noise, whichever way it is decided): the
    # per-hole work is over the reduced frame, so this bounds the cost on a noisy answer
    order = np.argsort(-sizes)[:HOLE_LIMIT]
    for label in ids[order][sizes[order] >= HOLE_MIN_PX]:
        hole = labels == label
        hole_colour = _median_colour(small_rgb, hole)
        around = _median_colour(small_rgb, _grow(hole, 3) & solid)
        if hole_colour is None or around is None:
            continue
        to_subject = float(np.linalg.norm(hole_colour - around))
        to_background = float(np.linalg.norm(hole_colour - background)) if background is not None else np.inf
        if to_subject + HOLE_MARGIN < to_background:
            fill |= hole
    if not fill.any():
        return alpha
    return ImageChops.lighter(alpha, _full(_grow(fill, 1).astype(np.float32), alpha.size))


# ------------------------------------------------------------------ thin parts


def thin_within_boxes(rgb: Image.Image, alpha: Image.Image, boxes: Sequence[Box]) -> Image.Image:
    """`alpha` ("L") with faint answers inside the kept boxes raised to solid where the photo's
    colour is far from the background's (a thin cable the model saw but did not trust)."""
    if not boxes:
        return alpha
    a, _ = _reduced(alpha)
    small_rgb = np.asarray(rgb.convert("RGB").resize((a.shape[1], a.shape[0]), Image.Resampling.BILINEAR), np.float32)
    inside = _box_mask(boxes, a.shape, BOX_MARGIN)
    plain = inside & (a < 0.02)
    background = _median_colour(small_rgb, plain)
    if background is None:
        return alpha
    spread = float(np.median(np.linalg.norm(small_rgb[plain] - background, axis=1)))
    if spread > THIN_PLAIN_SPREAD:
        return alpha  # a busy background: "far from its colour" says nothing there
    far = np.linalg.norm(small_rgb - background, axis=2) >= THIN_DISTANCE
    # away from the confident subject: next to it a faint answer is the soft edge, not a thin part
    thin = inside & (a >= THIN_FLOOR) & (a < CONFIDENT) & far & ~_grow(a >= CONFIDENT, THIN_AWAY_PX)
    if not thin.any():
        return alpha
    return ImageChops.lighter(alpha, _full(thin.astype(np.float32), alpha.size))
