"""The jobs table's item shapes and the store's limits: Decimals, new images, write pacing,
contention counts, pages and their cursors, the fields a finished image is written with."""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeSerializer

from chalicelib.core import contracts
from chalicelib.core.contracts import ErrorCode, ImageStatus
from chalicelib.core.errors import (
    BadRequest,
)

MAX_IMAGES_PAGE_SIZE: Final = 100
BATCH_GET_MAX_KEYS: Final = 100  # BatchGetItem's limit per request
WRITE_CHUNK: Final = 250  # items per writer thread (ten BatchWriteItem calls of 25)
# Batch reads and writes of one request run this many calls at once (boto3 keeps 10 connections
# per client by default).
PARALLEL_CALLS: Final = 8
MAX_CAUSE_LENGTH: Final = 2000
UNFINISHED_CAUSE: Final = "the workflow stopped before this image finished"
CANCELLED_CAUSE: Final = "the job was cancelled before this image finished"
WEBHOOK_PENDING: Final = "PENDING"
# optimistic transitions re-read and retry when another writer moved the image meanwhile (an
# image has four statuses after PENDING, so a fifth look finds it settled)
_TRANSITION_ATTEMPTS: Final = 5
_T = TypeVar("_T")
_BAD_CURSOR: Final = "cursor is not valid: pass nextCursor from the previous page"
# One partition (one job's items share `JOB#<jobId>`) takes at most 1,000 write units a second, a
# unit per started KB of an item (docs/aws-notes.md#n83-dynamodb-partition-write-rate): a job's
# image items are written at that pace, never faster, whatever the table's own capacity.
PARTITION_WRITE_UNITS_PER_S: Final = 1000
# ... of which the image items take this much: the rest stays for the job item's own writes while
# they are written (a cancel, the starter's updates), which a partition spent to the last unit
# would throttle
IMAGE_WRITE_UNITS_PER_S: Final = 0.8 * PARTITION_WRITE_UNITS_PER_S
BATCH_WRITE_MAX_ITEMS: Final = 25  # BatchWriteItem's limit per call
# TransactWriteItems takes up to 100 actions on distinct items (4 MB in all): a closing batch is
# 99 images and the job item's counts (docs/aws-notes.md#n99-batched-closing-of-a-cancelled-job)
TRANSACT_WRITE_MAX_ITEMS: Final = 100
TRANSACT_IMAGES_PER_CALL: Final = TRANSACT_WRITE_MAX_ITEMS - 1
# what DynamoDB leaves unprocessed (or throttles whole) is sent again after a wait of full jitter
# up to 0.05 s x 2^attempt, capped at 5 s: about 40 s of waiting at most for one batch
_BATCH_WRITE_ATTEMPTS: Final = 12
_BATCH_RETRY_BASE_S: Final = 0.05
_BATCH_RETRY_CAP_S: Final = 5.0


# cached labels of one object: (labels, why there are none — {code, message} — or None)
LabelEntry = tuple[list[dict[str, Any]], dict[str, str] | None]


def plain(value: Any) -> Any:
    """DynamoDB Decimals back to int/float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# An image item's count of writes to its outputs (set_outputs): the guard of a read-modify-write.
OUTPUTS_REVISION = "outputsRevision"
# An image item's count of regenerations ever claimed (never decremented): each claim's ordinal.
REGENERATION_ORDINAL = "regenerationOrdinal"


def _stored(value: Any) -> Any:
    """Python values as DynamoDB stores them (floats as Decimals)."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def _usd(amount: float) -> Decimal:
    """An amount in US dollars as DynamoDB adds it (exact to the micro-dollar, no float error)."""
    return Decimal(str(round(float(amount), 6)))


@dataclass(frozen=True)
class NewImage:
    """One image of a job about to be submitted."""

    image_id: str
    image_ref: str
    key: str  # the original's S3 key
    name: str
    labels: tuple[str, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    prompt: str | None = None
    background: Mapping[str, Any] | None = None  # the image's override of the job's background

    def to_record(self) -> dict[str, Any]:
        """As JSON: the S3 file POST /jobs writes and the starter reads (JobStore.image_items)."""
        record: dict[str, Any] = {
            "imageId": self.image_id,
            "imageRef": self.image_ref,
            "key": self.key,
            "name": self.name,
            "labels": list(self.labels),
            "boxes": [list(box) for box in self.boxes],
        }
        if self.prompt:
            record["prompt"] = self.prompt
        if self.background:
            record["background"] = dict(self.background)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> NewImage:
        return cls(
            image_id=str(record["imageId"]),
            image_ref=str(record["imageRef"]),
            key=str(record["key"]),
            name=str(record["name"]),
            labels=tuple(record.get("labels") or ()),
            boxes=tuple((box[0], box[1], box[2], box[3]) for box in record.get("boxes") or ()),
            prompt=record.get("prompt"),
            background=record.get("background"),
        )


def write_units(item: Mapping[str, Any]) -> int:
    """Write units of putting an item: one per started KB of its size, here its attribute names and
    values as JSON (a little more than DynamoDB counts: the pace errs slow)."""
    return max(1, math.ceil(len(json.dumps(item, default=str, separators=(",", ":"))) / 1024))


def check_storable(item: Mapping[str, Any]) -> None:
    """Serialize an item as boto3 will, before anything is written: a value DynamoDB cannot hold
    (a number past 9.99E+125, say) fails here, not half-way through a submit's writes."""
    serializer = TypeSerializer()
    for name, value in item.items():
        try:
            serializer.serialize(value)
        except (TypeError, ArithmeticError) as exc:  # decimal.Overflow and friends are ArithmeticErrors
            raise BadRequest(
                f"{name} holds a value that cannot be stored ({type(exc).__name__})", details=[{"field": name}]
            ) from exc


class WritePacer:
    """Spend at most `rate` units a second (a token bucket of one second's units)."""

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.tokens = rate
        self.last = clock()

    def spend(self, units: int) -> None:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        self.tokens -= units
        if self.tokens < 0:  # wait until the debt is paid
            wait = -self.tokens / self.rate
            self.sleep(wait)
            self.last += wait
            self.tokens = 0.0


class Contention:
    """What DynamoDB contention cost this store's writes: retries, waits, give-ups (a benchmark
    and the tests read it; a Lambda's store lives for one invocation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.retried_calls = 0
        self.retries = 0
        self.gave_up = 0
        self.worst_wait_s = 0.0
        self.total_wait_s = 0.0

    def record(self, retries: int, waited_s: float, *, gave_up: bool) -> None:
        with self._lock:
            self.calls += 1
            self.retried_calls += 1 if retries else 0
            self.retries += retries
            self.gave_up += 1 if gave_up else 0
            self.worst_wait_s = max(self.worst_wait_s, waited_s)
            self.total_wait_s += waited_s


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


# ---------------------------------------------------------------------------------- cursors
# A cursor is the page's last key plus the scope it was issued for (owner, and job for images),
# base64url-encoded. It is opaque to clients; a cursor from another owner, job or list is a 400.


def _encode_cursor(scope: str, key: Mapping[str, Any] | None) -> str | None:
    if not key:
        return None
    payload = json.dumps({"scope": scope, "key": plain(dict(key))}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, scope: str, expected_key: Mapping[str, Any], key_names: set[str]) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise BadRequest(_BAD_CURSOR) from exc
    if not isinstance(payload, dict) or payload.get("scope") != scope:
        raise BadRequest(_BAD_CURSOR)
    key = payload.get("key")
    if (
        not isinstance(key, dict)
        or set(key) != key_names
        or not all(isinstance(v, str) for v in key.values())
        or any(key.get(name) != value for name, value in expected_key.items())
    ):
        raise BadRequest(_BAD_CURSOR)
    return key


def _limit(limit: int, most: int) -> int:
    return max(1, min(int(limit), most))


@dataclass(frozen=True)
class _ImagesView:
    """Where a page of a job's images is read: the job partition, or one partition of an index."""

    index: str | None
    condition: Any
    fixed: dict[str, str]  # the cursor's key values this view fixes
    key_names: frozenset[str]  # the names in its LastEvaluatedKey
    sk_prefix: str | None = None  # the index sort key's prefix (a status inside a verdict)

    @classmethod
    def of(cls, job_id: str, status: ImageStatus | None, verdict: contracts.Verdict | None) -> _ImagesView:
        if verdict is not None:
            pk = contracts.verdict_index_pk(job_id, None if verdict is contracts.Verdict.NONE else verdict.value)
            condition = Key(contracts.VERDICT_INDEX_PK).eq(pk)
            prefix = contracts.verdict_index_sk(status.value, "") if status is not None else None
            if prefix:
                condition &= Key(contracts.VERDICT_INDEX_SK).begins_with(prefix)
            names = frozenset({"pk", "sk", contracts.VERDICT_INDEX_PK, contracts.VERDICT_INDEX_SK})
            return cls(contracts.VERDICT_INDEX, condition, {contracts.VERDICT_INDEX_PK: pk}, names, prefix)
        if status is not None:
            pk = contracts.status_index_pk(job_id, status.value)
            condition = Key(contracts.STATUS_INDEX_PK).eq(pk) & Key("sk").begins_with(contracts.IMAGE_SK_PREFIX)
            names = frozenset({"pk", "sk", contracts.STATUS_INDEX_PK})
            return cls(contracts.STATUS_INDEX, condition, {contracts.STATUS_INDEX_PK: pk}, names)
        condition = Key("pk").eq(contracts.job_pk(job_id)) & Key("sk").begins_with(contracts.IMAGE_SK_PREFIX)
        return cls(None, condition, {"pk": contracts.job_pk(job_id)}, frozenset({"pk", "sk"}))

    def owns(self, key: Mapping[str, str]) -> bool:
        """A cursor key inside this view's partition (and prefix)."""
        return self.sk_prefix is None or key[contracts.VERDICT_INDEX_SK].startswith(self.sk_prefix)


def _finished_fields(
    *,
    error_code: ErrorCode | str | None = None,
    cause: str | None = None,
    outputs: Sequence[Mapping[str, Any]] | None = None,
    attempts: Sequence[Mapping[str, Any]] | None = None,
    width: int | None = None,
    height: int | None = None,
    finished_at: str | None = None,
    verdict: str | None = None,
    model_calls: int | None = None,
    cost_usd: float | None = None,
) -> dict[str, Any]:
    """What an image that finishes is written with (None: the attribute is removed)."""
    return {
        "errorCode": ErrorCode(error_code).value if error_code else None,
        "cause": cause[:MAX_CAUSE_LENGTH] if cause else None,
        "outputs": [dict(o) for o in outputs] if outputs else None,
        # every attempt at the image (automatic re-rolls): seed, scorecards, cost, kept
        "attempts": [dict(a) for a in attempts] if attempts else None,
        "width": width,
        "height": height,
        "finishedAt": finished_at or contracts.utc_now_iso(),
        "verdict": verdict,
        "modelCalls": model_calls or None,
        "costUsd": round(cost_usd, 6) if cost_usd else None,
    }
