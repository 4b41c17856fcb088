"""POST /jobs with an `Idempotency-Key`: a client that retries (after a 504, a dropped connection)
gets the job it already made, never a second paid one.

Powertools for AWS Lambda's idempotency utility does the bookkeeping, with its DynamoDB
persistence in the jobs table itself: one item per owner and key (`pk = IDEMPOTENCY#<owner>`,
`sk` = Powertools' hash of the key), which expires through the table's TTL
(docs/aws-notes.md#n45-powertools-idempotency-in-a-shared-table). The first request with a key
stores its answer; a repeat with the same body gets that answer; a repeat with another body is a
409 (`IDEMPOTENCY_KEY_REUSED`), and a repeat while the first still runs a 409
(`REQUEST_IN_PROGRESS`). A request that fails (a 400, say) stores nothing, so the same key can be
used again once the body is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.core import contracts
from chalicelib.core.errors import BadRequest, IdempotencyKeyReused, RequestInProgress, StorageUnavailable

HEADER = "Idempotency-Key"
_KEY_PREFIX = "POST/jobs"


@dataclass(frozen=True)
class Outcome:
    answer: dict[str, Any]
    replayed: bool  # True: the answer of an earlier request with this key


def check_key(key: str) -> str:
    """A key is 1-255 printable ASCII characters (a UUID is the usual choice)."""
    if not 1 <= len(key) <= contracts.IDEMPOTENCY_KEY_MAX_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(
            f"{HEADER} must be 1 to {contracts.IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters (a UUID, say)"
        )
    return key


def once(
    dynamodb: Any,
    table_name: str,
    owner: str,
    key: str,
    body: Any,
    work: Callable[[], dict[str, Any]],
    lambda_context: Any = None,
) -> Outcome:
    """Run `work` once per (owner, key): its answer is stored and given back to every repeat with
    the same body. `dynamodb` is a boto3 DynamoDB client; with the Lambda context, a request
    that dies mid-way (a timeout) holds its key only until the invocation's deadline, not for
    the whole TTL."""
    # imported here: only submissions with a key pay for it (cold start)
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    persistence = DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=contracts.idempotency_pk(owner),
        expiry_attr=contracts.TTL_ATTRIBUTE,
        boto3_client=dynamodb,
    )
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=contracts.IDEMPOTENCY_TTL_SECONDS,
    )
    if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
        config.register_lambda_context(lambda_context)
    ran: list[bool] = []

    def run_once(request: dict[str, Any]) -> dict[str, Any]:
        ran.append(True)
        return work()

    submit: Callable[..., dict[str, Any]] = idempotent_function(
        run_once, data_keyword_argument="request", persistence_store=persistence, config=config, key_prefix=_KEY_PREFIX
    )

    try:
        answer = submit(request={"key": check_key(key), "body": body})
    except IdempotencyValidationError as exc:
        raise IdempotencyKeyReused(
            f"{HEADER} {key[:80]!r} was used before with a different request body; "
            "use a new key for a new job (nothing was created)"
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise RequestInProgress(
            f"the first request with {HEADER} {key[:80]!r} is still being processed; repeat it in a few seconds"
        ) from exc
    except IdempotencyPersistenceLayerError as exc:
        raise StorageUnavailable(f"could not record the {HEADER}: {exc}") from exc
    return Outcome(answer, replayed=not ran)
