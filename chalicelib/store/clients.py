"""Lazily created, cached boto3 clients: nothing touches AWS at import time.

Endpoints come from the SDK's own configuration (AWS_ENDPOINT_URL and friends, see
docs/aws-notes.md#n21-sdk-endpoint-configuration). Call `reset()` after changing the environment.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode retries throttling and 5xx with exponential backoff and jitter.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)
# SigV4 presigned URLs. Addressing stays "auto": virtual-hosted on AWS, path-style on an IP endpoint.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))
# boto3's default session is not thread-safe while it creates clients ("dictionary changed size
# during iteration"); on Lambda one invocation runs at a time, but the local stack and the tests
# run the workflow's handlers in parallel threads.
_creating = threading.Lock()


@functools.cache
def client(service: str) -> Any:
    with _creating:
        return boto3.client(service, config=_S3_CONFIG if service == "s3" else _CONFIG)


@functools.cache
def table(name: str) -> Any:
    with _creating:
        return boto3.resource("dynamodb", config=_CONFIG).Table(name)


def reset() -> None:
    client.cache_clear()
    table.cache_clear()
