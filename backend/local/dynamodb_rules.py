"""DynamoDB answering as AWS does where moto is softer: transaction conflicts, partition throughput,
and TransactWriteItems' ClientRequestToken.

Used by the tests and the local stack; nothing here is deployed. moto applies every request at
once, in any number, and ignores ClientRequestToken. AWS does not (docs/aws-notes.md, N65-N67):

- **Transaction conflicts** (N65). DynamoDB does not lock items for a transaction; it cancels what
  overlaps. A TransactWriteItems touching an item another TransactWriteItems is writing at that
  moment is cancelled: `TransactionCanceledException`, one `CancellationReasons` entry per item
  (`TransactionConflict` for the contended ones, `None` for the others), and nothing is written.
  A PutItem / UpdateItem / DeleteItem of an item an ongoing transaction is writing fails with
  `TransactionConflictException`. botocore retries neither. Here every transaction holds its items
  from the moment moto receives it until it is answered (moto serializes transactions, so one
  waiting behind another on the same item is overlapping it, as on AWS), and tests can inject
  conflicts: the next N transactions touching an item, or each transaction with a probability
  drawn from a seeded generator.
- **Partition throughput** (N66). Each partition serves at most 1,000 write units and 3,000 read
  units per second, on-demand tables included; past that, a request is throttled with
  `ProvisionedThroughputExceededException` (reason `TableWriteKeyRangeThroughputExceeded` /
  `TableReadKeyRangeThroughputExceeded`), a transaction is cancelled with `ThrottlingError` on the
  item, and BatchWriteItem hands the throttled requests back in `UnprocessedItems`. Here one token
  bucket per (table, partition key value) holds at most one second of units and refills at the
  rate: a write of an item costs 1 unit per started KB (the larger of the item before and after),
  transactional writes 2x; a read 1 unit per started 4 KB (half for an eventually consistent
  read), charged after the read as DynamoDB does.
- **ClientRequestToken** (N67). A TransactWriteItems repeated with the token of one that succeeded
  in the last 10 minutes succeeds again and writes nothing; with other parameters it fails with
  `IdempotentParameterMismatchException`; while the first is still running,
  `TransactionInProgressException`. `lose_answers(n)` applies the next n transactions and then
  answers 500, as a dropped connection would, so tests can prove a retried one is not applied twice.

The rules are hooked into moto's DynamoDB request handler, which both the in-process mock and the
local stack's moto server call. API (each `install_*` returns its undo):

    install_partition_limits(write_units_per_s=1000, read_units_per_s=3000) -> undo
    install_transaction_rules() -> TransactionRules (conflict_next / conflict_randomly /
        lose_answers / stats, and .undo())
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import math
import random
import threading
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

# per partition (and so per partition key value at most), per second
# (docs/aws-notes.md#n66-dynamodb-partition-throughput)
WRITE_UNITS_PER_PARTITION: Final = 1000
READ_UNITS_PER_PARTITION: Final = 3000
WRITE_UNIT_BYTES: Final = 1024
READ_UNIT_BYTES: Final = 4096
# how long a TransactWriteItems client token is remembered (docs/aws-notes.md#n67-dynamodb-clientrequesttoken)
CLIENT_TOKEN_WINDOW_S: Final = 600.0

_CONFLICT_MESSAGE: Final = "Transaction is ongoing for the item"
# on-demand tables' wording (docs/aws-notes.md#n66-dynamodb-partition-throughput)
_THROTTLE_MESSAGE: Final = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your "
    "table or index so please try again shortly. If exceptions persist, check if you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
_THROTTLE_ITEM_MESSAGE: Final = _THROTTLE_MESSAGE
_SINGLE_WRITE_CONFLICT: Final = "Operation was rejected because there is an ongoing transaction for the item."

ItemKey = tuple[str, str, str]  # (table, partition key value, sort key value), as JSON text


# ---------------------------------------------------------------------------------- errors


def _errors() -> Any:
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.exceptions import TransactionCanceledException

    class Throttled(JsonRESTError):
        def __init__(self, table_arn: str, operation: str) -> None:
            super().__init__(
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", _THROTTLE_MESSAGE
            )
            self.description = json.dumps(
                {
                    "__type": self.error_type,
                    "message": _THROTTLE_MESSAGE,
                    "ThrottlingReasons": [
                        {"reason": f"Table{operation}KeyRangeThroughputExceeded", "resource": table_arn}
                    ],
                }
            )

    class Conflict(JsonRESTError):
        def __init__(self) -> None:
            super().__init__(
                "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                _SINGLE_WRITE_CONFLICT,
            )

    class InProgress(JsonRESTError):
        def __init__(self) -> None:
            super().__init__(
                "com.amazonaws.dynamodb.v20120810#TransactionInProgressException",
                "Transaction with the same client token is still in progress",
            )

    class Mismatch(JsonRESTError):
        def __init__(self) -> None:
            super().__init__(
                "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                "Request has a client token that was used with different parameters",
            )

    class AnswerLost(JsonRESTError):
        code = 500

        def __init__(self) -> None:
            super().__init__(
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "The transaction was applied; its answer was lost (injected by backend.local.dynamodb_rules)",
            )

    return types.SimpleNamespace(
        Throttled=Throttled,
        Conflict=Conflict,
        InProgress=InProgress,
        Mismatch=Mismatch,
        AnswerLost=AnswerLost,
        Cancelled=TransactionCanceledException,
    )


def _cancelled(reasons: list[tuple[str | None, str | None]]) -> Exception:
    """TransactionCanceledException as DynamoDB words it: one reason per item, in request order."""
    exc: Exception = _errors().Cancelled([(code, message, None) for code, message in reasons])
    return exc


# ---------------------------------------------------------------------------------- item sizes


def _value_size(value: dict[str, Any]) -> int:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return int(DynamoType(value).size())


def _item_size(attrs: dict[str, Any] | None) -> int:
    if not attrs:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in attrs.items())


def _units(size: int, unit_bytes: int) -> int:
    return max(1, math.ceil(size / unit_bytes))


# ---------------------------------------------------------------------------------- partition limits


@dataclass
class _Bucket:
    level: float
    at: float


@dataclass
class PartitionLimits:
    """A token bucket per (table, partition key value, read or write), holding at most one second
    of units. `throttled` counts refusals by operation."""

    write_units_per_s: float = WRITE_UNITS_PER_PARTITION
    read_units_per_s: float = READ_UNITS_PER_PARTITION
    clock: Callable[[], float] = time.monotonic
    throttled: collections.Counter[str] = field(default_factory=collections.Counter)
    consumed: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "write": 0.0})
    _buckets: dict[tuple[str, str, str], _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _rate(self, kind: str) -> float:
        return self.write_units_per_s if kind == "write" else self.read_units_per_s

    def _bucket(self, kind: str, table: str, partition: str) -> _Bucket:
        rate = self._rate(kind)
        now = self.clock()
        if len(self._buckets) > 4096:
            # a bucket that has filled up again is what a new one starts as: forgotten, so a long
            # run (a bucket per uploaded object's labels) stays flat in memory
            self._buckets = {
                k: b for k, b in self._buckets.items() if b.level + (now - b.at) * self._rate(k[0]) < self._rate(k[0])
            }
        bucket = self._buckets.get((kind, table, partition))
        if bucket is None:
            bucket = self._buckets[(kind, table, partition)] = _Bucket(rate, now)
        else:
            bucket.level = min(rate, bucket.level + (now - bucket.at) * rate)
            bucket.at = now
        return bucket

    def take_writes(self, table: str, needs: dict[str, float]) -> list[str]:
        """Take `needs` write units from each partition, all or none; answers the partitions short of units."""
        with self._lock:
            buckets = {partition: self._bucket("write", table, partition) for partition in needs}
            short = [p for p, units in needs.items() if buckets[p].level < units]
            if short:
                return short
            for partition, units in needs.items():
                buckets[partition].level -= units
                self.consumed["write"] += units
            return []

    def may_read(self, table: str, partition: str) -> bool:
        with self._lock:
            return self._bucket("read", table, partition).level > 0

    def charge_read(self, table: str, partition: str, units: float) -> None:
        """A read is charged after it ran (what it read is known then): the bucket may go below zero."""
        with self._lock:
            self._bucket("read", table, partition).level -= units
            self.consumed["read"] += units


# ---------------------------------------------------------------------------------- transactions


@dataclass
class _Token:
    digest: str
    done_at: float | None  # None while the first request runs


@dataclass
class TransactionRules:
    """Conflicts between overlapping writes, ClientRequestToken, and what tests inject."""

    clock: Callable[[], float] = time.monotonic
    stats: collections.Counter[str] = field(default_factory=collections.Counter)
    undo: Callable[[], None] = lambda: None
    _held: dict[ItemKey, int] = field(default_factory=dict)  # item -> transactions writing it now
    _injected: dict[ItemKey | None, int] = field(default_factory=dict)
    _probability: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)
    _lose: int = 0
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests inject

    def conflict_next(self, count: int, *, table: str | None = None, pk: Any = None, sk: Any = None) -> None:
        """Refuse the next `count` writes of the item (`pk`, `sk`) of `table` as if another
        transaction held it: a transaction is cancelled with TransactionConflict, a PutItem /
        UpdateItem / DeleteItem fails with TransactionConflictException. No table given: the next
        `count` transactions, whatever they touch."""
        item = (table, json.dumps(pk), json.dumps(sk)) if table else None
        with self._lock:
            self._injected[item] = self._injected.get(item, 0) + count

    def conflict_randomly(self, probability: float, seed: int = 0) -> None:
        """Cancel each transaction with `probability` (a seeded generator: the same run each time)."""
        with self._lock:
            self._probability = probability
            self._rng = random.Random(seed)

    def lose_answers(self, count: int) -> None:
        """Lose the next `count` answers to TransactWriteItems: each is applied (or, repeated
        with a known token, replayed), then answered 500, as a dropped connection would be."""
        with self._lock:
            self._lose += count

    def quiet(self) -> None:
        """No more injected conflicts or lost answers (overlaps still conflict)."""
        with self._lock:
            self._injected.clear()
            self._probability = 0.0
            self._lose = 0

    # -- the rules

    def _injected_conflicts(self, items: list[ItemKey]) -> set[int]:
        hit = set()
        for index, item in enumerate(items):
            for wanted in (item, None):
                if self._injected.get(wanted, 0) > 0:
                    self._injected[wanted] -= 1
                    hit.add(index)
                    break
        if not hit and self._probability and self._rng.random() < self._probability:
            hit.add(self._rng.randrange(len(items)) if items else 0)
        return hit

    def begin_transaction(self, items: list[ItemKey]) -> None:
        """Hold the items, or raise the cancellation AWS would answer."""
        with self._lock:
            conflicts = {i for i, item in enumerate(items) if self._held.get(item)}
            if conflicts:
                self.stats["overlaps"] += 1
            else:
                conflicts = self._injected_conflicts(items)
                if conflicts:
                    self.stats["injected"] += 1
            if conflicts:
                self.stats["cancelled"] += 1
                raise _cancelled(
                    [
                        ("TransactionConflict", _CONFLICT_MESSAGE) if i in conflicts else (None, None)
                        for i in range(len(items))
                    ]
                )
            for item in items:
                self._held[item] = self._held.get(item, 0) + 1

    def end_transaction(self, items: list[ItemKey]) -> None:
        with self._lock:
            for item in items:
                left = self._held.get(item, 0) - 1
                if left > 0:
                    self._held[item] = left
                else:
                    self._held.pop(item, None)

    def check_single_write(self, item: ItemKey) -> None:
        """Raise TransactionConflictException when a transaction is writing the item, or when a
        conflict was injected for this very item (`conflict_next` with a key)."""
        with self._lock:
            injected = self._injected.get(item, 0) > 0
            if injected:
                self._injected[item] -= 1
                self.stats["injected"] += 1
            if injected or self._held.get(item):
                self.stats["single_write_conflicts"] += 1
                raise _errors().Conflict()

    def claim_token(self, token: str, digest: str) -> bool:
        """True: a request with this token succeeded already (answer success, write nothing)."""
        now = self.clock()
        with self._lock:
            for name in [
                n for n, t in self._tokens.items() if t.done_at is not None and now - t.done_at > CLIENT_TOKEN_WINDOW_S
            ]:
                del self._tokens[name]
            known = self._tokens.get(token)
            if known is None:
                self._tokens[token] = _Token(digest, None)
                return False
            if known.digest != digest:
                raise _errors().Mismatch()
            if known.done_at is None:
                raise _errors().InProgress()
            self.stats["replayed"] += 1
            return True

    def settle_token(self, token: str, succeeded: bool) -> None:
        with self._lock:
            if succeeded:
                self._tokens[token].done_at = self.clock()
            else:
                self._tokens.pop(token, None)  # a failed request leaves nothing to repeat

    def take_lost_answer(self) -> bool:
        with self._lock:
            if self._lose > 0:
                self._lose -= 1
                self.stats["answers_lost"] += 1
                return True
            return False


# ---------------------------------------------------------------------------------- keys


def _item_key(table: Any, attrs: dict[str, Any]) -> ItemKey:
    """An item's identity from its wire-format attributes ({"S": ...})."""
    hash_value = _wire_plain(attrs.get(table.hash_key_attr))
    range_value = _wire_plain(attrs.get(table.range_key_attr)) if table.range_key_attr else None
    return (table.name, json.dumps(hash_value), json.dumps(range_value))


def _wire_plain(value: dict[str, Any] | None) -> Any:
    if not value:
        return None
    return next(iter(value.values()))


# ---------------------------------------------------------------------------------- the hooks

_limits: PartitionLimits | None = None
_rules: TransactionRules | None = None
_patched: dict[str, Any] = {}
_install_lock = threading.Lock()


def _table(handler: Any, name: str) -> Any:
    return handler.dynamodb_backend.get_table(name)


def _existing(handler: Any, table: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        item = handler.dynamodb_backend.get_item(table.name, key)
    except Exception:  # moto answers the request's own error when it runs it
        return None
    return item.to_json()["Attributes"] if item is not None else None


def _write_units(handler: Any, table: Any, op: str, request: dict[str, Any]) -> int:
    if op == "Put":
        size = max(_item_size(request["Item"]), _item_size(_existing(handler, table, _key_of(table, request["Item"]))))
    else:
        size = _item_size(_existing(handler, table, request["Key"]))
    return _units(size, WRITE_UNIT_BYTES)


def _key_of(table: Any, item: dict[str, Any]) -> dict[str, Any]:
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def _throttle_writes(handler: Any, table: Any, needs: dict[str, float]) -> list[str]:
    assert _limits is not None
    short = _limits.take_writes(table.name, needs)
    if short:
        _limits.throttled["write"] += 1
    return short


def _single_write(op: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    def wrap(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        @functools.wraps(original)
        def handle(self: Any) -> Any:
            body = self.body
            table = _table(self, body["TableName"])
            attrs = body["Item"] if op == "Put" else body["Key"]
            item = _item_key(table, attrs)
            if _rules is not None:
                _rules.check_single_write(item)
            if _limits is not None:
                units = _write_units(self, table, op, body)
                if _throttle_writes(self, table, {item[1]: units}):
                    raise _errors().Throttled(table.table_arn, "Write")
            return original(self)

        return handle

    return wrap


def _transact_write(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def handle(self: Any) -> Any:
        body = self.body
        entries = body.get("TransactItems") or []
        parsed = []
        for entry in entries:
            op, request = next(iter(entry.items()))
            table = _table(self, request["TableName"])
            attrs = request["Item"] if op == "Put" else request["Key"]
            parsed.append((op, request, table, _item_key(table, attrs)))
        items = [item for _, _, _, item in parsed]
        token = body.get("ClientRequestToken")
        digest = ""
        if _rules is not None and token:
            payload = {k: v for k, v in body.items() if k != "ClientRequestToken"}
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
            if _rules.claim_token(token, digest):
                if _rules.take_lost_answer():  # the replay's answer can be lost too
                    raise _errors().AnswerLost()
                return _empty_result()
        succeeded = False
        try:
            if _rules is not None:
                _rules.begin_transaction(items)
            try:
                if _limits is not None:
                    needs: dict[tuple[str, str], float] = collections.defaultdict(float)
                    for op, request, table, item in parsed:
                        units = 1 if op == "ConditionCheck" else _write_units(self, table, op, request)
                        needs[(table.name, item[1])] += 2 * units  # transactional writes cost double
                    short: set[tuple[str, str]] = set()
                    for name in {t for t, _ in needs}:
                        per_table = {p: u for (t, p), u in needs.items() if t == name}
                        short.update((name, p) for p in _throttle_writes(self, _table(self, name), per_table))
                    if short:
                        raise _cancelled(
                            [
                                ("ThrottlingError", _THROTTLE_ITEM_MESSAGE)
                                if (item[0], item[1]) in short
                                else (None, None)
                                for item in items
                            ]
                        )
                result = original(self)
                succeeded = True
            finally:
                if _rules is not None:
                    _rules.end_transaction(items)
        finally:
            if _rules is not None and token:
                _rules.settle_token(token, succeeded)
        if _rules is not None and _rules.take_lost_answer():
            raise _errors().AnswerLost()
        return result

    return handle


def _empty_result() -> Any:
    from moto.dynamodb.responses import DynamoResult

    return DynamoResult({})


def _batch_write(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def handle(self: Any) -> Any:
        if _limits is None:
            return original(self)
        body = self.body
        kept: dict[str, list[Any]] = {}
        unprocessed: dict[str, list[Any]] = {}
        for name, requests in body["RequestItems"].items():
            table = _table(self, name)
            for request in requests:
                kind, inner = next(iter(request.items()))
                op = "Put" if kind == "PutRequest" else "Delete"
                attrs = inner["Item"] if op == "Put" else inner["Key"]
                item = _item_key(table, attrs)
                units = _write_units(self, table, op, inner)
                if _throttle_writes(self, table, {item[1]: units}):
                    unprocessed.setdefault(name, []).append(request)
                else:
                    kept.setdefault(name, []).append(request)
        if not kept:
            # every request throttled: DynamoDB answers the exception, not an empty batch
            raise _errors().Throttled(_table(self, next(iter(unprocessed))).table_arn, "Write")
        body["RequestItems"] = kept
        result = original(self)
        if unprocessed:
            result.result["UnprocessedItems"] = unprocessed
        return result

    return handle


def _read_partition(table: Any, attrs: dict[str, Any]) -> str:
    return _item_key(table, attrs)[1]


def _get_item(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def handle(self: Any) -> Any:
        if _limits is None:
            return original(self)
        body = self.body
        table = _table(self, body["TableName"])
        partition = _read_partition(table, body["Key"])
        if not _limits.may_read(table.name, partition):
            _limits.throttled["read"] += 1
            raise _errors().Throttled(table.table_arn, "Read")
        result = original(self)
        units = _units(_item_size((result.result or {}).get("Item")), READ_UNIT_BYTES)
        _limits.charge_read(table.name, partition, units if body.get("ConsistentRead") else units / 2)
        return result

    return handle


def _query(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def handle(self: Any) -> Any:
        # a Query on the table reads one partition: charged by what it read (its items' sizes);
        # an index query is not limited here (the owner index spreads owners over partitions)
        if _limits is None or self.body.get("IndexName"):
            return original(self)
        body = self.body
        table = _table(self, body["TableName"])
        partition = _query_partition(body, table)
        if partition is not None and not _limits.may_read(table.name, partition):
            _limits.throttled["read"] += 1
            raise _errors().Throttled(table.table_arn, "Read")
        result = original(self)
        items = (result.result or {}).get("Items") or []
        if partition is None and items:
            partition = _read_partition(table, items[0])
        if partition is not None:
            units = _units(sum(_item_size(item) for item in items), READ_UNIT_BYTES)
            _limits.charge_read(table.name, partition, units if body.get("ConsistentRead") else units / 2)
        return result

    return handle


def _query_partition(body: dict[str, Any], table: Any) -> str | None:
    """The partition key value a Query names (`pk = :v`), when it can be read off the request."""
    values = body.get("ExpressionAttributeValues") or {}
    names = body.get("ExpressionAttributeNames") or {}
    expression = body.get("KeyConditionExpression") or ""
    for clause in expression.split(" AND "):
        left, _, right = clause.strip().strip("()").partition("=")
        left, right = left.strip(), right.strip()
        if names.get(left, left) == table.hash_key_attr and right in values:
            return json.dumps(_wire_plain(values[right]))
    return None


_WRAPPERS: Final[dict[str, Callable[[Callable[[Any], Any]], Callable[[Any], Any]]]] = {
    "put_item": _single_write("Put"),
    "update_item": _single_write("Update"),
    "delete_item": _single_write("Delete"),
    "transact_write_items": _transact_write,
    "batch_write_item": _batch_write,
    "get_item": _get_item,
    "query": _query,
}


def _patch() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if _patched:
        return
    for name, wrapper in _WRAPPERS.items():
        original = getattr(DynamoHandler, name)
        _patched[name] = original
        setattr(DynamoHandler, name, wrapper(original))


def _unpatch_if_unused() -> None:
    from moto.dynamodb.responses import DynamoHandler

    if _limits is not None or _rules is not None:
        return
    for name, original in _patched.items():
        setattr(DynamoHandler, name, original)
    _patched.clear()


def install_partition_limits(
    write_units_per_s: float = WRITE_UNITS_PER_PARTITION,
    read_units_per_s: float = READ_UNITS_PER_PARTITION,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], None]:
    """Throttle each partition key value past these rates (AWS's by default) on every DynamoDB
    table moto serves in this process. Returns the undo; `partition_limits()` is the live state."""
    global _limits
    limits = PartitionLimits(write_units_per_s, read_units_per_s, clock)
    with _install_lock:
        _limits = limits
        _patch()

    def undo() -> None:
        global _limits
        with _install_lock:
            if _limits is limits:  # a later install (another stack in this process) stays
                _limits = None
            _unpatch_if_unused()

    return undo


def partition_limits() -> PartitionLimits | None:
    """The installed limits (their counters), or None."""
    return _limits


def install_transaction_rules(*, clock: Callable[[], float] = time.monotonic) -> TransactionRules:
    """Transaction conflicts and ClientRequestToken as DynamoDB answers them, on every table moto
    serves in this process. Returns the rules (inject with them; `.undo()` removes them)."""
    global _rules
    rules = TransactionRules(clock=clock)

    def undo() -> None:
        global _rules
        with _install_lock:
            if _rules is rules:
                _rules = None
            _unpatch_if_unused()

    rules.undo = undo
    with _install_lock:
        _rules = rules
        _patch()
    return rules


def installed_rules() -> TransactionRules | None:
    return _rules


def install(
    *, partition_limits: bool = True, write_units_per_s: float = WRITE_UNITS_PER_PARTITION
) -> Callable[[], None]:
    """Everything, for the local stack. Returns the undo."""
    steps: list[Callable[[], None]] = [install_transaction_rules().undo]
    if partition_limits:
        steps.append(install_partition_limits(write_units_per_s))

    def undo() -> None:
        for step in reversed(steps):
            step()

    return undo


def held_items() -> Iterable[ItemKey]:
    """Items some transaction is writing now (for tests' checks that nothing stays held)."""
    return list(_rules._held) if _rules is not None else []
