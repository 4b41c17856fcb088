"""The jobs table's keys and its guarded calls: retries under contention, conditional updates,
transactions, batch writes (every concern of the store builds on these)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.errors import (
    CONDITION_FAILED,
    DYNAMODB_CONTENTION_RETRY,
    SERVER_ERROR_CODES,
    THROTTLING_CODES,
    StorageError,
    cancellation_codes,
    client_error_code,
    is_contention,
)
from chalicelib.store.items import (
    _BATCH_RETRY_BASE_S,
    _BATCH_RETRY_CAP_S,
    _BATCH_WRITE_ATTEMPTS,
    _T,
    PARALLEL_CALLS,
    WRITE_CHUNK,
    Contention,
)


class StoreBase:
    """The table, its keys, and the guarded calls every concern makes."""

    def __init__(
        self, table: Any, sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None
    ) -> None:
        self.table = table
        self.sleep = sleep
        self.clock: Callable[[], float] = time.monotonic  # the image writes' pace (tests fake it)
        self._rng = rng or random.Random()
        self.contention = Contention()

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
