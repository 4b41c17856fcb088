"""Lazily created, cached boto3 clients: nothing touches AWS at import time.

Tests and the local stack call `reset()` after changing endpoints or credentials.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode retries throttling and 5xx with exponential backoff and jitter.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def _endpoint() -> str | None:
    # Only the local stack sets this (moto server on 127.0.0.1); on AWS it is unset.
    return os.environ.get("BACKDROP_AWS_ENDPOINT_URL") or None


@functools.cache
def client(service: str) -> Any:
    kwargs: dict[str, Any] = {"config": _CONFIG}
    if _endpoint():
        kwargs["endpoint_url"] = _endpoint()
    if service == "s3":
        # SigV4 presigned URLs; virtual-host addressing breaks on a loopback endpoint.
        addressing = "path" if _endpoint() else "auto"
        kwargs["config"] = _CONFIG.merge(Config(signature_version="s3v4", s3={"addressing_style": addressing}))
    return boto3.client(service, **kwargs)


@functools.cache
def table(name: str) -> Any:
    kwargs: dict[str, Any] = {"config": _CONFIG}
    if _endpoint():
        kwargs["endpoint_url"] = _endpoint()
    return boto3.resource("dynamodb", **kwargs).Table(name)


def reset() -> None:
    client.cache_clear()
    table.cache_clear()
