"""Lazily created, cached boto3 clients: nothing touches AWS at import time.

Endpoints come from the SDK's own configuration (AWS_ENDPOINT_URL and friends, see
docs/aws-notes.md#n21-sdk-endpoint-configuration). Call `reset()` after changing the environment.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Final

import boto3
from botocore.config import Config

# Standard retry mode retries throttling and 5xx with exponential backoff and jitter.
# max_pool_connections: one cached client is shared by every thread of a process: the label
# handler's DETECT_WORKERS (16) threads, the store's PARALLEL_CALLS, and in the local stack every
# Lambda, Map child and API request at once. botocore's pool keeps 10 connections by default, and
# each thread past it opens a connection that urllib3 then discards with a "Connection pool is
# full" warning (348 of them for a 200-photo batch in `make run`). Connections are opened only
# when needed, so a larger pool costs nothing idle (docs/aws-notes.md#n95-botocore-connection-pool).
MAX_POOL_CONNECTIONS: Final = 64
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=MAX_POOL_CONNECTIONS,
)
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
