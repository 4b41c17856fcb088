"""Checks the New batch page makes before anything is spent: what a model call would only find out
after it was paid for. Plain functions (tests/unit/test_web_checks.py).

- A marketplace preset that asks the product to fill the frame (chalicelib/core/presets.json
  `minFill`/`fillRange`) cannot be met by a subject smaller than its share of the preset's canvas
  unless enlarging is allowed: the workflow then ends the photo PRESET_UNMET after its model call
  (chalicelib/workflow/steps.py, compose.place). The subject's size is taken from its kept labels'
  boxes, else the whole photo (the largest it can be, so a photo flagged without boxes fails for sure).
- A budget below what sends every photo: how many it sends (the API's cap counts each call at the
  most it can cost, chalicelib/estimate.budget_call_usd).
- A transparent background in a format without an alpha channel (JPEG), and a format the preset's
  marketplace does not take.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.core import preset_rules as presets
from chalicelib.imaging import images as imaging

ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class PhotoSize:
    name: str
    width: int  # as seen (EXIF orientation applied)
    height: int
    subject: tuple[float, float] | None = None  # the kept labels' box, in px as seen; None: unknown


def photo_size(name: str, data: bytes, labels: Sequence[Mapping[str, Any]], kept: Sequence[str]) -> PhotoSize | None:
    """The photo's size as seen and its kept subject's box (from the header, no decoding)."""
    try:
        width, height, orientation = imaging.probe(data)
    except Exception:  # an unreadable photo is judged by the API and the workflow, not here
        return None
    if orientation in ROTATED:
        width, height = height, width
    boxes = []
    for label in labels:
        if label.get("name") not in kept:
            continue
        for instance in label.get("instances") or []:
            b = instance["box"]
            left, top, w, h = imaging.orient_box((b["left"], b["top"], b["width"], b["height"]), orientation)
            boxes.append((left, top, left + w, top + h))
    subject = None
    if boxes:
        left = min(b[0] for b in boxes)
        top = min(b[1] for b in boxes)
        right = max(b[2] for b in boxes)
        bottom = max(b[3] for b in boxes)
        subject = (max(1.0, (right - left) * width), max(1.0, (bottom - top) * height))
    return PhotoSize(name, width, height, subject)


@dataclass(frozen=True)
class Shortfall:
    name: str
    enlarge: float  # how many times the subject would have to be enlarged
    subject_px: tuple[int, int]
    certain: bool  # judged on the whole photo: it cannot meet the rule whatever the subject


def preset_shortfalls(
    key: str, placement: Mapping[str, Any], photos: Sequence[PhotoSize], *, allow_upscale: bool
) -> list[Shortfall]:
    """The photos whose subject is too small to fill the preset's canvas as its rules ask."""
    if allow_upscale or presets.required_fill(key) is None:
        return []
    applied = {**presets.defaults(key)["placement"], **{k: v for k, v in placement.items() if v}}
    width, height = float(applied.get("width") or 0), float(applied.get("height") or 0)
    fill = float(applied.get("fill") or 0)
    margin = float(applied.get("margin") or 0)
    if not (width and height and fill):
        return []
    room_w, room_h = width * (1 - 2 * margin / 100), height * (1 - 2 * margin / 100)
    out = []
    for photo in photos:
        bw, bh = photo.subject or (float(photo.width), float(photo.height))
        scale = fill / 100 * min(room_w / bw, room_h / bh)
        if scale > 1.0 + 1e-6:  # compose.place holds it at its own size: the fill rule fails
            out.append(Shortfall(photo.name, scale, (round(bw), round(bh)), photo.subject is None))
    return out


def rules_words(key: str) -> list[str]:
    """A preset's rules, as its marketplace states them."""
    return [str(rule["text"]) for rule in presets.get_preset(key)["rules"]]


def applied_words(key: str) -> str:
    apply = presets.get_preset(key)["apply"]
    return (
        f"Backdrop makes each photo {apply['width']:,} × {apply['height']:,} px on {apply['background']}, the product "
        f"filling {apply['fill']}% of it, as {str(apply.get('outputFormat', 'png')).upper()}."
    )


def photos_a_budget_sends(budget_usd: float, per_photo_usd: float, scene_usd: float, photos: int) -> int:
    """How many photos a budget sends, each counted at `per_photo_usd` (its calls at what the cap
    counts each), after the batch's scene call."""
    if per_photo_usd <= 0:
        return photos
    return max(0, min(photos, math.floor((budget_usd - scene_usd) / per_photo_usd + 1e-9)))


def format_problem(source: str, fmt: str | None, preset: str | None) -> str | None:
    """A format that cannot hold what the job makes: None when it can."""
    if source == "transparent" and fmt == "jpeg":
        return "JPEG cannot hold transparency: choose PNG or WebP for a transparent background."
    if preset and fmt:
        for rule in presets.get_preset(preset)["rules"]:
            if rule["kind"] == "formats" and fmt not in rule["value"]:
                return f"{fmt.upper()} is not a format this marketplace takes ({rule['text']})."
    return None
