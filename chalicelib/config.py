"""Runtime configuration from environment variables (set per stage by the deploy tooling).

Read lazily, never at import time, so tests and the local stack can set them first. A missing
variable fails fast with its name instead of falling back to a made-up resource name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from chalicelib.errors import BackdropError


@dataclass(frozen=True)
class Settings:
    bucket_name: str
    table_name: str
    state_machine_arn: str
    region: str


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
    )
