"""Keep the local stack's moto flat in memory and linear in time over long runs.

Used by the local stack only; nothing here is deployed. moto 5.2.5 (pinned in sfn_hooks) keeps
per process, for as long as the process lives (docs/aws-notes.md#n54-what-moto-keeps-in-memory):

- Every model object it ever built (each DynamoDB item, every copy of one a query returned, each
  stream record, S3 object, shard iterator...) in a per-class list that feeds its web dashboard:
  nothing moto creates is ever freed. Here new objects are not listed (the dashboard, unused
  here, shows nothing; moto's reset still closes the S3 objects it can reach).

- DynamoDB: every TransactWriteItems deep-copies each table it touches, once per item, to roll
  back on failure. With one image item and the job item per transition, a 10,000-image job
  copies a 20,000-item table (and every stream record) 40,000 times: quadratic time and the
  churn behind most of the local stack's growth. Here the backup is the touched items only,
  and transactions are serialized (moto's whole-table rollback also dropped writes that other
  requests made meanwhile).
- DynamoDB Streams: every stream record and every shard iterator ever handed out. On AWS,
  records expire after 24 hours and iterators after 15 minutes; here the stack's poller trims
  the records it has delivered and the iterators it has used (`trim_stream`).
- Step Functions: a Distributed Map run keeps every child's history events until the run ends
  (tens of KB per image), each worker thread walks its items by recursion (holding every
  finished item's frame until the run ends, and past Python's recursion limit beyond ~1,000
  items per worker), and every Task state's thread is appended to a module list that is never
  emptied. Here child events are counted by type instead of kept (`child_event_counts`, which
  the cost benchmark reads: AWS bills the children's transitions, and moto discards their
  histories anyway), workers loop, and finished threads are dropped (`prune_threads`).

- DynamoDB, in time: every Query (a job's images, a user's jobs through the owner index) starts
  from the whole table sorted (`Table.all_items`), then keeps the matching items and sorts those
  again. With 20,000 items that is tens of milliseconds per call, paid by every poll of GET /jobs:
  time per image that grows with the job's size (a 10,000-image job ran at 1.5x the per-image
  time of a 100-image one). On AWS a Query reads one partition of the table or index. Here a
  Query on the table reads only its partition, and one on an index walks the items unsorted
  (the Query still sorts what it keeps).
- Step Functions, in time: every Lambda task and every Bedrock stand-in call built a new boto3
  client (a quarter of the local stack's CPU), and every JSONPath was parsed again per
  evaluation. Here both are cached (boto3 clients are thread-safe).

All of these touch private moto APIs: `install()` checks the version pinned by sfn_hooks.
"""

from __future__ import annotations

import collections
import contextvars
import copy
import inspect
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

from backend.local.sfn_hooks import _check_version

_child_events: collections.Counter[str] = collections.Counter()
_child_events_lock = threading.Lock()


def child_event_counts() -> dict[str, int]:
    """History events of Distributed Map children since install (or the last reset), by type."""
    with _child_events_lock:
        return dict(_child_events)


def reset_child_event_counts() -> None:
    with _child_events_lock:
        _child_events.clear()


# ---------------------------------------------------------------------------------- DynamoDB


def _key_of(table: Any, op_type: str, op: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    attrs = op["Item"] if op_type == "Put" else op["Key"]
    hash_key = DynamoType(attrs[table.hash_key_attr])
    range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    return hash_key, range_key


class _Backup:
    """What one transaction may change: the touched items as they were, each table's stream length."""

    def __init__(self, backend: Any, transact_items: Iterable[dict[str, Any]]) -> None:
        self.items: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, item or None)
        self.stream_lengths: dict[str, int] = {}
        self.whole_tables: dict[str, Any] = {}
        for entry in transact_items:
            try:
                op_type, op = next(iter(entry.items()))
                table = backend.tables[op["TableName"]]
            except (StopIteration, KeyError, AttributeError, TypeError):
                continue  # moto refuses the transaction before writing anything
            try:
                hash_key, range_key = _key_of(table, op_type, op)
            except (KeyError, TypeError, ValueError, AttributeError):
                # a key moto cannot read: keep the whole table, as moto would
                self.whole_tables.setdefault(table.name, copy.deepcopy(table))
                continue
            current = table.get_item(hash_key, range_key)
            self.items.append((table, hash_key, range_key, copy.deepcopy(current)))
            if table.stream_shard is not None:
                self.stream_lengths.setdefault(table.name, len(table.stream_shard.items))

    def restore(self, backend: Any) -> None:
        touched: dict[str, set[str]] = collections.defaultdict(set)
        for table, hash_key, range_key, item in reversed(self.items):
            if table.has_range_key:
                if item is None:
                    table.items.get(hash_key, {}).pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = item
            elif item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
            touched[table.name].add(repr((hash_key.to_json(), range_key.to_json() if range_key else None)))
        for name, length in self.stream_lengths.items():
            shard = backend.tables[name].stream_shard
            # a failed transaction leaves no stream record; records other writers added meanwhile stay
            kept = [
                record
                for record in shard.items[length:]
                if _record_key(backend.tables[name], record) not in touched[name]
            ]
            del shard.items[length:]
            shard.items.extend(kept)
        for name, table in self.whole_tables.items():
            backend.tables[name] = table


def _record_key(table: Any, record: Any) -> str:
    keys = record.record["dynamodb"]["Keys"]
    range_value = keys.get(table.range_key_attr) if table.range_key_attr else None
    return repr((keys[table.hash_key_attr], range_value))


def _install_transactions() -> Callable[[], None]:
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    real_copy = dynamodb_models.copy
    lock = threading.RLock()

    def deepcopy(value: Any, memo: Any = None) -> Any:
        # moto's own whole-table backup becomes the table itself (its rollback a no-op); the
        # item-level backup below is what rolls back
        return value if isinstance(value, Table) else real_copy.deepcopy(value, memo)

    shim = types.SimpleNamespace(**{name: getattr(real_copy, name) for name in ("copy", "error", "Error")})
    shim.deepcopy = deepcopy
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            backup = _Backup(self, transact_items[:100])
            try:
                return original(self, transact_items)
            except Exception:
                backup.restore(self)
                raise

    dynamodb_models.copy = shim
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        dynamodb_models.copy = real_copy
        DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]

    return undo


def trim_stream(table_name: str, delivered_through: str | None, keep_iterators: Iterable[str]) -> int:
    """Drop the stream records up to sequence number `delivered_through` (delivered, so no
    reader needs them) and every shard iterator but `keep_iterators`. Returns records dropped."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    dropped = 0
    for region, backend in dynamodb_backends[DEFAULT_ACCOUNT_ID].items():
        table = backend.tables.get(table_name)
        shard = table.stream_shard if table is not None else None
        if shard is not None and delivered_through is not None:
            # records are numbered from the shard's starting sequence number by position
            count = min(len(shard.items), int(delivered_through) + 1 - shard.starting_sequence_number)
            if count > 0:
                del shard.items[:count]
                shard.starting_sequence_number += count
                dropped += count
        iterators = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID][region].shard_iterators
        keep = set(keep_iterators)
        for arn in [arn for arn in list(iterators) if arn not in keep]:
            iterators.pop(arn, None)
    return dropped


# ---------------------------------------------------------------------------------- Step Functions


def _install_map_runs() -> Callable[[], None]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as component,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (
        DistributedItemProcessorWorker,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    class CountingEventManager(EventManager):
        """A map run's child history: counted by event type, not kept."""

        def _publish_history_event(
            self, event_id: int, source_event_id: int, event_type: Any, timestamp: Any, event_details: Any
        ) -> None:
            with _child_events_lock:
                _child_events[str(event_type)] += 1

    def eval_pool(self: Any, job: Any, worker_frame: Any) -> None:
        # moto's _eval_pool, as a loop instead of one recursion per item
        while True:
            if job is None:
                self._env.delete_frame(worker_frame)
                return
            job_frame = worker_frame.open_inner_frame()
            self._eval_job(env=job_frame, job=job)
            worker_frame.delete_frame(job_frame)
            if isinstance(job.job_output, Exception) or self.stopped():
                self._env.delete_frame(worker_frame)
                self._job_pool.close_job(job)
                return
            next_job = self._job_pool.next_job()
            if next_job is None:
                self._env.delete_frame(worker_frame)
                self._job_pool.close_job(job)
                return
            self._job_pool.close_job(job)
            job = next_job

    original_manager = component.EventManager
    original_pool = DistributedItemProcessorWorker._eval_pool
    component.EventManager = CountingEventManager
    DistributedItemProcessorWorker._eval_pool = eval_pool  # type: ignore[method-assign]

    def undo() -> None:
        component.EventManager = original_manager
        DistributedItemProcessorWorker._eval_pool = original_pool  # type: ignore[method-assign]

    return undo


def _install_caches() -> Callable[[], None]:
    import functools

    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path

    clients: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()
    original_client_for = boto_client.boto_client_for

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # moto's boto_client_for, built once per endpoint and per `boto3` it builds with (sfn_hooks
        # replaces that to sign with the stack's credentials); moto ignores the state's credentials
        endpoint = None if botocore_stubber.enabled else moto_server_port()
        key = (region, service, endpoint, boto_client.boto3)
        with lock:
            client = clients.get(key)
            if client is None:
                client = clients[key] = original_client_for(region, service, state_credentials)
        return client

    original_parse = json_path.parse
    boto_client.boto_client_for = client_for
    lambda_eval_utils.boto_client_for = client_for
    json_path.parse = functools.lru_cache(maxsize=4096)(original_parse)

    def undo() -> None:
        boto_client.boto_client_for = original_client_for
        lambda_eval_utils.boto_client_for = original_client_for
        json_path.parse = original_parse

    return undo


def prune_threads() -> int:
    """Forget the finished threads moto's interpreter lists (one per Task state run); returns
    how many are still alive."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    TMP_THREADS[:] = [thread for thread in TMP_THREADS if thread.is_alive()]
    return len(TMP_THREADS)


def _install_untracked_models() -> Callable[[], None]:
    from moto.core.common_models import BaseModel

    original_new = BaseModel.__dict__["__new__"]

    def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, cls).__new__(cls)  # moto's __new__ without the append

    BaseModel.__new__ = staticmethod(untracked_new)  # type: ignore[assignment]

    def undo() -> None:
        BaseModel.__new__ = original_new  # type: ignore[assignment]

    return undo


# The table a Query is running on, with the partition it reads (None: an index query)
_querying: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar("moto_query", default=None)


def _install_queries() -> Callable[[], None]:
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items
    signature = inspect.signature(original_query)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        partition = None if arguments.get("index_name") else arguments.get("hash_key")
        token = _querying.set((self, partition))
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _querying.reset(token)

    def all_items(self: Any) -> Any:
        current = _querying.get()
        if current is None or current[0] is not self:
            return original_all_items(self)  # a Scan: its pages rely on the sorted order
        partition = current[1]
        if partition is not None:
            held = self.items.get(partition)
            if held is None:
                return []
            return list(held.values()) if self.range_key_attr else [held]
        if self.range_key_attr:
            return [item for held in list(self.items.values()) for item in list(held.values())]
        return list(self.items.values())

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]

    def undo() -> None:
        Table.query = original_query  # type: ignore[method-assign]
        Table.all_items = original_all_items  # type: ignore[method-assign]

    return undo


def install_transactions() -> Callable[[], None]:
    """Only the transaction bounds: what an in-process executed state machine needs, whose Map
    children write the table from several threads at once (moto's whole-table deep copy races
    with them: "dictionary changed size during iteration"). Returns the undo."""
    return _install_transactions()


def install_dynamodb() -> Callable[[], None]:
    """The transaction and Query bounds: DynamoDB on moto answering in the time its calls take on
    AWS's terms (touched items backed up, one partition read), for benchmarks of one API call on
    a large table. Returns the undo."""
    undo = [_install_transactions(), _install_queries()]

    def uninstall() -> None:
        for step in reversed(undo):
            step()

    return uninstall


def install() -> Callable[[], None]:
    """Patch moto; returns a function that undoes the patches."""
    _check_version()
    undo = [
        _install_untracked_models(),
        _install_transactions(),
        _install_queries(),
        _install_map_runs(),
        _install_caches(),
    ]

    def uninstall() -> None:
        for step in reversed(undo):
            step()

    return uninstall
