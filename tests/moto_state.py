"""The tests' bucket and table, created once per process and restored into each test's new moto.

Creating them through the AWS APIs (backend/resources.py: a bucket with its public access block and
encryption, the table with its indexes and stream) costs about 50 ms of CPU: two clients and five
calls through botocore and moto's parsers, in every one of the hundreds of tests that use them. The
first test of a process (of each pytest-xdist worker) creates them exactly so, and the moto backends
that holds them are copied; every later test starts from a fresh copy of that state (well under a
millisecond), inside its own `mock_aws`, which has just reset every backend. So each test still
starts from the same clean state: nothing another test wrote (an item, an object, a bucket setting,
another service's resource) survives, since the copy is taken before any test runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from backend.resources import create_resources


@dataclass(frozen=True)
class _Snapshot:
    resources: dict[str, Any]
    # (the service's BackendDict, account id, Region, that Region's backend as it was just created)
    backends: tuple[tuple[Any, str, str, Any], ...]
    bucket_accounts: dict[str, tuple[str, str]]


_SNAPSHOTS: dict[tuple[str, str, str], _Snapshot] = {}


def fresh_resources(*, bucket: str, table: str, region: str) -> dict[str, Any]:
    """The bucket and table of create_resources, in the mock_aws that is active (and was just
    reset): created the first time, restored from their state then on later calls."""
    key = (bucket, table, region)
    snapshot = _SNAPSHOTS.get(key)
    if snapshot is None:
        _assert_empty()
        created = create_resources(bucket=bucket, table=table, region=region)
        _SNAPSHOTS[key] = _take(created)
        return dict(created)
    _restore(snapshot)
    return dict(snapshot.resources)


# The services create_resources calls. Others in use then (IAM's, which moto makes for itself to
# find the account of a request's access key) are moto's to build again in each test.
_SERVICES = frozenset({"s3", "dynamodb"})


def _in_use() -> list[tuple[Any, str, str, Any]]:
    from moto.core.base_backend import BackendDict

    return [
        (backends, account, region, backend)
        for backends in list(BackendDict._instances)
        if backends.service_name in _SERVICES
        for account, regions in backends.items()
        for region, backend in regions.items()
    ]


def _assert_empty() -> None:
    """The snapshot must hold the resources and nothing else: taken right after mock_aws's reset."""
    from moto.s3.models import s3_backends

    assert not s3_backends.bucket_accounts, f"moto already holds buckets: {sorted(s3_backends.bucket_accounts)}"
    for _, _, _, backend in _in_use():
        for attribute in ("buckets", "tables"):
            assert not getattr(backend, attribute, None), f"moto already holds {attribute} in {backend!r}"


def _take(created: dict[str, Any]) -> _Snapshot:
    from moto.s3.models import s3_backends

    backends = tuple((b, account, region, copy.deepcopy(backend)) for b, account, region, backend in _in_use())
    return _Snapshot(dict(created), backends, dict(s3_backends.bucket_accounts))


def _restore(snapshot: _Snapshot) -> None:
    from moto.core.base_backend import backend_lock
    from moto.s3.models import s3_backends

    # Under the lock moto creates a Region's backend with: a thread still calling AWS (one an
    # earlier test left running) could otherwise create an empty backend over the restored one,
    # between moto's check and its write, and leave the bucket named in bucket_accounts but gone.
    with backend_lock:
        _assert_empty()
        for backends, account, region, backend in snapshot.backends:
            regions = backends[account]  # registers the service with moto's reset, as a first call would
            dict.__setitem__(regions, region, copy.deepcopy(backend))
        s3_backends.bucket_accounts.update(snapshot.bucket_accounts)
