"""Orchestration cost per 1,000 images: Backdrop's design beside the original AWS sample's.

Prices (us-east-1, from docs/aws-notes.md#n12-step-functions-prices; verify before relying on them):
Standard workflows $0.025 per 1,000 state transitions; Express $1.00 per million requests plus
$0.00001667 per GB-second, billed in 64 MB steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable

STANDARD_PER_TRANSITION = 0.025 / 1000
EXPRESS_PER_REQUEST = 1.0 / 1_000_000
EXPRESS_PER_GB_SECOND = 0.00001667
EXPRESS_MEMORY_GB = 64 / 1024
SAMPLE_STATES_PER_IMAGE = 5  # the sample's Standard child: build request, invoke, parse, status, done
MODEL_SECONDS_PER_CALL = 6.0  # typical image-model latency assumed for the Express duration (UNCONFIRMED)


def success_path_states() -> int:
    """States one image passes through on the Stability path, read from the real ASL file."""
    from backend.statemachine import load_template

    process = next(s for s in json.loads(load_template())["States"].values() if s["Type"] == "Map")
    child = process["ItemProcessor"]
    path, state = [], child["StartAt"]
    while state:
        path.append(state)
        spec = child["States"][state]
        if spec["Type"] == "Choice":  # the Stability branch
            state = next(c["Next"] for c in spec["Choices"] if c.get("StringEquals") == "stability")
        else:
            state = spec.get("Next")
    return len(path)


def run(row: Callable[[str, str, str, bool | None], None]) -> None:
    states = success_path_states()
    model_calls = 2
    child_seconds = model_calls * MODEL_SECONDS_PER_CALL + 1.0  # + Lambda steps
    ours = 1000 * (EXPRESS_PER_REQUEST + child_seconds * EXPRESS_MEMORY_GB * EXPRESS_PER_GB_SECOND)
    sample = 1000 * SAMPLE_STATES_PER_IMAGE * STANDARD_PER_TRANSITION
    if_standard = 1000 * states * STANDARD_PER_TRANSITION
    row("states per image (from the ASL)", f"{states}", "-", None)
    row(
        "orchestration per 1,000 images",
        f"${ours:.4f} (Express children) vs sample ${sample:.4f} (Standard)",
        "<= 1/2 of sample",
        ours <= sample / 2,
    )
    row("same ASL with Standard children", f"${if_standard:.4f}", "(why Express)", None)
