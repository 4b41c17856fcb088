"""Backdrop's error vocabulary.

`BackdropError` carries a stable `ErrorCode` and a human message. API routes turn it into a JSON
error response; workflow Lambdas raise `StepError` subclasses, whose *class name* is the error
name Step Functions sees (Lambda reports `errorType` = the exception's class name), so the state
machine and `record_failure` can map it back to the stable code without parsing message text.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

from chalicelib.core.contracts import ErrorCode


class BackdropError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL_ERROR  # per class; an instance may carry a more precise one
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, code: ErrorCode | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The one error shape of every API answer: {code, message, details} (details a list)."""
        return error_body(self.code, self.message, self.details)


def error_body(code: ErrorCode | str, message: str, details: Any = None) -> dict[str, Any]:
    if details is None:
        details = []
    elif not isinstance(details, list):
        details = [details]
    return {"code": ErrorCode(code).value, "message": message, "details": details}


class ValidationError(BackdropError):
    """A request that breaks a documented limit: refused before anything is spent."""

    code = ErrorCode.VALIDATION_FAILED
    http_status = 400


class BadRequest(BackdropError):
    code = ErrorCode.BAD_REQUEST
    http_status = 400


class Unauthorized(BackdropError):
    code = ErrorCode.UNAUTHORIZED
    http_status = 401


class NotFound(BackdropError):
    """Also what another owner's object looks like: existence is never confirmed."""

    code = ErrorCode.NOT_FOUND
    http_status = 404


class Conflict(BackdropError):
    code = ErrorCode.CONFLICT
    http_status = 409


class ModelUnavailable(BackdropError):
    code = ErrorCode.MODEL_UNAVAILABLE
    http_status = 400


class UploadMissing(BackdropError):
    code = ErrorCode.UPLOAD_MISSING
    http_status = 400


class ReportNotReady(BackdropError):
    """The job exists and is the caller's, but its report has not been written yet."""

    code = ErrorCode.REPORT_NOT_READY
    http_status = 409


class ServiceBusy(BackdropError):
    """An AWS service throttled Backdrop: the same request may succeed after a pause."""

    code = ErrorCode.SERVICE_BUSY
    http_status = 503


class IdempotencyKeyReused(BackdropError):
    """The Idempotency-Key was used before with a different body: nothing is created."""

    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    http_status = 409


class RequestInProgress(BackdropError):
    """The first request with this Idempotency-Key has not finished: retry in a few seconds."""

    code = ErrorCode.REQUEST_IN_PROGRESS
    http_status = 409


class StorageUnavailable(BackdropError):
    """S3 or DynamoDB refused Backdrop itself (permissions, an outage): not the caller's fault."""

    code = ErrorCode.STORAGE_ERROR
    http_status = 500


# --------------------------------------------------------------------------------------------
# botocore ClientError codes, read in one place. S3's HEAD has no body, so its errors carry the
# HTTP status as the code ("404", "403").

NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound", "ResourceNotFoundException"})
ACCESS_DENIED_CODES: Final = frozenset({"403", "AccessDenied", "AccessDeniedException", "Forbidden"})
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "503",
    }
)
CONDITION_FAILED: Final = "ConditionalCheckFailedException"


def client_error_code(exc: BaseException) -> str:
    """The service's error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str((response.get("Error") or {}).get("Code") or "")


def client_error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    error = (response.get("Error") or {}) if isinstance(response, dict) else {}
    return str(error.get("Message") or client_error_code(exc) or exc)


def is_not_found(exc: BaseException) -> bool:
    return client_error_code(exc) in NOT_FOUND_CODES


def service_failure(exc: BaseException, what: str) -> BackdropError:
    """An AWS error the caller did not expect, as an API error by its code: throttling is a
    retryable 503, anything else (access denied, an outage) Backdrop's own storage failure."""
    code = client_error_code(exc) or type(exc).__name__
    if code in THROTTLING_CODES:
        return ServiceBusy(f"{what}: AWS is busy ({code}); try again in a few seconds")
    return StorageUnavailable(f"{what}: {code}")


# --------------------------------------------------------------------------------------------
# Workflow step errors. The state machine never retries them on an image: they describe the
# input, not luck (a StorageError is what is left after the SDK retried throttled and failing
# S3 calls), except StorageBusy, S3 failing for a while, which it retries with STORAGE_RETRY. Only the job's report, run once per job and idempotent, retries any failure before
# it falls back to a summary without a report (backend/statemachine.py, RETRY_POLICIES).


class StepError(BackdropError):
    code = ErrorCode.INTERNAL_ERROR


class ImageInvalid(StepError):
    code = ErrorCode.IMAGE_INVALID


class ImageTooSmall(StepError):
    code = ErrorCode.IMAGE_TOO_SMALL


class ImageTooLarge(StepError):
    code = ErrorCode.IMAGE_TOO_LARGE


class PresetUnmet(StepError):
    code = ErrorCode.PRESET_UNMET


class NoSubject(StepError):
    code = ErrorCode.NO_SUBJECT


class ContentFiltered(StepError):
    code = ErrorCode.CONTENT_FILTERED


class ModelResponseInvalid(StepError):
    code = ErrorCode.MODEL_RESPONSE_INVALID


class RequestInvalid(StepError):
    """Backdrop built a request (canvas, mask, settings) that breaks a model limit, and refused to
    send it. The fault is Backdrop's, never the model's: INTERNAL_ERROR, not MODEL_REJECTED_REQUEST
    (which is what Bedrock's own ValidationException maps to)."""

    code = ErrorCode.INTERNAL_ERROR


class StorageError(StepError):
    code = ErrorCode.STORAGE_ERROR


class StorageBusy(StorageError):
    """S3 answered a failure that passes (a 5xx, SlowDown, throttling, a dropped connection) and
    outlasted the SDK's own few retries: the state machine retries the step on this error name
    with STORAGE_RETRY (backend/statemachine.py), so an outage of a minute fails no image (issue
    #26: a 30 s S3 write failure failed every image of a job). What is left after those retries
    is a STORAGE_ERROR like any other."""


# S3 error codes (and HTTP statuses) that describe the service, not the request
# (docs/aws-notes.md#n103-s3-errors-that-pass): retried by the state machine, never by a user.
TRANSIENT_STORAGE_CODES: Final = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500", "502", "503", "504"}
)


def is_transient_storage_error(exc: BaseException) -> bool:
    """Whether a failed S3 call may succeed when made again later: a 5xx or throttling answer,
    or no answer at all (a connection that failed or timed out)."""
    # botocore's ConnectionError covers refused, dropped and timed-out connections, ReadTimeoutError an
    # answer that never came; told by the class's lineage so that core imports no AWS SDK
    # (tests/unit/test_layout.py)
    if any(
        c.__module__ == "botocore.exceptions" and c.__name__ in ("ConnectionError", "ReadTimeoutError")
        for c in type(exc).__mro__
    ):
        return True
    code = client_error_code(exc)
    if code in TRANSIENT_STORAGE_CODES or code in THROTTLING_CODES:
        return True
    status = ((getattr(exc, "response", None) or {}).get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return isinstance(status, int) and status >= 500


class JobCancelled(StepError):
    """The job was cancelled: an image it had not started is not processed (its status stays
    CANCELLED; nothing is spent on it)."""


class BudgetReached(StepError):
    """The job's budget cap was spent: this image's model calls were never sent."""

    code = ErrorCode.BUDGET_REACHED


_E = TypeVar("_E", bound=BackdropError)


def _all_subclasses(cls: type[_E]) -> list[type[_E]]:
    out: list[type[_E]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


# Step Functions error name -> stable code, for errors Backdrop raises itself.
STEP_ERROR_CODES: dict[str, ErrorCode] = {cls.__name__: cls.code for cls in _all_subclasses(StepError)}

# Error names that service integrations raise -> stable code. Step Functions names errors of
# optimized integrations "<Service>.<Exception>"; the Bedrock names follow the InvokeModel API
# exceptions (docs/aws-notes.md#n6-bedrock-invokemodel-errors). The state machine retries a Bedrock
# error exactly when its code is in RETRIED_MODEL_CODES: backend/statemachine.py builds the Retry
# from this table.
SERVICE_ERROR_CODES: dict[str, ErrorCode] = {
    "Bedrock.ValidationException": ErrorCode.MODEL_REJECTED_REQUEST,
    "Bedrock.AccessDeniedException": ErrorCode.MODEL_ACCESS_DENIED,
    "Bedrock.ResourceNotFoundException": ErrorCode.MODEL_ACCESS_DENIED,
    "Bedrock.ThrottlingException": ErrorCode.MODEL_THROTTLED,
    "Bedrock.ServiceQuotaExceededException": ErrorCode.MODEL_THROTTLED,
    "Bedrock.ModelNotReadyException": ErrorCode.MODEL_THROTTLED,
    "Bedrock.ModelTimeoutException": ErrorCode.MODEL_TIMEOUT,
    "Bedrock.ServiceUnavailableException": ErrorCode.MODEL_ERROR,
    "Bedrock.InternalServerException": ErrorCode.MODEL_ERROR,
    "Bedrock.ModelErrorException": ErrorCode.MODEL_ERROR,
    "States.Timeout": ErrorCode.MODEL_TIMEOUT,
    "States.TaskFailed": ErrorCode.INTERNAL_ERROR,
}
# Luck, not the request: waiting may cure these. Throttling first, with the longer backoff.
RETRIED_MODEL_CODES: tuple[ErrorCode, ...] = (ErrorCode.MODEL_THROTTLED, ErrorCode.MODEL_TIMEOUT, ErrorCode.MODEL_ERROR)


@dataclass(frozen=True)
class RetryPolicy:
    """One Step Functions retrier's numbers: the ASL is written from them (backend/statemachine.py)
    and an image that used them all up says so in its cause, from the same numbers."""

    interval_s: float  # whole seconds in the ASL (IntervalSeconds); a client-side policy may use less
    max_attempts: int
    backoff_rate: float = 2.0
    max_delay_s: float | None = None

    def delays_s(self) -> list[float]:
        """The computed delay before each retry (full jitter then waits a random 0..delay)."""
        cap = self.max_delay_s if self.max_delay_s is not None else float("inf")
        return [min(self.interval_s * self.backoff_rate**attempt, cap) for attempt in range(self.max_attempts)]

    def jittered_delay_s(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number `retry` (0-based) of a client-side loop: full jitter, a
        uniform draw over 0..the computed delay, so writers that collided spread apart."""
        return rng.uniform(0, self.delays_s()[retry])

    def longest_wait_s(self) -> float:
        return sum(self.delays_s())

    def expected_wait_s(self) -> float:
        return self.longest_wait_s() / 2  # full jitter: each wait is uniform over 0..delay


# Bedrock throttling: up to 8 retries, waits doubling from 2 s and capped at 60 s (about two
# minutes of waiting on average). The budget fits a STANDARD child, not an Express one
# (backend/statemachine.py says which the deploy uses, and why).
MODEL_THROTTLING_RETRY: Final = RetryPolicy(interval_s=2, max_attempts=8, max_delay_s=60)
MODEL_FAILURE_RETRY: Final = RetryPolicy(interval_s=2, max_attempts=3)
# S3 failing for a while (StorageBusy): waits doubling from 2 s, capped at 60 s, 8 retries, up to
# 4 minutes (2 on average with full jitter): an outage of a minute or two fails no image.
STORAGE_RETRY: Final = RetryPolicy(interval_s=2, max_attempts=8, max_delay_s=60)
MODEL_RETRY_POLICIES: Final = {
    ErrorCode.MODEL_THROTTLED: MODEL_THROTTLING_RETRY,
    ErrorCode.MODEL_TIMEOUT: MODEL_FAILURE_RETRY,
    ErrorCode.MODEL_ERROR: MODEL_FAILURE_RETRY,
}


# DynamoDB contention (docs/aws-notes.md#n65-dynamodb-transaction-conflicts and
# #n66-dynamodb-partition-throughput): a write cancelled because another transaction held one of its
# items, or throttled past its partition's rate, was not applied; botocore retries throttling a few
# times but never a TransactionConflict. The store retries both, every write, with this policy:
# waits doubling from 25 ms, capped at 1 s, 15 retries: up to ~10.6 s of waiting (half that
# expected), enough to ride out seconds of a saturated job item (tests/functional/
# test_store_contention.py), inside the 30 s of the shortest Lambda timeout (chalicelib/core/functions.py).
DYNAMODB_CONTENTION_RETRY: Final = RetryPolicy(interval_s=0.025, max_attempts=15, max_delay_s=1.0)
CONTENTION_CODES: Final = THROTTLING_CODES | {"TransactionConflictException", "TransactionInProgressException"}
# CancellationReasons codes of a transaction cancelled by contention alone (nothing was written)
CONTENTION_REASONS: Final = frozenset({"TransactionConflict", "ThrottlingError"})


# A server error leaves a write's fate unknown (applied, its answer lost?): retried only where a
# retry cannot apply twice, a TransactWriteItems with its ClientRequestToken
# (docs/aws-notes.md#n67-dynamodb-clientrequesttoken).
SERVER_ERROR_CODES: Final = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException", "500", "503"}
)


def cancellation_codes(exc: BaseException) -> list[str]:
    """The CancellationReasons codes of a TransactionCanceledException, in request order ("None"
    for items that were fine); [] for any other error."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return []
    return [str((reason or {}).get("Code") or "None") for reason in response.get("CancellationReasons") or []]


def is_contention(exc: BaseException) -> bool:
    """A DynamoDB write refused for contention alone (so not applied): worth retrying as it was."""
    code = client_error_code(exc)
    if code in CONTENTION_CODES:
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = [c for c in cancellation_codes(exc) if c != "None"]
    return bool(reasons) and all(c in CONTENTION_REASONS for c in reasons)


def service_errors_with(service: str, *codes: ErrorCode) -> list[str]:
    """The error names of one service integration that map to any of `codes`, in table order."""
    return [name for name, code in SERVICE_ERROR_CODES.items() if name.startswith(f"{service}.") and code in codes]


def retried_model_errors(code: ErrorCode) -> list[str]:
    """The Bedrock error names retried under `code`'s policy: the ErrorEquals of its retrier."""
    if code is ErrorCode.MODEL_THROTTLED:
        return service_errors_with("Bedrock", ErrorCode.MODEL_THROTTLED)
    return service_errors_with("Bedrock", ErrorCode.MODEL_TIMEOUT, ErrorCode.MODEL_ERROR)


def retries_used(error: str) -> str:
    """What the state machine did before handing `error` to the failure recorder, when it retried
    it: "retried N times over about M s" (empty for errors it does not retry)."""
    code = SERVICE_ERROR_CODES.get(error)
    if code is None or code not in MODEL_RETRY_POLICIES or error not in retried_model_errors(code):
        return ""
    policy = MODEL_RETRY_POLICIES[code]
    return f"retried {policy.max_attempts} times over about {policy.expected_wait_s():.0f} s"


def classify_step_failure(error: str | None, cause: str | None) -> tuple[ErrorCode, str]:
    """Turn a Step Functions Catch payload ({Error, Cause}) into (stable code, human cause).

    Lambda failures carry a JSON Cause with errorMessage/errorType; service failures carry text.
    """
    error = error or "States.TaskFailed"
    message = cause or ""
    try:
        parsed = json.loads(cause) if cause else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        message = str(parsed.get("errorMessage") or "")
        error = str(parsed.get("errorType") or error)
    own_code = STEP_ERROR_CODES.get(error)
    if own_code is not None:  # Backdrop's own message already says what happened
        text = message or f"{error} (no further detail was given)"
        if error == StorageBusy.__name__:  # the state machine retried it (backend/statemachine.py)
            policy = STORAGE_RETRY
            text += f"; retried {policy.max_attempts} times over about {policy.expected_wait_s():.0f} s"
        return own_code, text
    code = SERVICE_ERROR_CODES.get(error)
    if code is None:
        code = ErrorCode.MODEL_ERROR if error.startswith("Bedrock.") else ErrorCode.INTERNAL_ERROR
    # name the service error too, so an operator can look it up
    text = f"{message} [{error}]" if message else f"{error} (no further detail was given)"
    retried = retries_used(error)
    if code is ErrorCode.MODEL_THROTTLED:
        return code, (
            f"the model's quota was still exhausted after the state machine {retried} "
            f"(exponential backoff with full jitter); lower the deploy's MaxConcurrency or raise the "
            f"model's quota, then retry the failed images: {text}"
        )
    return code, f"{text}; {retried}" if retried else text
