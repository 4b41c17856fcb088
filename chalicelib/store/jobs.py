"""The jobs table, owned here: item shapes, keys, Decimals, pages and cursors, status transitions.

No other module reads or writes these items (the one other writer of the table is Powertools'
idempotency utility, with its own `IDEMPOTENCY#<owner>` items: chalicelib/api/idempotency.py). A job
is one item (`pk = JOB#<jobId>`, `sk = JOB`, listed per owner through the `byOwner` index) and
one item per image (`sk = IMAGE#<imageId>`); cached labels are one item per uploaded object.
Every status change is a named operation with its condition:

- a job goes SUBMITTED → RUNNING (the starter) → COMPLETED / PARTIAL / FAILED (the report), or
  from SUBMITTED / RUNNING to CANCELLED (its owner), which nothing overwrites; a finished job goes
  to DELETING (its owner), which nothing overwrites either, until its tombstone replaces it;
- an image goes PENDING → RUNNING → SUCCEEDED / FAILED (or CANCELLED), and never leaves a
  terminal status.

A deleted job leaves a tombstone (`sk = DELETED`, expired by the table's TTL) saying what was
removed, so a repeated DELETE answers the same. Each user's webhook signing secret is one item.
Work handed to a background run is noted under one partition (`pk = BACKGROUND`) until it is done,
for the reconciler's sweep.

The job item's `counts` (one number per image status) move in the same transaction as the image's
conditional update, so GET /jobs shows live progress and a repeated step cannot count twice.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import operator
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.core import config, contracts
from chalicelib.core.contracts import ClosingStatus, ErrorCode, ImageStatus, JobStatus, NotificationStatus
from chalicelib.core.errors import (
    CONDITION_FAILED,
    DYNAMODB_CONTENTION_RETRY,
    SERVER_ERROR_CODES,
    THROTTLING_CODES,
    BadRequest,
    StorageError,
    cancellation_codes,
    client_error_code,
    is_contention,
)
from chalicelib.core.outputs import delivered_output, verdict_of

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


# ---------------------------------------------------------------------------------- the store


class JobStore:
    """Every read and write of the jobs table, given its boto3 Table resource."""

    def __init__(
        self, table: Any, sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None
    ) -> None:
        self.table = table
        self.sleep = sleep
        self.clock: Callable[[], float] = time.monotonic  # the image writes' pace (tests fake it)
        self._rng = rng or random.Random()
        self.contention = Contention()

    # ------------------------------------------------------------------ keys

    @staticmethod
    def _job_key(job_id: str) -> dict[str, str]:
        return {"pk": contracts.job_pk(job_id), "sk": contracts.JOB_SK}

    @staticmethod
    def _image_key(job_id: str, image_id: str) -> dict[str, str]:
        return {"pk": contracts.job_pk(job_id), "sk": contracts.image_sk(image_id)}

    @staticmethod
    def _labels_key(object_key: str) -> dict[str, str]:
        return {"pk": contracts.labels_pk(object_key), "sk": contracts.LABELS_SK}

    def _query_all(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a query, page by page (a 10,000-image job spans many 1 MB pages)."""
        while True:
            page = self.table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _images_condition(job_id: str) -> Any:
        return Key("pk").eq(contracts.job_pk(job_id)) & Key("sk").begins_with(contracts.IMAGE_SK_PREFIX)

    # ------------------------------------------------------------------ jobs

    def image_items(
        self,
        job_id: str,
        images: Sequence[NewImage],
        *,
        expires: int,
        status: ImageStatus = ImageStatus.PENDING,
        cause: str | None = None,
    ) -> list[dict[str, Any]]:
        """A job's image items as they are first written: PENDING, or (a job cancelled before its
        images were written) already CANCELLED with `cause`."""
        items = []
        for image in images:
            item: dict[str, Any] = {
                **self._image_key(job_id, image.image_id),
                "imageId": image.image_id,
                "imageRef": image.image_ref,
                "key": image.key,
                "name": image.name,
                "labels": list(image.labels),
                # the only numbers: as Decimals directly (a JSON round trip per item costs ~1 s of
                # CPU for 10,000 images)
                "boxes": [[Decimal(str(v)) for v in box] for box in image.boxes],
                "status": status.value,
                **contracts.image_view_keys(job_id, image.image_id, status.value, None),
                contracts.TTL_ATTRIBUTE: expires,
            }
            if cause:
                item["cause"] = cause
            if image.prompt:
                item["prompt"] = image.prompt
            if image.background:
                item["background"] = dict(image.background)
            items.append(item)
        return items

    def put_job(
        self,
        *,
        job_id: str,
        owner: str,
        model: str,
        settings: Mapping[str, Any],
        images: Sequence[NewImage],
        created_at: str | None = None,
        notify: bool = True,
        email: str | None = None,
        webhook_url: str | None = None,
        retry_of: str | None = None,
        estimate: Mapping[str, Any] | None = None,
        images_file: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Write a SUBMITTED job, whose INSERT on the stream starts the workflow. `notify`: whether
        its email goes out; `email`: the owner's address when they submitted it; `retry_of`: the
        job whose failed images it sends again; `estimate`: what POST /jobs said it would cost
        (kept, so the job's views say the same figure).

        `images_file` (POST /jobs): the S3 key of `images` as records (NewImage.to_record). Only
        the job item is written, with its image count and that key (`imagesPending`); the starter
        writes the image items at the partition's pace (write_images) before it starts the
        workflow. A 10,000-image submit is then one PutItem, not ten seconds of one partition's
        writes inside API Gateway's 29 s, and nothing is written before the job item, so no failure
        leaves images without their job (docs/aws-notes.md#n83-dynamodb-partition-write-rate).

        Without it (tests, benchmarks, tools with a complete job at hand): the images, then the
        job item, checked storable before the first write."""
        created_at = created_at or contracts.utc_now_iso()
        # the job's items go when its results do (the bucket's lifecycle rules)
        expires = config.expires_at(config.RESULT_RETENTION_DAYS)
        job = {
            **self._job_key(job_id),
            "jobId": job_id,
            "owner": owner,
            "createdAt": created_at,
            "status": JobStatus.SUBMITTED.value,
            "model": model,
            "settings": dict(settings),
            "imageCount": len(images),
            "counts": {s.value: (len(images) if s is ImageStatus.PENDING else 0) for s in ImageStatus},
            "gsi1pk": contracts.owner_index_pk(owner),
            "gsi1sk": f"{created_at}#{job_id}",
            contracts.TTL_ATTRIBUTE: expires,
            "notify": notify,
            # its image items carry the index keys of a filtered page (store.images_page)
            contracts.JOB_VIEW_KEYS_ATTRIBUTE: True,
        }
        if email:
            job["email"] = email
        if webhook_url:
            job["webhook"] = {"url": webhook_url, "status": WEBHOOK_PENDING}
        if retry_of:
            job["retryOf"] = retry_of
        if name:  # the batch's name for people (POST /jobs `name`)
            job["name"] = name
        if estimate is not None:
            job[contracts.JOB_ESTIMATE_ATTRIBUTE] = dict(estimate)
        if images_file:
            job[contracts.JOB_IMAGES_PENDING_ATTRIBUTE] = images_file
        stored = _stored(job)
        check_storable(stored)
        if not images_file:
            self._write_all(self.image_items(job_id, images, expires=expires))
        self.table.put_item(Item=stored, ConditionExpression="attribute_not_exists(pk)")
        return cast(dict[str, Any], plain(job))

    def write_images(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        write_units_per_s: float = IMAGE_WRITE_UNITS_PER_S,
        pacer: WritePacer | None = None,
    ) -> None:
        """Put one job's image items (one partition), BatchWriteItem 25 at a time, one call after
        the other at no more than `write_units_per_s`; what DynamoDB leaves unprocessed, or a
        call it throttles whole, is sent again after a backoff with full jitter, as its API
        reference asks (docs/aws-notes.md#n84-batchwriteitem-unprocessed-items). Puts replace:
        writing the same items again changes nothing. A write made in several calls shares one
        `pacer` (JobStore.write_pacer), or each call would start with a full second's allowance."""
        pacer = pacer or self.write_pacer(write_units_per_s)
        for start in range(0, len(items), BATCH_WRITE_MAX_ITEMS):
            batch = items[start : start + BATCH_WRITE_MAX_ITEMS]
            pacer.spend(sum(write_units(item) for item in batch))
            self._batch_put([{"PutRequest": {"Item": dict(item)}} for item in batch])

    def write_pacer(self, write_units_per_s: float = IMAGE_WRITE_UNITS_PER_S) -> WritePacer:
        """One pace for a job's image writes, however many calls they take."""
        return WritePacer(write_units_per_s, self.clock, self.sleep)

    def _batch_put(self, requests: list[dict[str, Any]]) -> None:
        for attempt in range(_BATCH_WRITE_ATTEMPTS):
            if attempt:
                self.sleep(random.uniform(0, min(_BATCH_RETRY_CAP_S, _BATCH_RETRY_BASE_S * 2**attempt)))
            try:
                response = self._client().batch_write_item(RequestItems={self.table.name: requests})
            except ClientError as exc:
                if client_error_code(exc) not in THROTTLING_CODES:
                    raise
                continue  # throttled whole (after the SDK's own retries): the same batch again
            requests = (response.get("UnprocessedItems") or {}).get(self.table.name) or []
            if not requests:
                return
        raise StorageError(
            f"DynamoDB left {len(requests)} image item(s) unwritten after {_BATCH_WRITE_ATTEMPTS} attempts"
        )

    def images_written(
        self, job_id: str, status: JobStatus, counts: Mapping[str, int] | None = None
    ) -> dict[str, Any] | None:
        """Every image item of the job is written: `imagesPending` goes, on the condition that the
        job still waits for them and is `status` (with `counts`: its counts are set too, for
        images written CANCELLED). The job as it now is, or None when the condition failed."""
        update = "REMOVE #p"
        values: dict[str, Any] = {":s": status.value}
        names = {"#p": contracts.JOB_IMAGES_PENDING_ATTRIBUTE, "#s": "status"}
        if counts is not None:
            update = "SET #c = :c " + update
            names["#c"] = "counts"
            values[":c"] = dict(counts)
        try:
            response = self.table.update_item(
                Key=self._job_key(job_id),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#p) AND #s = :s",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return None
        return cast(dict[str, Any], plain(response["Attributes"]))

    def open_review(self, job_id: str, token: str, deadline: str) -> None:
        """The workflow waits for the owner: keep its task token (a repeated open replaces it)."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET review = :r",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":r": {"status": contracts.ReviewStatus.WAITING.value, "token": token, "deadline": deadline}
            },
        )

    def close_review(self, job_id: str, status: contracts.ReviewStatus) -> None:
        """The wait is over: the token is forgotten, the outcome kept."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET review.#s = :s, review.closedAt = :t REMOVE review.#t",
            ConditionExpression="attribute_exists(review)",
            ExpressionAttributeNames={"#s": "status", "#t": "token"},
            ExpressionAttributeValues={":s": status.value, ":t": contracts.utc_now_iso()},
        )

    def set_review_decisions(self, job_id: str, decisions: Mapping[str, contracts.ReviewDecision]) -> list[str]:
        """Record each image's decision; answers the ids that are not succeeded images of the job."""
        refused = []
        for image_id, decision in decisions.items():
            try:
                self._update(
                    Key=self._image_key(job_id, image_id),
                    UpdateExpression="SET reviewDecision = :d",
                    ConditionExpression="attribute_exists(pk) AND #s = :ok",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":d": decision.value, ":ok": ImageStatus.SUCCEEDED.value},
                )
            except ClientError as exc:
                if client_error_code(exc) != CONDITION_FAILED:
                    raise
                refused.append(image_id)
        return refused

    def set_outputs(
        self,
        job_id: str,
        image_id: str,
        outputs: Sequence[Mapping[str, Any]],
        before: Mapping[str, Any],
        *,
        regeneration: tuple[str, float] | None = None,
    ) -> bool:
        """Replace a SUCCEEDED image's outputs (the delivered variant picked, a variant added) and
        its verdict, the delivered one's; the job's per-verdict counts move with it in the same
        transaction. `before` is the image as read: False, and nothing written, when it is no
        longer SUCCEEDED or its outputs or verdict changed meanwhile (each write moves the image's
        OUTPUTS_REVISION on, so two writers that read the same outputs cannot both write: the
        second would drop the first's variant or pick). `regeneration` (charge, cost): the write
        adds a regenerated variant, and in the same transaction that charge is recorded once and
        the job's regenerations count and total grow by one and the cost: the variants, the count
        and the cost cannot disagree."""
        verdict = verdict_of(delivered_output({"outputs": outputs}))
        old_verdict = before.get("verdict")
        names = {"#s": "status", "#o": "outputs", "#v": "verdict", "#r": OUTPUTS_REVISION}
        values: dict[str, Any] = {":ok": ImageStatus.SUCCEEDED.value, ":outputs": [dict(o) for o in outputs], ":one": 1}
        # the verdict as read guards the job's per-verdict counts; the revision as read, the outputs
        condition = "#s = :ok AND " + ("#v = :old" if old_verdict else "attribute_not_exists(#v)")
        if old_verdict:
            values[":old"] = old_verdict
        if before.get(OUTPUTS_REVISION) is not None:
            condition += " AND #r = :rev"
            values[":rev"] = int(before[OUTPUTS_REVISION])
        else:
            condition += " AND attribute_not_exists(#r)"
        update = "SET #o = :outputs"
        if verdict:
            # the verdict index's key moves in the same write as the verdict
            update += ", #v = :verdict, #vk = :vk"
            names["#vk"] = contracts.VERDICT_INDEX_PK
            values[":verdict"] = verdict
            values[":vk"] = contracts.verdict_index_pk(job_id, verdict)
        update += " ADD #r :one"
        if regeneration is not None:
            update += ", costCharges :charges"
            condition += " AND NOT contains(costCharges, :charge)"
            values[":charge"] = regeneration[0]
        image_update = {
            "TableName": self.table.name,
            "Key": self._image_key(job_id, image_id),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            # a string set (the image's charges) is no JSON: added apart from _stored
            "ExpressionAttributeValues": {
                **_stored(values),
                **({":charges": {regeneration[0]}} if regeneration is not None else {}),
            },
        }
        items: list[dict[str, Any]] = [{"Update": image_update}]
        if regeneration is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": self._job_key(job_id),
                        "UpdateExpression": "ADD #cost :usd, #count :one",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {
                            "#cost": contracts.JOB_REGENERATED_COST_ATTRIBUTE,
                            "#count": contracts.JOB_REGENERATIONS_ATTRIBUTE,
                        },
                        "ExpressionAttributeValues": {":usd": _usd(regeneration[1]), ":one": 1},
                    }
                }
            )
        if verdict and old_verdict and verdict != old_verdict:
            items.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": self._job_key(job_id),
                        "UpdateExpression": "ADD #new :one, #old :minus",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {
                            "#new": contracts.verdict_count_attribute(verdict),
                            "#old": contracts.verdict_count_attribute(old_verdict),
                        },
                        "ExpressionAttributeValues": {":one": 1, ":minus": -1},
                    }
                }
            )
        try:
            self._transact(items)
        except ClientError as exc:
            if self._lost_race(exc):
                return False
            raise
        return True

    def claim_regeneration(self, job_id: str, image_id: str, most: int) -> int | None:
        """Count one more regeneration of a SUCCEEDED image; None when it has `most` already (or
        is not SUCCEEDED), else the claim's ordinal: 1, 2, ... per image, never given twice (a
        released claim does not give its ordinal back), so each regeneration can take its own seed
        from it (contracts.derived_seed)."""
        try:
            answer = self._update(
                Key=self._image_key(job_id, image_id),
                UpdateExpression="ADD regenerations :one, #n :one",
                ConditionExpression="#s = :ok AND (attribute_not_exists(regenerations) OR regenerations < :most)",
                ExpressionAttributeNames={"#s": "status", "#n": REGENERATION_ORDINAL},
                ExpressionAttributeValues={":one": 1, ":ok": ImageStatus.SUCCEEDED.value, ":most": most},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return None
        return int(answer["Attributes"][REGENERATION_ORDINAL])

    def release_regeneration(self, job_id: str, image_id: str) -> None:
        """A claimed regeneration that made no job: it may be asked for again (with the next
        ordinal: its seed is not given to another)."""
        self._update(
            Key=self._image_key(job_id, image_id),
            UpdateExpression="ADD regenerations :minus",
            ExpressionAttributeValues={":minus": -1},
        )

    def count_review_decisions(self, job_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for image in self._query_all(KeyConditionExpression=self._images_condition(job_id)):
            if image.get("reviewDecision"):
                counts[image["reviewDecision"]] = counts.get(image["reviewDecision"], 0) + 1
        return counts

    def claim_retry(self, job_id: str, retry_job_id: str) -> str | None:
        """Name `retry_job_id` as the one retry of `job_id`'s failed images; None if that worked,
        else the retry it already has (one retry per failed set)."""
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET retriedAs = :r",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(retriedAs)",
                ExpressionAttributeValues={":r": retry_job_id},
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            job = self.get_job(job_id) or {}
            return str(job.get("retriedAs") or "")
        return None

    def release_retry(self, job_id: str, retry_job_id: str) -> None:
        """Undo claim_retry when the retry job could not be written."""
        self._conditional_update(self._job_key(job_id), "REMOVE retriedAs", "retriedAs = :r", {":r": retry_job_id})

    def reserve_model_calls(self, job_id: str, image_id: str, calls: int, most: int) -> bool:
        """Reserve an image's model calls against the job's cap of `most` calls, before the first
        is sent: False when they would pass it. Idempotent per image (a repeated Prepare reserves
        nothing twice); the job's started-calls count moves in the same transaction."""
        if calls > most:
            return False
        started = contracts.JOB_CALLS_STARTED_ATTRIBUTE
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._image_key(job_id, image_id),
                            "UpdateExpression": "SET callsReserved = :n",
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(callsReserved)",
                            "ExpressionAttributeValues": {":n": calls},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "UpdateExpression": "ADD #started :n",
                            "ConditionExpression": "attribute_not_exists(#started) OR #started <= :room",
                            "ExpressionAttributeNames": {"#started": started},
                            "ExpressionAttributeValues": {":n": calls, ":room": most - calls},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            codes = [(reason or {}).get("Code") for reason in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                image = self._image(job_id, image_id)
                if image is None:
                    raise StorageError(f"job {job_id} has no image {image_id}") from exc
                return True  # reserved by an earlier attempt of this step
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def reserve_extra_model_call(self, job_id: str, image_id: str, calls_after: int, most: int) -> bool:
        """Reserve one more call for an image that already holds `calls_after - 1` (a re-roll)
        against the job's cap of `most`: False when it would pass it. Idempotent: a repeated
        reservation of the same call finds the image's count already moved."""
        started = contracts.JOB_CALLS_STARTED_ATTRIBUTE
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._image_key(job_id, image_id),
                            "UpdateExpression": "SET callsReserved = :after",
                            "ConditionExpression": "callsReserved = :before",
                            "ExpressionAttributeValues": {":after": calls_after, ":before": calls_after - 1},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "UpdateExpression": "ADD #started :one",
                            "ConditionExpression": "#started <= :room",
                            "ExpressionAttributeNames": {"#started": started},
                            "ExpressionAttributeValues": {":one": 1, ":room": most - 1},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            codes = [(reason or {}).get("Code") for reason in exc.response.get("CancellationReasons") or []]
            if codes and codes[0] == "ConditionalCheckFailed":
                image = self._image(job_id, image_id) or {}
                return int(image.get("callsReserved") or 0) >= calls_after  # reserved by a repeat
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def _write_all(self, items: Sequence[dict[str, Any]]) -> None:
        """Put many items, PARALLEL_CALLS BatchWriteItem streams at once (each retries its own
        unprocessed items): 10,000 images are 400 calls, too many one after the other for a
        request that API Gateway ends at 29 s."""
        chunks = [items[i : i + WRITE_CHUNK] for i in range(0, len(items), WRITE_CHUNK)]

        def write(chunk: Sequence[dict[str, Any]]) -> None:
            with self.table.batch_writer() as batch:  # one writer per thread; the client is shared
                for item in chunk:
                    batch.put_item(Item=item)

        if len(chunks) <= 1:
            for chunk in chunks:
                write(chunk)
            return
        with ThreadPoolExecutor(max_workers=min(PARALLEL_CALLS, len(chunks))) as pool:
            list(pool.map(write, chunks))  # re-raises the first failure

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        if not contracts.is_job_id(job_id):
            return None
        item = self.table.get_item(Key=self._job_key(job_id), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def list_jobs(self, owner: str, limit: int = 20, cursor: str | None = None) -> Page:
        """The owner's jobs, newest first, one page at a time."""
        index_pk = contracts.owner_index_pk(owner)
        kwargs: dict[str, Any] = {
            "IndexName": contracts.OWNER_INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(index_pk),
            "ScanIndexForward": False,
            "Limit": _limit(limit, contracts.MAX_JOBS_PAGE_SIZE),
        }
        scope = f"jobs:{owner}"
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(
                cursor, scope, {"gsi1pk": index_pk}, {"pk", "sk", "gsi1pk", "gsi1sk"}
            )
        page = self.table.query(**kwargs)
        return Page([plain(i) for i in page.get("Items", [])], _encode_cursor(scope, page.get("LastEvaluatedKey")))

    def mark_running(self, job_id: str, execution_arn: str) -> bool:
        """SUBMITTED → RUNNING with its execution; False if the job had moved on already (the
        workflow may even have finished and written its final status: that is kept)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET #s = :running, executionArn = :arn, startedAt = :now",
            "#s = :submitted",
            {
                ":running": JobStatus.RUNNING.value,
                ":submitted": JobStatus.SUBMITTED.value,
                ":arn": execution_arn,
                ":now": contracts.utc_now_iso(),
            },
        )

    def record_scene_call(self, job_id: str, model_key: str, cost_usd: float) -> bool:
        """The batch's scene call answered (it is billed): the job's calls and cost count it once
        (a repeated call finds the scene's model already set and adds nothing)."""
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression=f"SET {contracts.JOB_SCENE_MODEL_ATTRIBUTE} = :model ADD #cost :usd",
                ConditionExpression=f"attribute_exists(pk) AND attribute_not_exists({contracts.JOB_SCENE_MODEL_ATTRIBUTE})",
                ExpressionAttributeNames={"#cost": contracts.JOB_COST_ATTRIBUTE},
                ExpressionAttributeValues={":model": model_key, ":usd": _usd(cost_usd)},
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def add_cost(
        self,
        job_id: str,
        image_id: str,
        charge: str,
        cost_usd: float,
        *,
        model_calls: int = 0,
        regeneration: bool = False,
    ) -> bool:
        """Add what one billed piece of an image's work cost (and its model calls) to the job's
        running totals, once per `charge` (a name unique within the image, such as "variant2" or
        "attempt3"): a Lambda retry that adds the same charge again adds nothing and answers
        False. For costs recorded apart from the image's finishing; an image's attempts are added
        by set_image_status(cost_usd=...) in the transition that finishes it. `regeneration`: a
        regeneration billed to its own linked job, kept apart on this one (its total and count,
        contracts.JOB_REGENERATED_COST_ATTRIBUTE), not in this job's cost."""
        charges = "costCharges"  # on the image item: the job item stays small at 10,000 images
        if regeneration:
            job_adds = f"ADD #cost :usd, {contracts.JOB_REGENERATIONS_ATTRIBUTE} :one"
            job_values: dict[str, Any] = {":usd": _usd(cost_usd), ":one": 1}
            cost_attribute = contracts.JOB_REGENERATED_COST_ATTRIBUTE
        else:
            job_adds = "ADD #cost :usd" + (f", {contracts.JOB_MODEL_CALLS_ATTRIBUTE} :calls" if model_calls else "")
            job_values = {":usd": _usd(cost_usd)}
            cost_attribute = contracts.JOB_COST_ATTRIBUTE
        if model_calls and not regeneration:
            job_values[":calls"] = int(model_calls)
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._image_key(job_id, image_id),
                            "UpdateExpression": f"ADD {charges} :charges",
                            "ConditionExpression": f"attribute_exists(pk) AND NOT contains({charges}, :charge)",
                            "ExpressionAttributeValues": {":charges": {charge}, ":charge": charge},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "UpdateExpression": job_adds,
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#cost": cost_attribute},
                            "ExpressionAttributeValues": job_values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            codes = [(reason or {}).get("Code") for reason in exc.response.get("CancellationReasons") or []]
            if codes and codes[0] == "ConditionalCheckFailed":
                if self._image(job_id, image_id) is None:
                    raise StorageError(f"job {job_id} has no image {image_id}") from exc
                return False  # added by an earlier run of this step
            raise
        return True

    def fail_job(self, job_id: str, cause: str) -> bool:
        """A job that could not run at all ends FAILED with its cause (never from a final status)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET #s = :failed, cause = :cause, finishedAt = :now",
            "attribute_exists(pk) AND #s IN (:submitted, :running)",
            {
                ":failed": JobStatus.FAILED.value,
                ":cause": cause[:MAX_CAUSE_LENGTH],
                ":now": contracts.utc_now_iso(),
                ":submitted": JobStatus.SUBMITTED.value,
                ":running": JobStatus.RUNNING.value,
            },
        )

    def finish_job(
        self,
        job_id: str,
        status: JobStatus,
        counts: Mapping[str, int],
        report_keys: Mapping[str, str],
        finished_at: str,
    ) -> bool:
        """The job's final status, counts and report keys (written again by a repeated report).
        False, and nothing written, when the job was cancelled meanwhile and `status` is not
        CANCELLED: a cancellation is never overwritten."""
        values: dict[str, Any] = {
            ":s": status.value,
            ":c": dict(counts),
            ":f": finished_at,
            ":r": dict(report_keys),
        }
        # a job being deleted stays so (a late report of its cancel closing changes nothing)
        condition = "attribute_exists(pk) AND #s <> :deleting"
        values[":deleting"] = JobStatus.DELETING.value
        if status is not JobStatus.CANCELLED:
            condition += " AND #s <> :cancelled"
            values[":cancelled"] = JobStatus.CANCELLED.value
        return self._conditional_update(
            self._job_key(job_id), "SET #s = :s, counts = :c, finishedAt = :f, reportKeys = :r", condition, values
        )

    def cancel_job(self, job_id: str) -> bool:
        """SUBMITTED / RUNNING → CANCELLED; False if the job had finished (or been cancelled)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET #s = :cancelled, cancelledAt = :now",
            "attribute_exists(pk) AND #s IN (:submitted, :running)",
            {
                ":cancelled": JobStatus.CANCELLED.value,
                ":now": contracts.utc_now_iso(),
                ":submitted": JobStatus.SUBMITTED.value,
                ":running": JobStatus.RUNNING.value,
            },
        )

    def hand_closing_to_starter(self, job_id: str, claim: Mapping[str, Any]) -> bool:
        """A job cancelled before its image items were all written: its closing is left to the
        starter, which writes them CANCELLED and then starts it (chalicelib/workflow/starter.py). True when
        its images were still pending at this write (the starter's `images_written` then sees
        the claim); False when they were written first (the cancel closes the job as usual)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET closing = :closing",
            "#s = :cancelled AND attribute_exists(imagesPending) AND attribute_not_exists(closing)",
            {":closing": _stored(dict(claim)), ":cancelled": JobStatus.CANCELLED.value},
        )

    def claim_cancel_closing(self, job_id: str, claim: Mapping[str, Any], failed_status: str) -> bool:
        """Claim the hand-off of a cancelled job's closing (its unfinished images, report and
        webhook) to a background run: True for the one caller that may start it. A claim whose
        start failed (`closing.status` is `failed_status`) may be taken again."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET closing = :closing",
            "#s = :cancelled AND attribute_not_exists(reportKeys)"
            " AND (attribute_not_exists(closing) OR closing.#s = :failed)",
            {
                ":closing": _stored(dict(claim)),
                ":cancelled": JobStatus.CANCELLED.value,
                ":failed": failed_status,
            },
        )

    def record_cancel_closing(self, job_id: str, closing: Mapping[str, Any]) -> None:
        """How the hand-off of a cancelled job's closing went (`claim_cancel_closing`)."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET closing = :closing",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":closing": _stored(dict(closing))},
        )

    # ------------------------------------------------------------------ report rewrites

    def request_report_rewrite(self, job_id: str, requested_at: str, stale_before: str) -> bool:
        """A pick on a large finished job: its report must be written again. Marks the job's
        `reportRewrite` with `requested_at`; True when the caller must start the rewriter (none is
        running, its start failed, or it has not moved since `stale_before`), False when a running
        rewriter will see the newer request when it finishes (chalicelib/delivery/rewrites.py)."""
        for _ in range(3):  # the running rewriter may finish between the two writes
            claimed = self._conditional_update(
                self._job_key(job_id),
                "SET reportRewrite = :claim",
                "attribute_exists(pk) AND (attribute_not_exists(reportRewrite) OR reportRewrite.#s <> :started"
                " OR reportRewrite.since < :stale)",
                {
                    ":claim": {
                        "status": ClosingStatus.STARTED.value,
                        "requestedAt": requested_at,
                        "since": requested_at,
                    },
                    ":started": ClosingStatus.STARTED.value,
                    ":stale": stale_before,
                },
            )
            if claimed:
                return True
            if self._conditional_update(
                self._job_key(job_id),
                "SET reportRewrite.requestedAt = :at",
                "reportRewrite.#s = :started",
                {":at": requested_at, ":started": ClosingStatus.STARTED.value},
            ):
                return False
        raise StorageError(f"the report rewrite of job {job_id} could not be recorded")

    def record_report_rewrite(self, job_id: str, **fields: str) -> bool:
        """How the rewrite goes (`status`, `since`, `lastError`); False when none is pending."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET " + ", ".join(f"reportRewrite.#f{i} = :v{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(reportRewrite)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def report_rewrite_done(self, job_id: str, requested_at: str) -> bool:
        """The report was written from a reading made after the request of `requested_at`: the
        mark goes, unless a newer pick asked again meanwhile (False: write it once more)."""
        return self._conditional_update(
            self._job_key(job_id), "REMOVE reportRewrite", "reportRewrite.requestedAt = :at", {":at": requested_at}
        )

    # ------------------------------------------------------------------ background work

    @staticmethod
    def _work_key(kind: contracts.BackgroundWork, job_id: str) -> dict[str, str]:
        return {"pk": contracts.BACKGROUND_WORK_PK, "sk": contracts.background_work_sk(kind, job_id)}

    def note_background_work(self, kind: contracts.BackgroundWork, job_id: str, owner: str, bucket: str) -> None:
        """Work about to be handed to a background run: kept until it is done (rewriting it is harmless)."""
        self.table.put_item(
            Item={
                **self._work_key(kind, job_id),
                "kind": kind.value,
                "jobId": job_id,
                "owner": owner,
                "bucket": bucket,
                "notedAt": contracts.utc_now_iso(),
            }
        )

    def background_work(self) -> list[dict[str, Any]]:
        """Every noted piece of background work not yet marked done."""
        return [plain(i) for i in self._query_all(KeyConditionExpression=Key("pk").eq(contracts.BACKGROUND_WORK_PK))]

    def background_work_done(self, kind: contracts.BackgroundWork, job_id: str) -> None:
        self.table.delete_item(Key=self._work_key(kind, job_id))

    # ------------------------------------------------------------------ deletion

    def mark_deleting(self, job_id: str, owner: str, deletion: Mapping[str, Any]) -> bool:
        """A finished job of this owner → DELETING, with its `deletion` (what to remove, what has
        been removed). False when it is not (or no longer) a finished job of this owner."""
        finished = {f":t{i}": s.value for i, s in enumerate(sorted(contracts.TERMINAL_JOB_STATUSES))}
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET #s = :deleting, deletion = :deletion, statusBeforeDeletion = #s",
                ConditionExpression=f"#o = :owner AND #s IN ({', '.join(finished)})",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues={
                    ":deleting": JobStatus.DELETING.value,
                    ":deletion": _stored(dict(deletion)),
                    ":owner": owner,
                    **finished,
                },
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def record_deletion(self, job_id: str, *, removed: Mapping[str, int] | None = None, **fields: Any) -> bool:
        """Progress of a job being deleted: `removed` adds to its counts, `fields` set (status,
        lastError, by...); `updatedAt` is always set, so the sweep sees the run is alive. False
        once the job is no longer being deleted (it is gone)."""
        sets = ["deletion.updatedAt = :now"]
        names: dict[str, str] = {"#s": "status"}
        values: dict[str, Any] = {":now": contracts.utc_now_iso(), ":deleting": JobStatus.DELETING.value}
        for index, (kind, count) in enumerate(sorted((removed or {}).items())):
            names[f"#r{index}"] = kind
            values[f":r{index}"] = int(count)
            # a number inside a map (docs/aws-notes.md#n60-lambda-remaining-time-and-counters-in-nested-maps)
            sets.append(f"deletion.removed.#r{index} = deletion.removed.#r{index} + :r{index}")
        for index, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{index}"] = name
            values[f":f{index}"] = _stored(value)
            sets.append(f"deletion.#f{index} = :f{index}")
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :deleting",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def image_keys(self, job_id: str, limit: int) -> list[dict[str, str]]:
        """The table keys of up to `limit` of the job's image items (a deletion's next batch)."""
        page = self.table.query(
            KeyConditionExpression=self._images_condition(job_id), ProjectionExpression="pk, sk", Limit=limit
        )
        return [{"pk": item["pk"], "sk": item["sk"]} for item in page.get("Items", [])]

    def delete_items(self, keys: Sequence[Mapping[str, str]]) -> None:
        """BatchWriteItem deletes, 25 a call (the writer resends what DynamoDB leaves unprocessed)."""
        with self.table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=dict(key))

    def finish_deletion(self, job_id: str, owner: str, removed: Mapping[str, Any]) -> dict[str, Any]:
        """The job item gives way to its tombstone (what was removed), in one transaction, once
        its images and files are gone; the background note goes too."""
        tombstone = {
            "pk": contracts.job_pk(job_id),
            "sk": contracts.DELETED_JOB_SK,
            "jobId": job_id,
            "owner": owner,
            "deletedAt": contracts.utc_now_iso(),
            "removed": dict(removed),
            # removed by the table's TTL (docs/aws-notes.md#n52-s3-deleteobjects-dynamodb-ttl-and-transactions)
            contracts.TTL_ATTRIBUTE: int(time.time()) + contracts.DELETED_JOB_RETENTION_SECONDS,
        }
        try:
            self._transact(
                [
                    {
                        "Delete": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "ConditionExpression": "#o = :owner AND #s = :deleting",
                            "ExpressionAttributeNames": {"#o": "owner", "#s": "status"},
                            "ExpressionAttributeValues": {
                                ":owner": owner,
                                ":deleting": JobStatus.DELETING.value,
                            },
                        }
                    },
                    {"Put": {"TableName": self.table.name, "Item": _stored(tombstone)}},
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            done = self.deleted_job(job_id)  # another run finished it first
            if done is None or done.get("owner") != owner:
                raise StorageError(f"job {job_id} changed while it was deleted; it was not deleted") from exc
            return done
        self.background_work_done(contracts.BackgroundWork.DELETE, job_id)
        deleted: dict[str, Any] = plain(tombstone)
        return deleted

    def deleted_job(self, job_id: str) -> dict[str, Any] | None:
        """The tombstone of a deleted job, or None."""
        if not contracts.is_job_id(job_id):
            return None
        key = {"pk": contracts.job_pk(job_id), "sk": contracts.DELETED_JOB_SK}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        return plain(item) if item else None

    # ------------------------------------------------------------------ webhooks

    def record_webhook(self, job_id: str, delivery: Mapping[str, Any]) -> None:
        """What happened to the job's webhook (status, attempts, last error): shown on the job,
        never changing the job's own status."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET webhook = :w",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":w": _stored(dict(delivery))},
        )

    @staticmethod
    def _secret_key(owner: str) -> dict[str, str]:
        return {"pk": contracts.user_pk(owner), "sk": contracts.WEBHOOK_SECRET_SK}

    def webhook_secret(self, owner: str) -> dict[str, Any] | None:
        """{"secret", "createdAt"} of the owner's webhook signing secret, or None."""
        item = self.table.get_item(Key=self._secret_key(owner), ConsistentRead=True).get("Item")
        return {"secret": item["secret"], "createdAt": item["createdAt"]} if item else None

    def put_webhook_secret(self, owner: str, secret: str, *, replace: bool) -> dict[str, Any]:
        """Store the owner's secret; unless `replace`, keep (and return) one that exists already,
        so two first requests at once agree on one secret."""
        item = {**self._secret_key(owner), "owner": owner, "secret": secret, "createdAt": contracts.utc_now_iso()}
        try:
            self.table.put_item(Item=item, **({} if replace else {"ConditionExpression": "attribute_not_exists(pk)"}))
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            existing = self.webhook_secret(owner)
            if existing is None:
                raise StorageError("the webhook secret could not be stored") from exc
            return existing
        return {"secret": secret, "createdAt": item["createdAt"]}

    def record_notification_failure(
        self, job_id: str, error: str, cause: str, status: NotificationStatus = NotificationStatus.FAILED
    ) -> None:
        """The email could not be sent (FAILED, or NO_SUBSCRIPTION: the owner has no topic): said
        on the job, where the API and UI show it."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET notification = :n",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":n": {
                    "status": status.value,
                    "error": error,
                    "cause": cause[:MAX_CAUSE_LENGTH],
                    "at": contracts.utc_now_iso(),
                }
            },
        )

    # A job's one email (chalicelib/delivery/notify.py): whoever sends it claims it first, conditionally.

    def claim_notification(self, job_id: str, sender: str, stale_before: str) -> bool:
        """Take the right to send the job's email: nobody has, the last try FAILED, or a claim
        made before `stale_before` was never completed (its sender died). False if held or done."""
        return self._set_notification(
            job_id,
            {"status": NotificationStatus.SENDING.value, "by": sender, "at": contracts.utc_now_iso()},
            "attribute_not_exists(notification) OR notification.#s = :failed "
            "OR (notification.#s = :sending AND notification.#at < :stale)",
            {
                ":failed": NotificationStatus.FAILED.value,
                ":sending": NotificationStatus.SENDING.value,
                ":stale": stale_before,
            },
        )

    def set_notification(self, job_id: str, status: NotificationStatus, sender: str, **details: str) -> None:
        """What happened to the job's email (after a claim): SENT with its message id, or FAILED."""
        notification = {"status": status.value, "by": sender, "at": contracts.utc_now_iso(), **details}
        if "cause" in notification:
            notification["cause"] = notification["cause"][:MAX_CAUSE_LENGTH]
        self._set_notification(job_id, notification)

    def note_notification(self, job_id: str, status: NotificationStatus, sender: str) -> bool:
        """Say what happened without a claim (the workflow sent it; the owner declined it), unless
        the job already says something about its email."""
        return self._set_notification(
            job_id,
            {"status": status.value, "by": sender, "at": contracts.utc_now_iso()},
            "attribute_not_exists(notification)",
            {},
        )

    def _set_notification(
        self,
        job_id: str,
        notification: Mapping[str, Any],
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        kwargs: dict[str, Any] = {
            "Key": self._job_key(job_id),
            "UpdateExpression": "SET notification = :n",
            "ConditionExpression": "attribute_exists(pk)" + (f" AND ({condition})" if condition else ""),
            "ExpressionAttributeValues": {":n": dict(notification), **(values or {})},
        }
        names = {k: v for k, v in (("#s", "status"), ("#at", "at")) if condition and k in condition}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._update(**kwargs)
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def _conditional_update(self, key: dict[str, str], update: str, condition: str, values: dict[str, Any]) -> bool:
        """One UpdateItem under a condition: False when the condition failed. `#s` names `status`
        (DynamoDB refuses a name the expressions do not use, so it is passed only when used)."""
        names = {"#s": "status"} if "#s" in update or "#s" in condition else None
        try:
            self._update(
                Key=key,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    # ------------------------------------------------------------------ images

    def images(self, job_id: str) -> list[dict[str, Any]]:
        """Every image of a job, in image-id order."""
        return [plain(i) for i in self._query_all(KeyConditionExpression=self._images_condition(job_id))]

    def images_page(
        self,
        owner: str,
        job_id: str,
        *,
        limit: int = MAX_IMAGES_PAGE_SIZE,
        cursor: str | None = None,
        status: ImageStatus | None = None,
        verdict: str | None = None,
        indexed: bool = True,
    ) -> Page:
        """One page of a job's images, optionally only those in `status` and with scorecard
        `verdict` (contracts.Verdict; NONE: images without one). The caller has checked that
        `owner` owns the job; the cursor is bound to both and to the filters.

        Unfiltered, or by status (with or without a verdict): image-id order; by verdict alone:
        status, then image id. A filtered page is one Query of its index partition (byStatus,
        byVerdict), whatever the job's size. `indexed=False`: a job written before its image items
        carried those keys (no contracts.JOB_VIEW_KEYS_ATTRIBUTE), filtered as it was then."""
        want = _limit(limit, MAX_IMAGES_PAGE_SIZE)
        status = ImageStatus(status) if status is not None else None
        wanted = contracts.Verdict(verdict) if verdict is not None else None
        if not indexed and (status is not None or wanted is not None):
            return self._images_page_filtered_after(owner, job_id, want, cursor, status, wanted)
        view = _ImagesView.of(job_id, status, wanted)
        scope = self._images_scope(owner, job_id, status, wanted)
        # one more than a page, so a full last page has no cursor to an empty one
        kwargs: dict[str, Any] = {"KeyConditionExpression": view.condition, "Limit": want + 1}
        if view.index:
            kwargs["IndexName"] = view.index
        if cursor:
            start = _decode_cursor(cursor, scope, view.fixed, set(view.key_names))
            if not start["sk"].startswith(contracts.IMAGE_SK_PREFIX) or not view.owns(start):
                raise BadRequest(_BAD_CURSOR)
            kwargs["ExclusiveStartKey"] = start
        items: list[dict[str, Any]] = []
        # a page ends early only at DynamoDB's 1 MB of data read per call: read on until it is full
        while len(items) <= want:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            kwargs["Limit"] = want + 1 - len(items)
        more = len(items) > want
        items = items[:want]
        last = {name: items[-1][name] for name in view.key_names} if more and items else None
        return Page([plain(i) for i in items], _encode_cursor(scope, last))

    def _images_page_filtered_after(
        self,
        owner: str,
        job_id: str,
        want: int,
        cursor: str | None,
        status: ImageStatus | None,
        verdict: contracts.Verdict | None,
    ) -> Page:
        """A filtered page of a job whose image items have no index keys: the job partition read
        with a filter (DynamoDB applies Limit before it, so a page may take many queries)."""
        scope = self._images_scope(owner, job_id, status, verdict)
        kwargs: dict[str, Any] = {"KeyConditionExpression": self._images_condition(job_id), "Limit": want + 1}
        filters = []
        if status is not None:
            filters.append(Attr("status").eq(status.value))
        if verdict is not None:
            filters.append(
                Attr("verdict").not_exists() if verdict is contracts.Verdict.NONE else Attr("verdict").eq(verdict.value)
            )
        kwargs["FilterExpression"] = functools.reduce(operator.and_, filters)
        if cursor:
            start = _decode_cursor(cursor, scope, {"pk": contracts.job_pk(job_id)}, {"pk", "sk"})
            if not start["sk"].startswith(contracts.IMAGE_SK_PREFIX):
                raise BadRequest(_BAD_CURSOR)
            kwargs["ExclusiveStartKey"] = start
        items: list[dict[str, Any]] = []
        while len(items) <= want:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            kwargs["Limit"] = want + 1 - len(items)
        more = len(items) > want
        items = items[:want]
        last = {"pk": items[-1]["pk"], "sk": items[-1]["sk"]} if more and items else None
        return Page([plain(i) for i in items], _encode_cursor(scope, last))

    @staticmethod
    def _images_scope(
        owner: str, job_id: str, status: ImageStatus | None = None, verdict: contracts.Verdict | None = None
    ) -> str:
        scope = f"images:{owner}:{job_id}"
        if status is not None or verdict is not None:  # a cursor of one view is no cursor of another
            scope += f":{status.value if status else ''}:{verdict.value if verdict else ''}"
        return scope

    def images_cursor_after(
        self,
        owner: str,
        job_id: str,
        image: Mapping[str, Any],
        *,
        status: ImageStatus | None = None,
        verdict: str | None = None,
        indexed: bool = True,
    ) -> str:
        """The cursor of the page that starts after `image` (one of this job's images, from a page
        with these filters): a caller that returns fewer images than a page held (to keep its
        answer small) resumes there."""
        status = ImageStatus(status) if status is not None else None
        wanted = contracts.Verdict(verdict) if verdict is not None else None
        key: dict[str, Any] = self._image_key(job_id, str(image["imageId"]))
        if indexed:
            view = _ImagesView.of(job_id, status, wanted)
            stored = contracts.image_view_keys(
                job_id, str(image["imageId"]), str(image["status"]), image.get("verdict")
            )
            key.update({name: stored[name] for name in view.key_names - {"pk", "sk"}})
        cursor = _encode_cursor(self._images_scope(owner, job_id, status, wanted), key)
        assert cursor is not None  # a key always encodes
        return cursor

    def image(self, job_id: str, image_id: str) -> dict[str, Any] | None:
        """One image of a job as it is now, or None."""
        return self._image(job_id, image_id)

    def _image(self, job_id: str, image_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key=self._image_key(job_id, image_id), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def get_image(self, job_id: str, image_id: str) -> dict[str, Any] | None:
        """One image of a job as stored now (a consistent read), or None."""
        return self._image(job_id, image_id)

    def start_image(self, job_id: str, image_id: str) -> bool:
        """PENDING → RUNNING (a repeated start only refreshes startedAt). False, and nothing
        written, if the image has already finished."""
        fields = {"startedAt": contracts.utc_now_iso(), "errorCode": None, "cause": None}
        return self._transition(job_id, image_id, ImageStatus.RUNNING, fields)

    def set_image_status(
        self,
        job_id: str,
        image_id: str,
        status: ImageStatus,
        *,
        error_code: ErrorCode | str | None = None,
        cause: str | None = None,
        outputs: Sequence[Mapping[str, Any]] | None = None,
        attempts: Sequence[Mapping[str, Any]] | None = None,
        width: int | None = None,
        height: int | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
        verdict: str | None = None,
        model_calls: int | None = None,
        cost_usd: float | None = None,
    ) -> bool:
        """Move an image that has not finished to `status` (RUNNING, SUCCEEDED, FAILED, CANCELLED) with
        what is known about it; the job's counts move in the same transaction. False, and nothing
        written, if the image had already finished. Fields not given are removed when the image
        finishes (a FAILED image has no outputs, a SUCCEEDED one no error). `verdict`: the worst
        scorecard outcome of its outputs (what the gallery filters and sorts on); `model_calls`:
        the model calls that answered for it, and `cost_usd`: what it cost (its attempts' model
        calls and checks), each added to the job's running total in the same transaction, so
        once: the transition is conditional on the image not having finished."""
        status = ImageStatus(status)
        if status is ImageStatus.PENDING:
            raise ValueError("an image never goes back to PENDING")
        terminal = status in contracts.TERMINAL_IMAGE_STATUSES
        fields: dict[str, Any] = {"startedAt": started_at} if started_at else {}
        if terminal:
            fields.update(
                _finished_fields(
                    error_code=error_code,
                    cause=cause,
                    outputs=outputs,
                    attempts=attempts,
                    width=width,
                    height=height,
                    finished_at=finished_at,
                    verdict=verdict,
                    model_calls=model_calls,
                    cost_usd=cost_usd,
                )
            )
        return self._transition(job_id, image_id, status, fields)

    def close_unfinished(
        self,
        job_id: str,
        cause: str = UNFINISHED_CAUSE,
        *,
        code: ErrorCode | None = ErrorCode.INTERNAL_ERROR,
        status: ImageStatus = ImageStatus.FAILED,
    ) -> list[dict[str, Any]]:
        """Every image the workflow never finished ends `status` (FAILED, or CANCELLED for a
        cancelled job) with `code` and `cause`; returns all the job's images as they now are."""
        status = ImageStatus(status)
        images = self.images(job_id)
        unfinished = [i for i in images if i.get("status") not in contracts.TERMINAL_IMAGE_STATUSES]
        if not unfinished:
            return images
        # a 10,000-image job closed one image at a time was 20,000 sequential round trips (a read
        # and a transaction each): here up to TRANSACT_IMAGES_PER_CALL images and the job's counts
        # are one transaction, from the statuses this one Query read
        fields = _finished_fields(error_code=code, cause=cause)
        for start in range(0, len(unfinished), TRANSACT_IMAGES_PER_CALL):
            batch = unfinished[start : start + TRANSACT_IMAGES_PER_CALL]
            if not self._close_batch(job_id, batch, status, fields):
                # one of them moved since it was read (it finished on its own, or started): each
                # one as before, so an image that finished keeps its own outcome
                for image in batch:
                    self.set_image_status(job_id, image["imageId"], status, error_code=code, cause=cause)
        # the whole job as it now is (a consistent read: the writes above are in it)
        return [
            plain(i)
            for i in self._query_all(KeyConditionExpression=self._images_condition(job_id), ConsistentRead=True)
        ]

    def _close_batch(
        self, job_id: str, images: Sequence[Mapping[str, Any]], status: ImageStatus, fields: Mapping[str, Any]
    ) -> bool:
        """Move `images` (unfinished, in the status each was read in) to `status` and the job's
        counts with them, in one transaction. False, and nothing written, when any of them is no
        longer in the status it was read in."""
        moved = Counter(str(i["status"]) for i in images)
        items: list[dict[str, Any]] = [
            {"Update": self._transition_update(job_id, str(i["imageId"]), ImageStatus(i["status"]), status, fields)}
            for i in images
        ]
        names = {"#after": status.value}
        values: dict[str, Any] = {":total": len(images), ":zero": 0}
        sets = []
        for n, (before, count) in enumerate(sorted(moved.items())):
            names[f"#b{n}"] = before
            values[f":b{n}"] = count
            sets.append(f"counts.#b{n} = counts.#b{n} - :b{n}")
        sets.append("counts.#after = if_not_exists(counts.#after, :zero) + :total")
        items.append(
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": self._job_key(job_id),
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        )
        try:
            self._transact(items)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if codes and codes[-1] != "ConditionalCheckFailed" and "ConditionalCheckFailed" in codes[:-1]:
                return False  # an image moved meanwhile; the job item is there
            raise
        return True

    def _transition(self, job_id: str, image_id: str, status: ImageStatus, fields: Mapping[str, Any]) -> bool:
        """Optimistic transition: read the image's status, then update it on the condition that
        it is still that status, moving the job's counts in the same transaction."""
        # contention (a conflict on the job item, throttling) is retried inside _transact; this
        # loop only looks again when another writer really moved the image, which can happen at
        # most once per status
        for _ in range(_TRANSITION_ATTEMPTS):
            current = self._image(job_id, image_id)
            if current is None:
                raise StorageError(f"job {job_id} has no image {image_id}")
            before = ImageStatus(current["status"])
            if before in contracts.TERMINAL_IMAGE_STATUSES:
                return False
            try:
                self._write_transition(job_id, image_id, before, status, fields)
            except ClientError as exc:
                if not self._lost_race(exc):
                    raise
                continue  # another writer moved the image: look again
            return True
        raise StorageError(f"image {image_id} of job {job_id} kept changing; its status was not updated")

    def _transition_update(
        self, job_id: str, image_id: str, before: ImageStatus, after: ImageStatus, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The image's UpdateItem (as a TransactWriteItems Update) moving it from `before` to
        `after` with `fields` (None: removed), on the condition that it is still `before`."""
        names = {"#s": "status", "#u": "updatedAt"}
        values: dict[str, Any] = {":after": after.value, ":before": before.value, ":now": contracts.utc_now_iso()}
        sets = ["#s = :after", "#u = :now"]
        # the index keys move in the same write as the status and verdict (store.images_page)
        keys = contracts.image_view_keys(job_id, image_id, after.value, fields.get("verdict"))
        if "verdict" not in fields:  # the verdict is not written: its key stays as it is
            del keys[contracts.VERDICT_INDEX_PK]
        for i, (name, value) in enumerate(keys.items()):
            names[f"#k{i}"] = name
            values[f":k{i}"] = value
            sets.append(f"#k{i} = :k{i}")
        removes = []
        for i, (name, value) in enumerate(fields.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            else:
                values[f":f{i}"] = value
                sets.append(f"#f{i} = :f{i}")
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return {
            "TableName": self.table.name,
            "Key": self._image_key(job_id, image_id),
            "UpdateExpression": update,
            "ConditionExpression": "#s = :before",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _stored(values),
        }

    def _write_transition(
        self, job_id: str, image_id: str, before: ImageStatus, after: ImageStatus, fields: Mapping[str, Any]
    ) -> None:
        image_update = self._transition_update(job_id, image_id, before, after, fields)
        if before is after:  # a repeated start: no count moves
            self._update(**{k: v for k, v in image_update.items() if k != "TableName"})
            return
        counts_update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": self._job_key(job_id),
            "UpdateExpression": "SET counts.#before = counts.#before - :one, "
            "counts.#after = if_not_exists(counts.#after, :zero) + :one",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#before": before.value, "#after": after.value},
            "ExpressionAttributeValues": {":one": 1, ":zero": 0},
        }
        adds = []
        calls = fields.get("modelCalls")
        if calls:  # the job's running total of answered model calls: its actual cost
            adds.append(f"{contracts.JOB_MODEL_CALLS_ATTRIBUTE} :calls")
            counts_update["ExpressionAttributeValues"][":calls"] = int(calls)
        cost = fields.get("costUsd")
        if cost:  # the job's running total of what it cost (chalicelib/catalogue/costs.py)
            adds.append("#cost :cost")
            counts_update["ExpressionAttributeNames"]["#cost"] = contracts.JOB_COST_ATTRIBUTE
            counts_update["ExpressionAttributeValues"][":cost"] = _usd(cost)
        if fields.get("verdict"):  # per-verdict counts, so the gallery skips empty verdicts
            adds.append("#verdict :one")
            counts_update["ExpressionAttributeNames"]["#verdict"] = contracts.verdict_count_attribute(fields["verdict"])
        if adds:
            counts_update["UpdateExpression"] += " ADD " + ", ".join(adds)
        # the resource's client serializes Python values itself, as the Table does
        self._transact([{"Update": image_update}, {"Update": counts_update}])

    @staticmethod
    def _lost_race(exc: ClientError) -> bool:
        """The image's own condition failed (another writer moved it): the caller looks again.
        A missing job item is a real error, and contention that outlasted every retry is not a
        lost race either (it says nothing about the image)."""
        code = client_error_code(exc)
        if code == CONDITION_FAILED:
            return True
        codes = cancellation_codes(exc)
        job_missing = len(codes) > 1 and codes[1] == "ConditionalCheckFailed"
        return bool(codes) and codes[0] == "ConditionalCheckFailed" and not job_missing

    def _client(self) -> Any:
        return self.table.meta.client

    # ------------------------------------------------------------------ contention

    def _with_retries(self, call: Callable[[], _T], retried: Callable[[BaseException], bool] = is_contention) -> _T:
        """`call`, again after a capped, fully jittered wait each time DynamoDB refused it for
        contention alone (a TransactionConflict, throttling: nothing was written), up to
        DYNAMODB_CONTENTION_RETRY's retries; any other answer is the caller's."""
        policy = DYNAMODB_CONTENTION_RETRY
        waited = 0.0
        retry = 0
        while True:
            try:
                answer = call()
            except ClientError as exc:
                if retry == policy.max_attempts or not retried(exc):
                    self.contention.record(retry, waited, gave_up=retried(exc))
                    raise
                delay = policy.jittered_delay_s(retry, self._rng)
                waited += delay
                retry += 1
                self.sleep(delay)
                continue
            self.contention.record(retry, waited, gave_up=False)
            return answer

    def _update(self, **kwargs: Any) -> Any:
        """UpdateItem, retried through contention (a refused update was not applied, so a retry
        cannot add twice)."""
        return self._with_retries(lambda: self.table.update_item(**kwargs))

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems, retried through contention. Its ClientRequestToken is kept for a
        retry after an answer that leaves its fate unknown (a server error, or the same token still
        in progress): were it applied, DynamoDB answers the retry with success and applies nothing
        (docs/aws-notes.md#n67-dynamodb-clientrequesttoken). After a cancellation or throttling,
        which applied nothing, the retry is a new request with a new token (what DynamoDB answers
        to a cancelled request's token is not documented). botocore draws a new token per call,
        so only its own retries would share one."""
        token = str(uuid.uuid4())

        def attempt() -> None:
            nonlocal token
            try:
                self._client().transact_write_items(TransactItems=items, ClientRequestToken=token)
            except ClientError as exc:
                if is_contention(exc) and client_error_code(exc) != "TransactionInProgressException":
                    token = str(uuid.uuid4())
                raise

        self._with_retries(attempt, lambda exc: is_contention(exc) or client_error_code(exc) in SERVER_ERROR_CODES)

    # ------------------------------------------------------------------ cached labels

    def cached_labels_entry(self, object_key: str) -> tuple[list[dict[str, Any]], dict[str, str] | None] | None:
        """(labels, why there are none or None) of an object, or None when nothing is cached."""
        item = self.table.get_item(Key=self._labels_key(object_key)).get("Item")
        if not item:
            return None
        unavailable = json.loads(item["unavailable"]) if item.get("unavailable") else None
        return json.loads(item["labels"]), unavailable

    def cached_labels(self, object_key: str) -> list[dict[str, Any]] | None:
        entry = self.cached_labels_entry(object_key)
        return entry[0] if entry else None

    def put_labels(
        self, object_key: str, labels: list[dict[str, Any]], unavailable: dict[str, str] | None = None
    ) -> None:
        item = {
            **self._labels_key(object_key),
            "labels": json.dumps(labels),  # a string: floats stay floats, no Decimal round trip
            "detectedAt": contracts.utc_now_iso(),
            # the labels of an upload go with it
            contracts.TTL_ATTRIBUTE: config.expires_at(config.UPLOAD_RETENTION_DAYS),
        }
        if unavailable:  # why label detection could not read the image: {code, message}
            item["unavailable"] = json.dumps(unavailable)
        self.table.put_item(Item=item)

    def cached_labels_many(self, object_keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Cached labels of many objects (see cached_label_entries_many)."""
        return {key: labels for key, (labels, _) in self.cached_label_entries_many(object_keys).items()}

    def cached_label_entries_many(self, object_keys: Sequence[str]) -> dict[str, LabelEntry]:
        """(labels, why there are none or None) of many objects, 100 keys per BatchGetItem (the
        API's limit), PARALLEL_CALLS of them at once; objects with nothing cached are left out."""
        unique = list(dict.fromkeys(object_keys))
        prefix = contracts.labels_pk("")

        def read(chunk: Sequence[str]) -> dict[str, LabelEntry]:
            found: dict[str, LabelEntry] = {}
            request: Any = {self.table.name: {"Keys": [self._labels_key(k) for k in chunk]}}
            while request:
                answer = self._client().batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table.name, []):
                    unavailable = json.loads(item["unavailable"]) if item.get("unavailable") else None
                    found[item["pk"].removeprefix(prefix)] = (json.loads(item["labels"]), unavailable)
                request = answer.get("UnprocessedKeys") or {}
            return found

        chunks = [unique[i : i + BATCH_GET_MAX_KEYS] for i in range(0, len(unique), BATCH_GET_MAX_KEYS)]
        found: dict[str, LabelEntry] = {}
        if len(chunks) <= 1:
            for chunk in chunks:
                found.update(read(chunk))
            return found
        with ThreadPoolExecutor(max_workers=min(PARALLEL_CALLS, len(chunks))) as pool:
            for part in pool.map(read, chunks):
                found.update(part)
        return found
