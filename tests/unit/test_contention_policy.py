"""The one retry policy for DynamoDB contention (chalicelib/core/errors.py): what counts as contention
(nothing was written, so a retry cannot apply twice), and waits that fit every Lambda."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import ClientError

from chalicelib.core.errors import DYNAMODB_CONTENTION_RETRY, cancellation_codes, is_contention
from chalicelib.core.functions import FUNCTIONS


def _error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict = {"Error": {"Code": code, "Message": "m"}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")


@pytest.mark.parametrize(
    ("error", "contention"),
    [
        (_error("TransactionCanceledException", ["None", "TransactionConflict"]), True),
        (_error("TransactionCanceledException", ["ThrottlingError", "None"]), True),
        (_error("TransactionConflictException"), True),
        (_error("ProvisionedThroughputExceededException"), True),
        (_error("ThrottlingException"), True),
        (_error("TransactionInProgressException"), True),
        # a failed condition says something about the data: never retried blindly
        (_error("TransactionCanceledException", ["ConditionalCheckFailed", "TransactionConflict"]), False),
        (_error("TransactionCanceledException", ["ConditionalCheckFailed", "None"]), False),
        (_error("TransactionCanceledException", ["None", "None"]), False),
        (_error("ConditionalCheckFailedException"), False),
        (_error("ValidationException"), False),
        (_error("AccessDeniedException"), False),
    ],
)
def test_only_contention_is_retried(error: ClientError, contention: bool) -> None:
    assert is_contention(error) is contention


def test_cancellation_codes_read_in_request_order() -> None:
    assert cancellation_codes(_error("TransactionCanceledException", ["None", "TransactionConflict"])) == [
        "None",
        "TransactionConflict",
    ]
    assert cancellation_codes(ValueError("x")) == []


def test_waits_are_full_jitter_under_a_doubling_cap() -> None:
    policy = DYNAMODB_CONTENTION_RETRY
    caps = policy.delays_s()
    assert caps[:3] == [0.025, 0.05, 0.1] and caps[-1] == 1.0
    rng = random.Random(3)
    draws = [[policy.jittered_delay_s(i, rng) for i in range(policy.max_attempts)] for _ in range(200)]
    assert all(0 <= d <= caps[i] for row in draws for i, d in enumerate(row))
    # spread over the whole range, not clustered at the cap
    last = [row[-1] for row in draws]
    assert min(last) < 0.2 and max(last) > 0.8


def test_the_longest_wait_rides_out_seconds_and_fits_the_shortest_lambda_timeout() -> None:
    longest = DYNAMODB_CONTENTION_RETRY.longest_wait_s()
    shortest_timeout = min(f.timeout_s for f in FUNCTIONS if f.timeout_s)
    assert 5 <= longest < shortest_timeout / 2
