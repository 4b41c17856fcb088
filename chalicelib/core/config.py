"""Runtime configuration from environment variables (set per stage by the deploy tooling).

Read lazily, never at import time, so tests and the local stack can set them first. A missing
variable fails fast with its name instead of falling back to a made-up resource name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from chalicelib.core.errors import BackdropError


@dataclass(frozen=True)
class Settings:
    bucket_name: str
    table_name: str
    state_machine_arn: str
    region: str
    webhook_function_name: str = ""  # the webhook sender, started by a cancel (backdrop-{stage}-send_webhook)


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise BackdropError(f"Backdrop is misconfigured: environment variable {name} is not set")
    return value


def settings() -> Settings:
    return Settings(
        bucket_name=_required("BUCKET_NAME"),
        table_name=_required("JOBS_TABLE_NAME"),
        state_machine_arn=os.environ.get("STATE_MACHINE_ARN", ""),
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        webhook_function_name=os.environ.get("WEBHOOK_FUNCTION_NAME", ""),
    )


# --------------------------------------------------------------------------------------------
# Deployment settings: what a deployer may choose. The deploy writes each one it is given into
# every Lambda's environment (and uses the same values for IAM and the templates), so what the
# Lambdas read is what was deployed. The resource names above are outputs, not settings.


@dataclass(frozen=True)
class DeploymentSetting:
    name: str  # the environment variable the Lambdas read
    meaning: str
    default: str = ""


UPLOAD_RETENTION_DAYS: Final = "BACKDROP_UPLOAD_RETENTION_DAYS"
RESULT_RETENTION_DAYS: Final = "BACKDROP_RESULT_RETENTION_DAYS"
DEPLOYMENT_SETTINGS: Final = (
    DeploymentSetting(
        "BACKDROP_MODEL_IDS",
        'JSON, per model key, call -> model id: other inference profiles (e.g. {"stability-inpaint": '
        '{"inpaint": "eu.stability.stable-image-inpaint-v1:0", ...}})',
    ),
    DeploymentSetting(
        "BACKDROP_EXTENDED_ACCESS_MODELS", "comma-separated end-of-life models AWS still lets your account call"
    ),
    DeploymentSetting(
        "BACKDROP_MODEL_REGISTRY", "your own models.json (a local path; the deploy packages it with the Lambdas)"
    ),
    DeploymentSetting("CORS_ALLOW_ORIGIN", "the one browser origin allowed to call the API (none by default)"),
    DeploymentSetting("BACKDROP_APP_URL", "the web app's URL; job emails link to it"),
    DeploymentSetting(
        "BACKDROP_C2PA_CERT_CHAIN",
        "PEM certificate chain (leaf first) issued for the stage's Content Credentials KMS key; without it a "
        "self-issued one (docs/provenance.md)",
    ),
    DeploymentSetting(UPLOAD_RETENTION_DAYS, "days uploaded originals are kept before S3 deletes them", "30"),
    DeploymentSetting(
        RESULT_RETENTION_DAYS, "days results, reports and job records are kept before S3/DynamoDB delete them", "90"
    ),
)


def retention_days(name: str, values: Mapping[str, str] | None = None) -> int:
    """A retention setting as a whole number of days (its default when unset), from `values`
    (the deploy's settings) or this process's environment (the Lambdas)."""
    default = next(s.default for s in DEPLOYMENT_SETTINGS if s.name == name)
    raw = (os.environ if values is None else values).get(name, "").strip() or default
    try:
        days = int(raw)
    except ValueError as exc:
        raise BackdropError(f"Backdrop is misconfigured: {name} must be a whole number of days, not {raw!r}") from exc
    if days < 1:
        raise BackdropError(f"Backdrop is misconfigured: {name} must be at least 1 day")
    return days


def expires_at(name: str, now: float | None = None) -> int:
    """Epoch seconds after which an item kept for the retention setting `name` is deleted."""
    return int((time.time() if now is None else now) + retention_days(name) * 86_400)


def user_topic_arn_prefix() -> str:
    """What every user's job-email topic ARN starts with (contracts.user_topic_arn): only the
    reconciler publishes from a Lambda (the workflow's Notify step has it as a state machine
    substitution)."""
    return _required("USER_TOPIC_ARN_PREFIX")
