"""Batch consistency: whether a catalogue's images look like one set.

For a `scene` or `color` batch every output should show its subject at about the same scale and
place, on the same background. Finalize measures each output (`measure`); the report compares
them (`batch_consistency`): the spread of subject scale and position, how far each output's
background is from the batch's, and the outputs that stand out, each with its reason.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # Pillow loads in Finalize, not when the API starts
    from PIL import Image

GRID: Final = 4  # the background's signature: its mean colour in a GRID x GRID grid
# An output stands out when it is this far from the batch's median (and, for scale, further
# than three median absolute deviations, so a batch with a natural spread is not all outliers).
FILL_OUTLIER_POINTS: Final = 8.0  # percentage points of fill
CENTRE_OUTLIER: Final = 0.06  # fraction of the frame
BACKGROUND_OUTLIER: Final = 12.0  # mean absolute difference, 0..255


def measure(result: Image.Image, alpha: Image.Image) -> dict[str, Any]:
    """The subject's fill (% of the frame along its limiting side) and centre (fractions of the
    frame), and the background's mean colour per grid cell (None where the subject covers it)."""
    from PIL import Image

    from chalicelib.imaging.compose import subject_extent  # numpy, with Pillow: only where pixels are measured

    width, height = result.size
    box = subject_extent(alpha)
    out: dict[str, Any] = {"fill": None, "centerX": None, "centerY": None}
    if box is not None:
        out["fill"] = round(100 * max((box[2] - box[0]) / width, (box[3] - box[1]) / height), 2)
        out["centerX"] = round((box[0] + box[2]) / 2 / width, 4)
        out["centerY"] = round((box[1] + box[3]) / 2 / height, 4)
    small = (GRID * 16, GRID * 16)
    rgb = result.convert("RGB").resize(small, Image.Resampling.BOX)
    background = alpha.convert("L").resize(small, Image.Resampling.BOX).point(lambda v: 255 if v == 0 else 0)
    cells: list[list[int] | None] = []
    for row in range(GRID):
        for col in range(GRID):
            area = (col * 16, row * 16, (col + 1) * 16, (row + 1) * 16)
            mask = background.crop(area)
            if mask.getbbox() is None:
                cells.append(None)
                continue
            colours = rgb.crop(area)
            pixels = [p for p, m in zip(colours.getdata(), mask.getdata(), strict=True) if m]
            cells.append([round(sum(p[c] for p in pixels) / len(pixels)) for c in range(3)])
    out["backgroundGrid"] = cells
    return out


def _background_difference(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    diffs = [abs(x - y) for ca, cb in zip(a, b, strict=True) if ca and cb for x, y in zip(ca, cb, strict=True)]
    return sum(diffs) / len(diffs) if diffs else None


def _median_grid(grids: Sequence[Sequence[Any]]) -> list[list[float] | None]:
    median: list[list[float] | None] = []
    for index in range(GRID * GRID):
        cells = [g[index] for g in grids if g[index]]
        median.append([statistics.median(c[k] for c in cells) for k in range(3)] if cells else None)
    return median


def batch_consistency(outputs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """How consistent a batch is, from each output's (name, measure); None with fewer than two."""
    measured = [(name, m) for name, m in outputs if m.get("fill") is not None]
    if len(measured) < 2:
        return None
    fills = [float(m["fill"]) for _, m in measured]
    xs = [float(m["centerX"]) for _, m in measured]
    ys = [float(m["centerY"]) for _, m in measured]
    fill_median, x_median, y_median = statistics.median(fills), statistics.median(xs), statistics.median(ys)
    mad = statistics.median(abs(f - fill_median) for f in fills)
    grid = _median_grid([m["backgroundGrid"] for _, m in measured])
    differences = [_background_difference(m["backgroundGrid"], grid) for _, m in measured]
    outliers = []
    for (name, _), fill, x, y, diff in zip(measured, fills, xs, ys, differences, strict=True):
        reasons = []
        if abs(fill - fill_median) > max(FILL_OUTLIER_POINTS, 3 * mad):
            reasons.append(f"the subject fills {fill:.1f}% against the batch's {fill_median:.1f}%")
        off = max(abs(x - x_median), abs(y - y_median))
        if off > CENTRE_OUTLIER:
            reasons.append(f"the subject sits {100 * off:.0f}% of the frame away from where the batch's sit")
        if diff is not None and diff > BACKGROUND_OUTLIER:
            reasons.append(f"its background differs from the batch's by {diff:.1f} (of 255) on average")
        if reasons:
            outliers.append({"name": name, "reasons": reasons})
    known = [d for d in differences if d is not None]
    return {
        "images": len(measured),
        "fill": {"median": round(fill_median, 1), "min": round(min(fills), 1), "max": round(max(fills), 1)},
        "center": {
            "x": {"median": round(x_median, 3), "spread": round(max(xs) - min(xs), 3)},
            "y": {"median": round(y_median, 3), "spread": round(max(ys) - min(ys), 3)},
        },
        "backgroundDifference": {
            "median": round(statistics.median(known), 2) if known else None,
            "max": round(max(known), 2) if known else None,
        },
        "outliers": outliers,
    }
