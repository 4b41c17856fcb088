"""An image's outputs as stored and shown: which output goes out (the variant picked, or all of
them for an image recorded before variants were chosen between) and the verdict it carries.

Pure reads of the stored image (stdlib only): the table owner, the workflow, the archive and the
front ends agree on "the delivered output" by calling these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def delivered_outputs(image: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """What goes out of an image: its delivered output (all of them for an image recorded
    before variants were chosen between)."""
    outputs = list(image.get("outputs") or [])
    if not any("delivered" in o for o in outputs):
        return outputs
    return [o for o in outputs if o.get("delivered")]


def delivered_output(image: Mapping[str, Any]) -> Mapping[str, Any] | None:
    chosen = delivered_outputs(image)
    return chosen[0] if chosen else None


def verdict_of(output: Mapping[str, Any] | None) -> str | None:
    """The image's verdict: its delivered output's scorecard outcome."""
    outcome = ((output or {}).get("quality") or {}).get("outcome")
    return str(outcome) if outcome else None
