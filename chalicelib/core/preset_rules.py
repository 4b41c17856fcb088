"""Marketplace presets as data (presets.json beside this module): each marketplace's published image
rules and what a preset sets on a job. Standard library only, so the web app and the CLI can show a
preset's rules and check photos against them before submit; the compliance check of a delivered
image is chalicelib.catalogue.presets.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Final

from chalicelib.core.errors import ValidationError

PRESETS_PATH: Final = Path(__file__).resolve().parent / "presets.json"


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PRESETS_PATH.read_text())
    return data


def all_presets() -> dict[str, dict[str, Any]]:
    presets: dict[str, dict[str, Any]] = _load()["presets"]
    return presets


def get_preset(key: str) -> dict[str, Any]:
    preset = all_presets().get(key)
    if preset is None:
        known = ", ".join(sorted(all_presets()))
        raise ValidationError(
            f"unknown preset {key[:40]!r}; presets: {known}",
            details=[{"field": "preset", "message": f"must be one of {known}", "code": "PRESET_UNKNOWN"}],
        )
    return preset


def public() -> list[dict[str, Any]]:
    """GET /presets: every preset, what it applies and its rules with their sources."""
    return [{"key": key, **preset} for key, preset in all_presets().items()]


def defaults(key: str) -> dict[str, Any]:
    """What a preset sets on a job that does not set it itself: background, placement, format, shadow."""
    apply = get_preset(key)["apply"]
    out: dict[str, Any] = {
        "background": {"source": "color", "color": apply["background"]},
        "placement": {k: apply[k] for k in ("width", "height", "fill", "margin") if k in apply},
        "outputFormat": apply.get("outputFormat"),
    }
    if "shadow" in apply:
        out["shadow"] = apply["shadow"]
    return out


def required_fill(key: str) -> float | None:
    """The smallest fill (%) a preset's rules accept, if any rule asks for one."""
    for rule in get_preset(key)["rules"]:
        if rule["kind"] == "minFill":
            return float(rule["value"])
        if rule["kind"] == "fillRange":
            return float(rule["min"])
    return None
