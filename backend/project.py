"""The generated Chalice project a stage is deployed from, outside the tracked tree.

`chalice deploy` reads `.chalice/config.json` and records what it created in
`.chalice/deployed/<stage>.json` beside it. Writing account ids, resource names and policies into
the tracked config would leave every deployer's checkout modified; so each stage gets its own
project under `.deploy/<stage>/` (ignored by git): a fresh copy of the app code, the tracked
config with this stage's environment and policy files added, and chalice's own records, which
are kept from one deploy to the next (they are how `chalice deploy` updates and `chalice delete`
finds what to remove).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from backend import chalice_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_ROOT = ROOT / ".deploy"
APP_FILES = ("app.py", "requirements.txt")
APP_DIRS = ("chalicelib",)
PACKAGED_REGISTRY = "chalicelib/models/deployment-models.json"
API_GATEWAY_STAGE = "api"  # the REST API's stage name in every Chalice stage (its URL ends in /api)


def stage_dir(stage: str, root: Path = DEPLOY_ROOT) -> Path:
    return root / stage


def build(
    project: Path,
    stage: str,
    env: dict[str, str],
    policies: dict[str, dict[str, Any]],
    *,
    source: Path = ROOT,
    registry_file: str | None = None,
) -> Path:
    """Lay out the stage's project: app code copied from `source`, the tracked config plus
    this stage's environment and per-function policies. Returns the project directory."""
    project.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        shutil.copy2(source / name, project / name)
    for name in APP_DIRS:
        shutil.rmtree(project / name, ignore_errors=True)
        shutil.copytree(source / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (source / "vendor").is_dir():
        shutil.rmtree(project / "vendor", ignore_errors=True)
        shutil.copytree(source / "vendor", project / "vendor")
    env = dict(env)
    if registry_file:  # the deployer's own models.json travels with the code
        shutil.copy2(registry_file, project / PACKAGED_REGISTRY)
        env["BACKDROP_MODEL_REGISTRY"] = f"$LAMBDA_TASK_ROOT/{PACKAGED_REGISTRY}"
    chalice_dir = project / ".chalice"
    chalice_dir.mkdir(exist_ok=True)
    config = json.loads((source / ".chalice" / "config.json").read_text())
    stage_config = config["stages"].setdefault(stage, {"api_gateway_stage": API_GATEWAY_STAGE})
    stage_config["environment_variables"] = env
    stage_config["autogen_policy"] = False
    functions = chalice_config.apply_function_settings(stage_config)["lambda_functions"]
    for old in chalice_dir.glob("policy-*.json"):
        old.unlink()
    for name, document in policies.items():
        file_name = f"policy-{stage}-{name}.json"
        (chalice_dir / file_name).write_text(json.dumps(document, indent=2))
        functions.setdefault(name, {})["iam_policy_file"] = file_name
    (chalice_dir / "config.json").write_text(chalice_config.render(config))
    return project


def deployed_record(project: Path, stage: str) -> dict[str, Any] | None:
    path = project / ".chalice" / "deployed" / f"{stage}.json"
    return json.loads(path.read_text()) if path.exists() else None
