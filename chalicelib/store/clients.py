"""Lazily created, cached boto3 clients: nothing touches AWS at import time.

Endpoints come from the SDK's own configuration (AWS_ENDPOINT_URL and friends, see
docs/aws-notes.md#n21-sdk-endpoint-configuration). Call `reset()` after changing the environment.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from botocore.config import Config

# Standard retry mode retries throttling and 5xx with exponential backoff and jitter.
# max_pool_connections: one cached client is shared by every thread of a process: the label
# handler's DETECT_WORKERS (16) threads, the store's PARALLEL_CALLS, and in the local stack every
# Lambda, Map child and API request at once. botocore's pool keeps 10 connections by default, and
# each thread past it opens a connection that urllib3 then discards with a "Connection pool is
# full" warning (348 of them for a 200-photo batch in `make run`). Connections are opened only
# when needed, so a larger pool costs nothing idle (docs/aws-notes.md#n95-botocore-connection-pool).
MAX_POOL_CONNECTIONS: Final = 64


@functools.cache
def _config(s3: bool = False) -> Config:
    # built on the first client, not at import: botocore and boto3 are imported by the first
    # handler that needs AWS (the API's cold start, docs/performance.md)
    from botocore.config import Config

    base = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )
    # SigV4 presigned URLs. Addressing stays "auto": virtual-hosted on AWS, path-style on an IP endpoint.
    return base.merge(Config(signature_version="s3v4")) if s3 else base


# boto3's default session is not thread-safe while it creates clients ("dictionary changed size
# during iteration"); on Lambda one invocation runs at a time, but the local stack and the tests
# run the workflow's handlers in parallel threads.
_creating = threading.Lock()


@functools.cache
def client(service: str) -> Any:
    import boto3

    with _creating:
        return boto3.client(service, config=_config(service == "s3"))


@functools.cache
def table(name: str) -> Any:
    import boto3

    with _creating:
        return boto3.resource("dynamodb", config=_config()).Table(name)


class _Lazy:
    """A client made on its first use (`client(service)`, looked up at each use so `reset()` and
    the tests' stand-ins still apply): a handler that may not call a service does not pay for
    its client, about 100 ms of CPU for S3's first (docs/performance.md)."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service), name)

    def __repr__(self) -> str:
        return f"<lazy {self._service} client>"


def lazy(service: str) -> Any:
    return _Lazy(service)


def reset() -> None:
    client.cache_clear()
    table.cache_clear()
