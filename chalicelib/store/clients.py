"""Lazily created, cached boto3 clients: nothing touches AWS at import time.

Endpoints come from the SDK's own configuration (AWS_ENDPOINT_URL and friends, see
docs/aws-notes.md#n21-sdk-endpoint-configuration). Call `reset()` after changing the environment.
"""

from __future__ import annotations

import functools
import os
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


# A boto3 session is not thread-safe while it creates clients ("dictionary changed size during
# iteration"); on Lambda one invocation runs at a time, but the local stack and the tests run the
# workflow's handlers in parallel threads.
_creating = threading.Lock()


@functools.cache
def _loader(data_path: str | None) -> Any:
    # one per process: the models are read-only data, parsed once whatever the session
    from chalicelib.store import sdk_data

    return sdk_data.loader(data_path)


# what a session reads from the environment once, when it is made (its credentials, profile and
# Region): a session is made again when any of them changed, as boto3's default session is when
# the local stack sets it to None after changing them (backend/local/stack.py)
_SESSION_ENV: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


def session() -> Any:
    """The clients' one session: boto3's, on a botocore session whose data loader skips what a
    cold start paid for nothing (chalicelib/store/sdk_data.py). Made again after `reset()` or a
    change of the environment it read."""
    return _session_for(tuple(os.environ.get(name) for name in _SESSION_ENV))


@functools.cache
def _session_for(environment: tuple[str | None, ...]) -> Any:
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("data_loader", _loader(core.get_config_variable("data_path")))
    return boto3.Session(botocore_session=core)


@functools.cache
def client(service: str) -> Any:
    with _creating:
        return session().client(service, config=_config(service == "s3"))


class Table:
    """The jobs table as boto3's Table resource presents it (Python values in and out, Key/Attr
    conditions, batch_writer), on a plain DynamoDB client with boto3's own transformation handlers:
    what the resource does for its client, without the resource. boto3.resource("dynamodb") loads
    and lists a second model (resources-1) and builds its classes at run time: ~11 ms of CPU of
    the API's cold start, for the seven calls the store makes (docs/performance.md)."""

    def __init__(self, client: Any, name: str) -> None:
        self.name = self.table_name = name
        self.meta = _Meta(client)

    def get_item(self, **kwargs: Any) -> Any:
        return self.meta.client.get_item(TableName=self.name, **kwargs)

    def put_item(self, **kwargs: Any) -> Any:
        return self.meta.client.put_item(TableName=self.name, **kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        return self.meta.client.update_item(TableName=self.name, **kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        return self.meta.client.delete_item(TableName=self.name, **kwargs)

    def query(self, **kwargs: Any) -> Any:
        return self.meta.client.query(TableName=self.name, **kwargs)

    def scan(self, **kwargs: Any) -> Any:
        return self.meta.client.scan(TableName=self.name, **kwargs)

    def batch_writer(self, overwrite_by_pkeys: list[str] | None = None) -> Any:
        from boto3.dynamodb.table import BatchWriter

        return BatchWriter(self.name, self.meta.client, overwrite_by_pkeys=overwrite_by_pkeys)

    def __repr__(self) -> str:
        return f"<table {self.name}>"


class _Meta:
    def __init__(self, client: Any) -> None:
        self.client = client


def high_level_dynamodb() -> Any:
    """A new DynamoDB client that takes and gives Python values, as a Table resource's client does:
    the four handlers boto3's DynamoDBHighLevelResource registers on its client, on this client's
    own event copy (the shared `client("dynamodb")` keeps the wire format)."""
    from boto3.dynamodb.transform import TransformationInjector, copy_dynamodb_params

    with _creating:
        made = session().client("dynamodb", config=_config())
    injector = TransformationInjector()
    events = made.meta.events
    events.register("provide-client-params.dynamodb", copy_dynamodb_params, unique_id="dynamodb-create-params-copy")
    events.register(
        "before-parameter-build.dynamodb",
        injector.inject_condition_expressions,
        unique_id="dynamodb-condition-expression",
    )
    events.register(
        "before-parameter-build.dynamodb", injector.inject_attribute_value_input, unique_id="dynamodb-attr-value-input"
    )
    events.register(
        "after-call.dynamodb", injector.inject_attribute_value_output, unique_id="dynamodb-attr-value-output"
    )
    return made


@functools.cache
def table(name: str) -> Table:
    return Table(high_level_dynamodb(), name)


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
    _session_for.cache_clear()
