"""Marketplace presets: each marketplace's published image rules as data (presets.json), what
Backdrop does to meet them, and the compliance check every output of a preset job gets.

A job's `preset` (a key of presets.json) sets the background colour, the canvas, the subject's
fill and the output format, unless the job sets them itself; Finalize re-frames the subject to
the canvas (chalicelib.imaging.compose.place) and checks the result against every rule: PASS or FAIL,
each with its reason and the public page the rule comes from. A subject too small to reach the
preset's fill without being enlarged past its own pixels fails the image (PRESET_UNMET) with
that reason, unless the job allows upscaling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from chalicelib.core import backgrounds, contracts
from chalicelib.core.preset_rules import (  # re-exported: the data half lives in core for the front ends
    PRESETS_PATH as PRESETS_PATH,
)
from chalicelib.core.preset_rules import (
    all_presets as all_presets,
)
from chalicelib.core.preset_rules import (
    defaults as defaults,
)
from chalicelib.core.preset_rules import (
    get_preset as get_preset,
)
from chalicelib.core.preset_rules import (
    public as public,
)
from chalicelib.core.preset_rules import (
    required_fill as required_fill,
)

if TYPE_CHECKING:  # Pillow loads in Finalize, not when the API starts
    from PIL import Image

PASS: Final = "PASS"
FAIL: Final = "FAIL"
# A subject's extent closer than this to the canvas edge counts as touching it.
EDGE_TOUCH_PX: Final = 1


def _fill(box: tuple[int, int, int, int] | None, size: tuple[int, int]) -> float:
    """The share (%) of the frame the subject takes along its limiting side."""
    if box is None:
        return 0.0
    return 100 * max((box[2] - box[0]) / size[0], (box[3] - box[1]) / size[1])


def check(key: str, result: Image.Image, alpha: Image.Image, fmt: str, *, transparent: bool = False) -> dict[str, Any]:
    """Every rule of preset `key` against one output: `{"preset", "outcome", "checks": [...]}`.

    `result` is the output as written (RGB or RGBA), `alpha` the subject's alpha on it."""
    from chalicelib.imaging.compose import subject_extent  # numpy, with Pillow: only where pixels are measured

    preset = get_preset(key)
    width, height = result.size
    box = subject_extent(alpha)
    fill = _fill(box, result.size)
    checks = []
    for rule in preset["rules"]:
        kind = rule["kind"]
        outcome, reason = PASS, ""
        if kind == "backgroundColor":
            outcome, reason = _background(rule, result, alpha, transparent)
        elif kind == "minFill":
            ok = fill >= rule["value"] - 0.5
            outcome, reason = (PASS if ok else FAIL), f"the product fills {fill:.1f}% (at least {rule['value']}%)"
        elif kind == "fillRange":
            ok = rule["min"] - 0.5 <= fill <= rule["max"] + 0.5
            outcome = PASS if ok else FAIL
            reason = f"the product fills {fill:.1f}% ({rule['min']}% to {rule['max']}%)"
        elif kind in ("minLongestSide", "maxLongestSide", "minShortestSide", "maxSide", "maxPixels"):
            outcome, reason = _size(kind, rule["value"], width, height)
        elif kind == "aspect":
            w, h = (int(v) for v in rule["value"].split(":"))
            ok = abs(width / height - w / h) <= 0.01
            outcome, reason = (
                (PASS if ok else FAIL),
                f"{width}x{height} is {width / height:.3f}:1 (wanted {rule['value']})",
            )
        elif kind == "noEdgeTouch":
            touching = box is not None and (
                box[0] < EDGE_TOUCH_PX
                or box[1] < EDGE_TOUCH_PX
                or box[2] > width - EDGE_TOUCH_PX
                or box[3] > height - EDGE_TOUCH_PX
            )
            outcome = FAIL if touching or box is None else PASS
            reason = "the product touches the edge of the image" if touching else "the product is clear of every edge"
            if box is None:
                reason = "no product was found in the image"
        elif kind == "formats":
            ok = fmt in rule["value"]
            outcome, reason = (PASS if ok else FAIL), f"{fmt.upper()} ({', '.join(v.upper() for v in rule['value'])})"
        elif kind == "colorSpace":
            # Backdrop writes 8-bit RGB without an embedded profile, which viewers take as sRGB
            ok = result.mode in ("RGB", "RGBA") and "icc_profile" not in result.info
            outcome, reason = (PASS if ok else FAIL), f"8-bit {result.mode}, no ICC profile: read as sRGB"
        checks.append(
            {
                "rule": rule["id"],
                "outcome": outcome,
                "reason": reason,
                "requirement": rule["text"],
                "source": rule["source"],
                "confirmed": rule["confirmed"],
            }
        )
    outcome = FAIL if any(c["outcome"] == FAIL for c in checks) else PASS
    return {"preset": key, "outcome": outcome, "fill": round(fill, 1), "checks": checks}


def _size(kind: str, value: int, width: int, height: int) -> tuple[str, str]:
    longest, shortest = max(width, height), min(width, height)
    if kind == "minLongestSide":
        return (PASS if longest >= value else FAIL), f"the longest side is {longest} px (at least {value:,})"
    if kind == "maxLongestSide":
        return (PASS if longest <= value else FAIL), f"the longest side is {longest} px (at most {value:,})"
    if kind == "minShortestSide":
        return (PASS if shortest >= value else FAIL), f"the shortest side is {shortest} px (at least {value:,})"
    if kind == "maxSide":
        return (PASS if longest <= value else FAIL), f"the longest side is {longest} px (at most {value:,})"
    pixels = width * height
    return (PASS if pixels <= value else FAIL), f"{pixels:,} px (at most {value:,})"


def _background(rule: Mapping[str, Any], result: Image.Image, alpha: Image.Image, transparent: bool) -> tuple[str, str]:
    """The share of background pixels (alpha 0) within `tolerance` of the rule's colour."""
    import numpy as np  # loaded by Finalize, not when the API starts

    if transparent:
        return FAIL, "the background is transparent, not a colour"
    wanted = np.array(backgrounds.parse_color(rule["color"]), dtype=np.int16)
    rgb = np.asarray(result.convert("RGB"), dtype=np.int16)
    background = np.asarray(alpha.convert("L")) == 0
    count = int(background.sum())
    if count == 0:
        return FAIL, "no background is visible to check"
    deviation = np.abs(rgb[background] - wanted).max(axis=1)
    share = float((deviation <= rule["tolerance"]).mean())
    target = rule["color"].upper()
    reason = f"{100 * share:.2f}% of the background is {target}"
    if rule["tolerance"]:
        reason += f" within {rule['tolerance']}"
    if share < rule["minShare"]:
        worst = rgb[background][int(deviation.argmax())]
        reason += f" (at least {100 * rule['minShare']:.1f}% wanted; furthest pixel RGB {tuple(int(v) for v in worst)})"
        return FAIL, reason
    return PASS, reason


ERROR_CODE: Final = contracts.ErrorCode.PRESET_UNMET
