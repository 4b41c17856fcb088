"""A scorecard per image: is the product untouched, are its edges clean, is it still there, does
its printed text still read the same.

Each check gives PASS, WARN or FAIL with a one-line reason a marketer understands, or SKIPPED with
the reason it could not run (never a silent PASS). Figures are JSON-safe: a PSNR of infinity
(the product's pixels are identical to the original's) is the string "Infinity", which
`float()` in Python and `Number()` in JavaScript both read back as infinity, and it comes with
`"identical": true`.

- `score_image`: subject fidelity and edge halo from the pixels (original, result, alpha), fast
  enough to run on every image where the result is made.
- `check_subject_present`, `check_text_integrity`: Rekognition DetectLabels / DetectText on the
  result, given a Rekognition client (one call, or two for text).

Bad input (an empty or fully transparent cut-out, a subject of a few pixels, a cut-out that
covers the whole frame, images of different sizes) gets a FAIL with the reason, never a crash.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core import contracts
from chalicelib.core.scorecard import DEFAULT_THRESHOLDS as DEFAULT_THRESHOLDS
from chalicelib.core.scorecard import Check as Check
from chalicelib.core.scorecard import CheckName as CheckName
from chalicelib.core.scorecard import Outcome as Outcome
from chalicelib.core.scorecard import Scorecard as Scorecard
from chalicelib.core.scorecard import Thresholds as Thresholds
from chalicelib.core.scorecard import attempt_outcome as attempt_outcome
from chalicelib.core.scorecard import attempt_rank as attempt_rank
from chalicelib.core.scorecard import attempt_score as attempt_score
from chalicelib.core.scorecard import attempts_summary as attempts_summary
from chalicelib.core.scorecard import best_attempt as best_attempt
from chalicelib.core.scorecard import needs_re_roll as needs_re_roll
from chalicelib.core.scorecard import re_roll_decision as re_roll_decision
from chalicelib.core.scorecard import worst as worst
from chalicelib.imaging.fidelity import DELTA_E_SAMPLES as DELTA_E_SAMPLES
from chalicelib.imaging.fidelity import INFINITY as INFINITY
from chalicelib.imaging.fidelity import JpegDelivery, subject_fidelity
from chalicelib.imaging.fidelity import delta_e_2000 as delta_e_2000
from chalicelib.imaging.fidelity import sampled as _sampled
from chalicelib.imaging.fidelity import srgb_to_lab as srgb_to_lab

# The verdict's vocabulary lives in chalicelib/core/scorecard.py (the front ends read it without Pillow or
# boto3); re-exported above (`X as X`), so quality.Scorecard and friends read as before.

if TYPE_CHECKING:  # numpy and Pillow are imported where pixels are scored, not by the API at cold start
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

    Colours = npt.NDArray[np.float64]  # (N, 3)

# Rekognition's model version as the local stack's stand-ins report it (backend/local/rekognition_standin.py;
# LabelModelVersion / TextModelVersion: docs/aws-notes.md#n104-rekognition-model-versions-in-answers)
STAND_IN_VERSION_PREFIX = "local:"
LOCAL_LABELS_REASON = (
    "Not checked: on the local stack the labels come from the same cut-out engine that made the cut-out, "
    "so this check cannot fail (SKIPPED, not PASS)."
)
LOCAL_BOXES = "on the local stack the kept labels' boxes come from the same cut-out engine that made the cut-out"
LOCAL_TEXT_REASON = (
    "Not checked: the local stack has no OCR (its DetectText stand-in reads no text), "
    "so this check cannot fail (SKIPPED, not PASS)."
)


class StandInAnswer(Exception):
    """Rekognition's answer came from the local stand-in, which cannot judge this (the reason)."""


MIN_SUBJECT_PIXELS = 256  # a "subject" smaller than 16 x 16 px is a speck, not a product
FULL_FRAME_FRACTION = 0.995  # a cut-out covering this much of the frame left no background to replace
EDGE_SAMPLES = 250_000  # the halo is measured on a regular grid of at most this many pixels
FIELD_PIXELS = 60_000  # resolution of the smooth colour fields the halo is measured against
HALO_MIN_CONTRAST = 10.0  # ΔE: where the old background is closer than this to the subject, no fringe shows
HALO_MIN_PIXELS = 50  # fewer measurable edge pixels than this: no halo can be seen
# a check failed by the input itself (no subject in the cut-out, ...): a new seed cannot change it
BAD_INPUT: Mapping[str, Any] = {"badInput": True}
TEXT_MIN_CONFIDENCE = 80.0  # DetectText lines below this confidence are not compared
# What Rekognition's image APIs read (docs/aws-notes.md#n13-rekognition-detectlabels): JPEG or PNG,
# each side at least 80 px, raw bytes up to 5 MB. Finalize sends a JPEG rendition of the pixels
# it made, its long side at most REKOGNITION_SIDE (labels and text boxes are fractions of the frame).
REKOGNITION_MIN_SIDE = contracts.REKOGNITION_MIN_SIDE
REKOGNITION_MAX_BYTES = 5 * 2**20
REKOGNITION_SIDE = 3072
# Rekognition answers that mean "this image cannot be read", not "try again"
_UNREADABLE = frozenset({"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"})


# ------------------------------------------------------------------------------------ pixels
# (the colour maths and subject fidelity: chalicelib/imaging/fidelity.py, re-exported above)


def _subject_problem(alpha: Image.Image) -> str | None:
    """Why this cut-out cannot be scored, or None. Shared by every pixel check."""
    histogram = alpha.histogram()
    total = alpha.width * alpha.height
    solid = sum(histogram[128:])
    if sum(histogram[1:]) == 0:
        return "No product: the cut-out is empty (fully transparent), so the result shows no subject."
    if solid == 0:
        return "No product: the cut-out is only faint traces (no pixel is even half solid)."
    if solid < MIN_SUBJECT_PIXELS:
        return f"No real product: the cut-out is only {solid} px, too small to be the subject."
    if solid >= FULL_FRAME_FRACTION * total:
        return "Background not replaced: the cut-out covers the whole frame, so there was no background to change."
    return None


def _halo(
    original: Image.Image, result: Image.Image, alpha: Image.Image, background: Image.Image | None, limits: Thresholds
) -> Check:
    import numpy as np
    from PIL import Image

    from chalicelib.imaging.compose import WorkGrid, push_pull  # numpy: only where pixels are scored

    name = CheckName.EDGE_HALO
    # the measured edge: 5%..95% alpha, where a fringe of the old background would show
    band_lut = [0] * 13 + [255] * (243 - 13) + [0] * 13
    bbox = alpha.point(band_lut).getbbox()
    if bbox is None:
        return Check(name, Outcome.SKIPPED, "Not measured: the cut-out has a hard edge (no partly transparent pixels).")
    box = (
        max(0, bbox[0] - 2),
        max(0, bbox[1] - 2),
        min(alpha.width, bbox[2] + 2),
        min(alpha.height, bbox[3] + 2),
    )
    images = [original, result, alpha] + ([background] if background is not None else [])
    sampled = _sampled(images, box, EDGE_SAMPLES)
    orig, res, a_grid = sampled[0], sampled[1], sampled[2]
    band = np.array(band_lut, dtype=bool)[a_grid]
    ys, xs = np.nonzero(band)
    # the subject's own colour deep inside and the old background's further out, pulled into the
    # edge from the original (independent of how the result was composed)
    grid = WorkGrid((orig.shape[1], orig.shape[0]), FIELD_PIXELS)
    small_rgb = np.asarray(grid.shrink(Image.fromarray(orig)), dtype=np.float32) / 255.0
    small_alpha = np.asarray(grid.shrink(Image.fromarray(a_grid)))
    subject = push_pull(small_rgb, small_alpha == 255)
    old = push_pull(small_rgb, small_alpha == 0)
    if subject is None or old is None or ys.size == 0:
        return Check(name, Outcome.SKIPPED, "Not measured: the edge has no solid product or old background beside it.")
    f = grid.sample(subject, ys, xs)
    b_old = grid.sample(old, ys, xs)
    if background is not None:
        b_new = sampled[3][ys, xs].astype(np.float32) / 255.0
    else:  # what the result shows where there is no subject, pulled into the edge
        new = push_pull(np.asarray(grid.shrink(Image.fromarray(res)), dtype=np.float32) / 255.0, small_alpha == 0)
        if new is None:
            return Check(name, Outcome.SKIPPED, "Not measured: the result shows no new background.")
        b_new = grid.sample(new, ys, xs)
    a = (a_grid[ys, xs].astype(np.float32) / 255.0)[:, None]
    expected = a * f + (1 - a) * b_new  # a clean edge: the subject's colour over the new background
    toward = srgb_to_lab(b_old) - srgb_to_lab(f)
    contrast = np.linalg.norm(toward, axis=1)
    visible = contrast >= HALO_MIN_CONTRAST
    if visible.sum() < HALO_MIN_PIXELS:
        return Check(
            name,
            Outcome.PASS,
            "Clean edges: the old background was the product's own colour at the edge, so no fringe can show.",
            {"haloDeltaE": 0.0, "edgePixels": int(ys.size)},
        )
    error = srgb_to_lab(res[ys, xs][visible]) - srgb_to_lab(np.clip(expected[visible], 0, 1))
    # the part of each edge pixel's error that points toward the old background's colour; other
    # errors (the product's own texture) average out
    halo = max(0.0, float(np.mean(np.sum(error * toward[visible], axis=1) / contrast[visible])))
    metrics = {"haloDeltaE": round(halo, 2), "edgePixels": int(ys.size)}
    if halo >= limits.halo_fail:
        outcome, words = Outcome.FAIL, "Visible fringe of the old background around the product"
    elif halo >= limits.halo_warn:
        outcome, words = Outcome.WARN, "Faint fringe of the old background around the product"
    else:
        outcome, words = Outcome.PASS, "Clean edges"
    return Check(name, outcome, f"{words} (edge colour shift ΔE {halo:.1f}).", metrics)


def score_image(
    original: Image.Image,
    result: Image.Image,
    alpha: Image.Image,
    *,
    background: Image.Image | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    delivery: JpegDelivery | None = None,
) -> Scorecard:
    """Subject fidelity and edge halo of `result` against `original`, given the subject's alpha
    ("L", 255 = subject) at the same size. `background` is what was placed behind the subject
    (if known; otherwise it is read from the result around the subject). `result` is what the
    delivered file shows, or with `delivery` the pixels a JPEG is encoded from: the fidelity is
    then measured through the encoder on a sample of the product's blocks (fidelity.py), and the
    halo, a mean over the edge's colour shift toward the old background, on these pixels."""
    sizes = {img.size for img in (original, result, alpha) + ((background,) if background is not None else ())}
    if len(sizes) > 1:
        reason = "Not comparable: the result and the original are not the same size (" + ", ".join(
            f"{w}x{h}" for w, h in sorted(sizes)
        )
        reason += ")."
        return Scorecard((Check(CheckName.SUBJECT_FIDELITY, Outcome.FAIL, reason, BAD_INPUT),))
    alpha = alpha if alpha.mode == "L" else alpha.convert("L")
    problem = _subject_problem(alpha)
    if problem:
        return Scorecard(
            (
                Check(CheckName.SUBJECT_FIDELITY, Outcome.FAIL, problem, BAD_INPUT),
                Check(CheckName.EDGE_HALO, Outcome.FAIL, problem, BAD_INPUT),
            )
        )
    from chalicelib.imaging.images import flatten  # Pillow, here only; as compose does: transparent over white

    original, result = flatten(original), flatten(result)
    background = flatten(background) if background is not None else None
    return Scorecard(
        (
            subject_fidelity(original, result, alpha, thresholds, delivery),
            _halo(original, result, alpha, background, thresholds),
        )
    )


# ------------------------------------------------------------------------------------ references
# Checks that judge the delivered result against something that did not produce it: the kept
# labels' boxes (Rekognition's, at labelling), the original's background and the original's
# subject pixels. Thresholds calibrated on bench/scorecard_set.py (docs/quality.md).

REFERENCE_PIXELS = 250_000  # the reference checks run on a box-filtered copy of at most this many pixels
# a kept box the subject leaves this much more open on one side than the other, or covers less
# than half of: a part lost (a detector's box is loose alike on both sides; calibrated with +-3 %)
COVERAGE_FAIL = 0.85
SPAN_FAIL = 0.5
EXTRA_MARGIN = 0.04  # confident alpha beyond every kept box grown by this share of the frame's long side...
EXTRA_FAIL = 0.04  # ...over this share of the subject's confident area: an object that was not kept
UNCHANGED_DELTA_E = 2.5  # a background pixel within this ΔE of the original's is "unchanged"
UNCHANGED_FAIL = 0.6  # this share of the background unchanged: the model did nothing
SEE_THROUGH_ALPHA = 235  # interior alpha below this is visibly see-through (8 % of the background shows)
SEE_THROUGH_FAIL = 0.05  # share of the solid interior
RING_PX = 2  # the rim: the outermost solid pixels of the cut-out (reduced copy)
RING_FAIL = 0.4  # this share of the rim nearer the old background's colour than the subject's
RING_MIN_CONTRAST = 10.0  # ΔE: where the old background is this close to the subject, no ring can show
DETAIL_BLOCK = 12  # px of the reduced copy: the patch over which the product's change is averaged
DETAIL_WARN = 3.0  # worst patch's mean ΔE
DETAIL_FAIL = 5.0


def _reduced(images: Sequence[Image.Image], max_pixels: int = REFERENCE_PIXELS) -> list[npt.NDArray[np.float64]]:
    """Each image box-filtered to at most `max_pixels` (the same size for all), 0..1 floats."""
    import numpy as np
    from PIL import Image

    width, height = images[0].size
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return [
        np.asarray(img if img.size == size else img.resize(size, Image.Resampling.BOX), dtype=np.float64) / 255.0
        for img in images
    ]


def _erode_bool(mask: npt.NDArray[np.bool_], px: int) -> npt.NDArray[np.bool_]:
    """`mask` eroded by a (2 px + 1) square, the frame's border pixels repeated outward: what
    Pillow's MinFilter(2 px + 1) gives (tested), from running counts of the holes along each axis,
    ~10x cheaper than the rank filter at these sizes."""
    import numpy as np

    if px <= 0:
        return mask
    out = mask
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (px, px)
        counts = np.cumsum(np.pad(~out, pad, mode="edge"), axis=axis, dtype=np.int32)
        # a zero first: the count of holes before each position
        counts = np.concatenate([np.zeros_like(counts.take([0], axis=axis)), counts], axis=axis)
        ahead = counts.take(np.arange(2 * px + 1, n + 2 * px + 1), axis=axis)
        behind = counts.take(np.arange(0, n), axis=axis)
        out = ahead == behind
    return out


def _coverage(a: npt.NDArray[np.float64], kept_boxes: Sequence[Sequence[float]], boxes_from: str | None) -> Check:
    """Every kept box still covered by the subject (part lost?), and nothing confident far outside
    every kept box (an object that was not kept?)."""
    import numpy as np

    name = CheckName.SUBJECT_COVERAGE
    if boxes_from:
        reason = f"Not checked: {boxes_from}, so this check cannot fail (SKIPPED, not PASS)."
        return Check(name, Outcome.SKIPPED, reason, {"standIn": True})
    if not kept_boxes:
        return Check(name, Outcome.SKIPPED, "Not checked: no kept label has a box to compare the cut-out with.")
    h, w = a.shape
    solid = a >= 0.5
    confident = a >= 0.8
    allowed = np.zeros_like(solid)
    coverages = []
    margin = EXTRA_MARGIN * max(w, h)
    for left, top, width, height in kept_boxes:
        x0, y0 = max(0, int(left * w)), max(0, int(top * h))
        x1, y1 = min(w, math.ceil((left + width) * w)), min(h, math.ceil((top + height) * h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        inside = solid[y0:y1, x0:x1]
        spans = []
        for covered in (inside.any(axis=1), inside.any(axis=0)):  # rows, then columns
            hits = np.nonzero(covered)[0]
            if hits.size == 0:
                spans.append((1.0, 1.0))
                continue
            spans.append((hits[0] / covered.size, (covered.size - 1 - hits[-1]) / covered.size))
        # a loose box leaves a gap on both sides alike; a part lost leaves one side's gap wide
        lopsided = max(abs(a_gap - b_gap) for a_gap, b_gap in spans)
        spanned = min(1.0 - a_gap - b_gap for a_gap, b_gap in spans)
        coverages.append(1.0 - lopsided if spanned >= SPAN_FAIL else spanned)
        allowed[
            max(0, int(y0 - margin)) : min(h, int(y1 + margin) + 1),
            max(0, int(x0 - margin)) : min(w, int(x1 + margin) + 1),
        ] = True
    if not coverages:
        return Check(name, Outcome.SKIPPED, "Not checked: the kept labels' boxes are too small to compare.")
    subject = int(confident.sum())
    extra = float((confident & ~allowed).sum()) / max(1, subject)
    coverage = min(coverages)
    metrics = {"boxCoverage": round(coverage, 3), "extraShare": round(extra, 3)}
    if coverage < COVERAGE_FAIL:
        return Check(
            name,
            Outcome.FAIL,
            f"Part of the product lost: the cut-out leaves {1 - coverage:.0%} of a kept object's box in the "
            "original uncovered on one side.",
            metrics,
        )
    if extra > EXTRA_FAIL:
        return Check(
            name,
            Outcome.FAIL,
            f"Extra object kept: {extra:.0%} of the cut-out lies outside every kept object's box in the original.",
            metrics,
        )
    return Check(
        name, Outcome.PASS, "Whole product kept: the cut-out spans each kept object's box, and no more.", metrics
    )


def _background_replaced(
    orig: npt.NDArray[np.float64],
    res: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    new: npt.NDArray[np.float64] | None,
) -> Check:
    """The original's background region, compared with the result's: nearly unchanged = the model
    did nothing (unless the background asked for is itself like the old one)."""
    name = CheckName.BACKGROUND_REPLACED
    region = _erode_bool(a <= 0.0, 2)
    if region.sum() < 0.01 * a.size:
        return Check(name, Outcome.SKIPPED, "Not measured: the original has almost no background around the product.")
    step = max(1, int(math.sqrt(region.sum() / 40_000)))
    pick = region[::step, ::step]
    o, r = orig[::step, ::step][pick], res[::step, ::step][pick]
    unchanged = float((delta_e_2000(srgb_to_lab(o), srgb_to_lab(r)) < UNCHANGED_DELTA_E).mean())
    metrics: dict[str, Any] = {"unchangedShare": round(unchanged, 3)}
    if new is not None:
        asked = float((delta_e_2000(srgb_to_lab(o), srgb_to_lab(new[::step, ::step][pick])) < UNCHANGED_DELTA_E).mean())
        metrics["askedLikeOld"] = round(asked, 3)
        if asked >= UNCHANGED_FAIL:
            return Check(
                name,
                Outcome.PASS,
                "Background as asked: the new background is much like the old one, so little could change.",
                metrics,
            )
    if unchanged >= UNCHANGED_FAIL:
        return Check(
            name,
            Outcome.FAIL,
            f"Background not replaced: {unchanged:.0%} of the old background is still there, unchanged.",
            metrics,
        )
    return Check(name, Outcome.PASS, f"Background replaced ({unchanged:.0%} of it left as it was).", metrics)


def _solid_interior(a: npt.NDArray[np.float64], alpha: Image.Image) -> Check:
    """The subject's interior (half-opaque or more, away from its edge) is solid: a product made
    slightly see-through shows the new background through it."""

    name = CheckName.SOLID_INTERIOR
    interior = _erode_bool(a >= 0.5, max(2, round(max(a.shape) / 150)))
    count = int(interior.sum())
    if count < 50:
        return Check(name, Outcome.SKIPPED, "Not measured: the product has no interior (it is thin or all edge).")
    see_through = float((a[interior] < SEE_THROUGH_ALPHA / 255.0).mean())
    not_solid = float((a[interior] < 254.5 / 255.0).mean())
    metrics = {"seeThroughShare": round(see_through, 4), "notSolidShare": round(not_solid, 4)}
    if see_through >= SEE_THROUGH_FAIL:
        return Check(
            name,
            Outcome.FAIL,
            f"Product partly see-through: {see_through:.0%} of its interior lets the new background show through.",
            metrics,
        )
    return Check(name, Outcome.PASS, "Product solid: its interior is not see-through.", metrics)


def _ring(orig: npt.NDArray[np.float64], res: npt.NDArray[np.float64], a: npt.NDArray[np.float64]) -> Check:
    """A ring of the old background pasted round the product (a cut-out a few pixels too wide):
    the result's rim, compared with the original's subject colour pulled out from inside and its
    old background colour pulled in from outside."""
    import numpy as np

    from chalicelib.imaging.compose import push_pull

    name = CheckName.EDGE_RING
    solid = a >= 0.95
    inner = _erode_bool(solid, RING_PX + 3)
    # the rim where the subject's own colour is known close by (not a thin cable's length)
    rim = solid & ~_erode_bool(solid, RING_PX) & ~_erode_bool(~inner, RING_PX + 4)
    outside = a <= 0.0
    if rim.sum() < HALO_MIN_PIXELS or inner.sum() < HALO_MIN_PIXELS or outside.sum() < HALO_MIN_PIXELS:
        return Check(name, Outcome.SKIPPED, "Not measured: the product has no solid rim with old background beside it.")
    subject = push_pull(orig.astype(np.float32), inner)
    old = push_pull(orig.astype(np.float32), outside)
    assert subject is not None and old is not None
    ys, xs = np.nonzero(rim)
    f, b, r = srgb_to_lab(subject[ys, xs]), srgb_to_lab(old[ys, xs]), srgb_to_lab(res[ys, xs])
    visible = delta_e_2000(f, b) >= RING_MIN_CONTRAST
    if visible.sum() < HALO_MIN_PIXELS:
        return Check(
            name,
            Outcome.PASS,
            "No ring: the old background was the product's own colour at its rim.",
            {"ringShare": 0.0},
        )
    nearer_old = delta_e_2000(r[visible], b[visible]) < delta_e_2000(r[visible], f[visible])
    share = float(nearer_old.mean())
    metrics = {"ringShare": round(share, 3), "rimPixels": int(visible.sum())}
    if share >= RING_FAIL:
        return Check(
            name,
            Outcome.FAIL,
            f"Ring of the old background round the product: {share:.0%} of its rim has the old background's colour.",
            metrics,
        )
    return Check(name, Outcome.PASS, f"No ring of the old background ({share:.0%} of the rim like it).", metrics)


def _detail(orig: npt.NDArray[np.float64], res: npt.NDArray[np.float64], a: npt.NDArray[np.float64]) -> Check:
    """The worst patch of the product against the original's: a local change (its printed text
    re-drawn, the product moved, a part re-painted) that a mean over the whole product hides."""
    import numpy as np

    name = CheckName.SUBJECT_DETAIL
    interior = _erode_bool(a >= 254.5 / 255.0, 1)
    if interior.sum() < DETAIL_BLOCK**2:
        return Check(name, Outcome.SKIPPED, "Not measured: the product has no solid interior to compare.")
    # identical pixels (most of a kept product's) differ by 0: only the others are computed
    ys, xs = np.nonzero(interior & np.any(orig != res, axis=2))
    diff = np.zeros(a.shape)
    diff[ys, xs] = delta_e_2000(srgb_to_lab(orig[ys, xs]), srgb_to_lab(res[ys, xs]))
    h, w = a.shape
    bh, bw = h // DETAIL_BLOCK, w // DETAIL_BLOCK
    b = DETAIL_BLOCK
    sums = diff[: bh * b, : bw * b].reshape(bh, b, bw, b).sum(axis=(1, 3))
    counts = interior[: bh * b, : bw * b].reshape(bh, b, bw, b).sum(axis=(1, 3))
    full = counts >= b * b // 2
    if not full.any():
        return Check(name, Outcome.SKIPPED, "Not measured: the product has no solid interior to compare.")
    means = sums[full] / counts[full]
    worst_patch = float(means.max())
    metrics = {"worstPatchDeltaE": round(worst_patch, 2), "patches": int(full.sum())}
    if worst_patch > DETAIL_FAIL:
        outcome, words = Outcome.FAIL, "Part of the product changed visibly"
    elif worst_patch > DETAIL_WARN:
        outcome, words = Outcome.WARN, "Part of the product changed slightly"
    else:
        return Check(
            name, Outcome.PASS, f"Every part of the product as in the original (worst ΔE {worst_patch:.1f}).", metrics
        )
    return Check(name, outcome, f"{words} (its worst patch shifted ΔE {worst_patch:.1f} from the original).", metrics)


def _rgb(image: Image.Image) -> Image.Image:
    """RGB, transparency over white; an RGB image as it is (a convert copies the whole frame)."""
    from chalicelib.imaging.images import flatten

    image = flatten(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def reference_checks(
    original: Image.Image,
    result: Image.Image,
    alpha: Image.Image,
    *,
    kept_boxes: Sequence[Sequence[float]] = (),
    background: Image.Image | None = None,
    boxes_from: str | None = None,
) -> tuple[Check, ...]:
    """The checks with an independent reference, same inputs as `score_image` plus the kept
    labels' boxes (left, top, width, height as fractions of the result's frame). `boxes_from`
    says why the boxes are not independent of the cut-out (the local stand-in's labels come from
    the same engine): the box check is then SKIPPED with that reason. An unusable cut-out (no
    subject, different sizes) gives nothing here: `score_image` FAILs it already."""
    sizes = {img.size for img in (original, result, alpha) + ((background,) if background is not None else ())}
    alpha = alpha if alpha.mode == "L" else alpha.convert("L")
    if len(sizes) > 1 or _subject_problem(alpha):
        return ()
    images = [_rgb(original), _rgb(result), alpha]
    if background is not None:
        images.append(_rgb(background))
    reduced = _reduced(images)
    orig, res, a = reduced[0], reduced[1], reduced[2]
    new = reduced[3] if background is not None else None
    return (
        _coverage(a, kept_boxes, boxes_from),
        _background_replaced(orig, res, a, new),
        _solid_interior(a, alpha),
        _ring(orig, res, a),
        _detail(orig, res, a),
    )


def no_cutout_scorecard(model: str) -> Scorecard:
    """The scorecard of a model that gives no cut-out (Titan/Nova repaint around a mask prompt):
    there is no subject mask to measure the pixels against."""
    reason = f"Not measured: model {model} does not cut the subject out, so there is no mask to compare."
    return Scorecard(
        (
            Check(CheckName.SUBJECT_FIDELITY, Outcome.SKIPPED, reason),
            Check(CheckName.EDGE_HALO, Outcome.SKIPPED, reason),
        )
    )


# ------------------------------------------------------------------------------------ Rekognition


def _service_problem(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") or "an error"
    return type(exc).__name__


def not_run(name: CheckName, what: str, exc: Exception) -> Check:
    """SKIPPED with the error code: "not available" when Rekognition cannot read the image,
    "could not run" when the call failed (throttled, say); never a PASS, never a failed image."""
    code = _service_problem(exc)
    if code in _UNREADABLE:
        reason = f"Not available: Rekognition cannot read {what} ({code})."
    else:
        reason = f"Could not run: Rekognition did not answer for {what} ({code})."
    return Check(name, Outcome.SKIPPED, reason, {"errorCode": code})


def rekognition_image(image: Image.Image) -> dict[str, bytes] | str:
    """Rekognition's `Image` parameter for these pixels: a JPEG rendition, its long side at most
    REKOGNITION_SIDE, under the 5 MB byte limit; or why Rekognition cannot be asked (a side under
    80 px). Whatever the output format (WebP, say), the checks read the same pixels."""
    import io

    from PIL import Image as PILImage

    from chalicelib.imaging.images import flatten  # Pillow, here only

    scale = min(1.0, REKOGNITION_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if min(size) < REKOGNITION_MIN_SIDE:
        return (
            f"Not available: the image is {image.width}x{image.height} px; Rekognition needs at least "
            f"{REKOGNITION_MIN_SIDE} px a side at this shape."
        )
    rgb = flatten(image).convert("RGB")
    if size != rgb.size:
        rgb = rgb.resize(size, PILImage.Resampling.BILINEAR)  # for recognition, not for people: cheap
    for jpeg_quality in (92, 80, 65):
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=jpeg_quality)
        if buffer.tell() <= REKOGNITION_MAX_BYTES:
            return {"Bytes": buffer.getvalue()}
    return "Not available: even compressed, the image is over Rekognition's 5 MB limit."


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    w = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    h = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union > 0 else 0.0


def _box(geometry: Mapping[str, Any]) -> tuple[float, float, float, float]:
    return (float(geometry["Left"]), float(geometry["Top"]), float(geometry["Width"]), float(geometry["Height"]))


def check_subject_present(
    rekognition: Any,
    image: Mapping[str, Any] | str,
    kept_labels: Sequence[str],
    kept_boxes: Sequence[Sequence[float]] = (),
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Check:
    """Is what the user kept still there, and in place? One DetectLabels call on the result.

    `image` is Rekognition's Image parameter ({"S3Object": ...} or {"Bytes": ...}), or the reason
    it cannot be asked (`rekognition_image`); `kept_boxes` are the kept labels' boxes (left, top,
    width, height as fractions, stored at labelling) in the result's frame."""
    name = CheckName.SUBJECT_PRESENT
    wanted = [label for label in kept_labels if label.strip()]
    if not wanted:
        return Check(name, Outcome.SKIPPED, "Not checked: no labels were kept, so the whole detected subject was.")
    if isinstance(image, str):  # why Rekognition cannot be asked (rekognition_image)
        return Check(name, Outcome.SKIPPED, image)
    try:
        response = rekognition.detect_labels(Image=dict(image), MaxLabels=100, MinConfidence=50)
    except (ClientError, BotoCoreError) as exc:
        return not_run(name, "the result", exc)
    if str(response.get("LabelModelVersion") or "").startswith(STAND_IN_VERSION_PREFIX):
        return Check(name, Outcome.SKIPPED, LOCAL_LABELS_REASON, {"standIn": True})
    seen: dict[str, tuple[float, list[tuple[float, float, float, float]]]] = {}
    for label in response.get("Labels", []):
        names = [label.get("Name", "")] + [p.get("Name", "") for p in label.get("Parents", []) or []]
        names += [a.get("Name", "") for a in label.get("Aliases", []) or []]
        boxes = [_box(i["BoundingBox"]) for i in label.get("Instances", []) or [] if i.get("BoundingBox")]
        for n in names:
            key = n.casefold()
            confidence = float(label.get("Confidence", 0.0))
            best = seen.get(key)
            if best is None or confidence > best[0]:
                seen[key] = (confidence, boxes + (best[1] if best else []))
            else:
                best[1].extend(boxes)
    missing = [label for label in wanted if label.casefold() not in seen]
    found = {label: seen[label.casefold()] for label in wanted if label.casefold() in seen}
    confidences = {label: round(c, 1) for label, (c, _) in found.items()}
    metrics: dict[str, Any] = {"labelsFound": confidences, "labelsMissing": missing}
    if missing:
        listed = ", ".join(f"'{m}'" for m in missing)
        return Check(
            name, Outcome.FAIL, f"Product missing: Rekognition no longer sees {listed} in the result.", metrics
        )
    weak = [label for label, c in confidences.items() if c < thresholds.label_min_confidence]
    result_boxes = [b for _, boxes in found.values() for b in boxes]
    overlaps = [max((_iou(k, r) for r in result_boxes), default=0.0) for k in kept_boxes] if result_boxes else []
    metrics["boxOverlap"] = round(min(overlaps), 2) if overlaps else None
    if weak:
        listed = ", ".join(f"'{w}' ({confidences[w]:.0f}%)" for w in weak)
        return Check(name, Outcome.WARN, f"Product hard to recognise: Rekognition is unsure of {listed}.", metrics)
    if overlaps and min(overlaps) < thresholds.box_min_overlap:
        return Check(name, Outcome.WARN, "Product moved or resized: it is not where it was in the original.", metrics)
    listed = ", ".join(f"'{label}'" for label in wanted)
    return Check(name, Outcome.PASS, f"Product still there: Rekognition sees {listed} in the result.", metrics)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _lines(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        d
        for d in response.get("TextDetections", [])
        if d.get("Type") == "LINE" and float(d.get("Confidence", 0.0)) >= TEXT_MIN_CONFIDENCE and d.get("DetectedText")
    ]


def _inside(detection: Mapping[str, Any], subject: Image.Image | None) -> bool:
    """Is the text line's centre on the subject (alpha at least half)? Without a mask: yes."""
    if subject is None:
        return True
    box = detection.get("Geometry", {}).get("BoundingBox")
    if not box:
        return False
    left, top, width, height = _box(box)
    x = min(subject.width - 1, max(0, int((left + width / 2) * subject.width)))
    y = min(subject.height - 1, max(0, int((top + height / 2) * subject.height)))
    value = subject.getpixel((x, y))
    return isinstance(value, int | float) and value >= 128


def detect_text_lines(rekognition: Any, image: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The confident LINE detections of one DetectText call (ClientError / BotoCoreError pass
    through): what Finalize keeps of the original, so re-rolls do not read it again.
    StandInAnswer when the local stand-in answered (it has no OCR: no lines is not "no text")."""
    response = rekognition.detect_text(Image=dict(image))
    if str(response.get("TextModelVersion") or "").startswith(STAND_IN_VERSION_PREFIX):
        raise StandInAnswer(LOCAL_TEXT_REASON)
    return _lines(response)


def check_text_integrity(
    rekognition: Any,
    original: Mapping[str, Any] | str | None,
    result: Mapping[str, Any] | str,
    *,
    subject_alpha: Image.Image | None = None,
    subject_identical: bool = False,
    original_lines: Sequence[Mapping[str, Any]] | None = None,
) -> Check:
    """Does the product's printed text read the same in the result? DetectText on both images.

    Only lines on the subject (`subject_alpha`, any size; its centre at least half opaque) are
    compared: text in the old background is meant to go. When the subject's pixels are known to
    be identical (`subject_identical`), its text cannot have changed and no call is made.
    `original_lines` (from `detect_text_lines`) spares the call on the original; `original` and
    `result` may be the reason Rekognition cannot be asked (`rekognition_image`)."""
    name = CheckName.TEXT_INTEGRITY
    if subject_identical:
        return Check(name, Outcome.PASS, "Text unchanged: the product's pixels are the original's, so its text is too.")
    if original_lines is not None:
        before = [dict(line) for line in original_lines]
    elif isinstance(original, str) or original is None:
        return Check(name, Outcome.SKIPPED, original or "Not available: the original could not be read.")
    else:
        try:
            before = detect_text_lines(rekognition, original)
        except (ClientError, BotoCoreError) as exc:
            return not_run(name, "the original", exc)
        except StandInAnswer as exc:
            return Check(name, Outcome.SKIPPED, str(exc), {"standIn": True})
    alpha = subject_alpha.convert("L") if subject_alpha is not None and subject_alpha.mode != "L" else subject_alpha
    on_subject = [d for d in before if _inside(d, alpha)]
    if not on_subject:
        return Check(name, Outcome.SKIPPED, "Not checked: no printed text was found on the product.")
    if isinstance(result, str):
        return Check(name, Outcome.SKIPPED, result)
    try:
        after = detect_text_lines(rekognition, result)
    except (ClientError, BotoCoreError) as exc:
        return not_run(name, "the result", exc)
    except StandInAnswer as exc:
        return Check(name, Outcome.SKIPPED, str(exc), {"standIn": True})
    now = [d["DetectedText"] for d in after]
    now_normalised = {_normalise(t) for t in now}
    changed = []
    for line in on_subject:
        text = line["DetectedText"]
        if _normalise(text) not in now_normalised:
            closest = difflib.get_close_matches(text, now, n=1, cutoff=0.5)
            changed.append((text, closest[0] if closest else None))
    metrics = {"linesOnProduct": len(on_subject), "linesChanged": len(changed)}
    if changed:
        text, became = changed[0]
        what = f"'{text}' now reads '{became}'" if became else f"'{text}' is gone"
        more = f" (and {len(changed) - 1} more line{'s' if len(changed) > 2 else ''})" if len(changed) > 1 else ""
        return Check(name, Outcome.FAIL, f"Printed text changed: {what}{more}.", metrics)
    listed = ", ".join(f"'{d['DetectedText']}'" for d in on_subject[:3])
    return Check(name, Outcome.PASS, f"Text unchanged: {listed} read the same.", metrics)
