"""A stage's deployment settings: the one list (chalicelib.core.config.DEPLOYMENT_SETTINGS), given in
the deployer's environment or with `--set NAME=VALUE`, remembered per stage so a re-deploy keeps
them, and applied to this process so IAM, the templates and the Lambdas' environment all see the
same values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from backend.errors import DeployError
from chalicelib.core.config import DEPLOYMENT_SETTINGS, retention_days

NAMES = tuple(s.name for s in DEPLOYMENT_SETTINGS)
SAVED_FILE = "settings.json"


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            raise DeployError(f"--set needs NAME=VALUE, not {assignment!r}")
        values[name.strip()] = value
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
        raise DeployError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return values


def effective(
    stage_dir: Path, assignments: dict[str, str], unset: list[str], environ: dict[str, str] | None = None
) -> dict[str, str]:
    """Saved values, overridden by the environment, overridden by --set; --unset removes one."""
    environ = dict(os.environ) if environ is None else environ
    saved_path = stage_dir / SAVED_FILE
    values: dict[str, str] = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    values.update({name: environ[name] for name in NAMES if environ.get(name, "").strip()})
    values.update(assignments)
    for name in unset:
        if name not in NAMES:
            raise DeployError(f"unknown setting {name}; known: {', '.join(NAMES)}")
        values.pop(name, None)
    return {name: values[name] for name in NAMES if values.get(name, "").strip()}


def apply(values: dict[str, str]) -> None:
    """Make this process see exactly these settings (the registry and retention read os.environ)."""
    for name in NAMES:
        if name in values:
            os.environ[name] = values[name]
        else:
            os.environ.pop(name, None)
    from chalicelib.core.config import RESULT_RETENTION_DAYS, UPLOAD_RETENTION_DAYS
    from chalicelib.models import registry

    try:
        registry.all_models()  # a bad BACKDROP_MODEL_IDS or registry path fails here, by name
        for name in (UPLOAD_RETENTION_DAYS, RESULT_RETENTION_DAYS):
            retention_days(name)
    except Exception as exc:
        raise DeployError(f"deployment settings: {exc}") from exc


def save(stage_dir: Path, values: dict[str, str]) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / SAVED_FILE).write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


def describe(values: dict[str, str]) -> str:
    if not values:
        return "settings: defaults (see docs/deploy.md, 'Settings')"
    return "settings: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
