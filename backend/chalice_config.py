"""The Chalice stage config's per-function settings, derived from chalicelib/core/functions.py.

Chalice reads .chalice/config.json itself, so the memory and timeout of every declared function
are written into it: `python -m backend.chalice_config` rewrites the committed file (every stage
in it), and the deploy applies the same settings to the stage it deploys. A test fails when the
committed file and the declarations disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from backend import jsonfmt
from chalicelib.core.functions import FUNCTIONS

CONFIG_PATH = Path(__file__).resolve().parents[1] / ".chalice" / "config.json"


def function_settings() -> dict[str, dict[str, int]]:
    """Chalice's `lambda_functions` memory and timeout for every declared function that sets them."""
    settings: dict[str, dict[str, int]] = {}
    for function in FUNCTIONS:
        entry = {}
        if function.memory_mb is not None:
            entry["lambda_memory_size"] = function.memory_mb
        if function.timeout_s is not None:
            entry["lambda_timeout"] = function.timeout_s
        if entry:
            settings[function.name] = entry
    return settings


def apply_function_settings(stage: dict[str, Any]) -> dict[str, Any]:
    """Set every declared memory and timeout in one stage's config; other keys (a policy file
    the deploy added, say) are kept."""
    functions = stage.setdefault("lambda_functions", {})
    for name, settings in function_settings().items():
        functions.setdefault(name, {}).update(settings)
    return stage


def render(config: dict[str, Any]) -> str:
    return jsonfmt.dumps(config)


def derived_config(path: Path = CONFIG_PATH) -> str:
    """The config file's text with every stage's function settings taken from the declarations."""
    config = json.loads(path.read_text())
    for stage in config.get("stages", {}).values():
        apply_function_settings(stage)
    return render(config)


def main() -> int:
    text = derived_config()
    if CONFIG_PATH.read_text() == text:
        print(f"{CONFIG_PATH}: up to date")
        return 0
    CONFIG_PATH.write_text(text)
    print(f"wrote {CONFIG_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
