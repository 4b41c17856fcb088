"""AWS errors are read by their code, in one place, and mapped to Backdrop's own errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from chalicelib.core.errors import ServiceBusy, StorageUnavailable, client_error_code, is_not_found, service_failure


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "AnyOperation")


def test_the_code_is_read_from_a_client_error_and_nothing_else() -> None:
    assert client_error_code(_error("NoSuchKey")) == "NoSuchKey"
    assert client_error_code(ValueError("NoSuchKey")) == ""
    assert client_error_code(ClientError({}, "HeadObject")) == ""


@pytest.mark.parametrize(("code", "missing"), [("404", True), ("NoSuchKey", True), ("403", False), ("SlowDown", False)])
def test_only_not_found_codes_mean_missing(code: str, missing: bool) -> None:
    assert is_not_found(_error(code)) is missing


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        ("ThrottlingException", ServiceBusy, 503),
        ("SlowDown", ServiceBusy, 503),
        ("ProvisionedThroughputExceededException", ServiceBusy, 503),
        ("AccessDenied", StorageUnavailable, 500),
        ("403", StorageUnavailable, 500),
        ("InternalError", StorageUnavailable, 500),
    ],
)
def test_unexpected_aws_errors_become_busy_or_storage_errors_never_404(code: str, kind: type, status: int) -> None:
    error = service_failure(_error(code), "could not read the report")
    assert isinstance(error, kind) and error.http_status == status
    assert code in error.message and error.message.startswith("could not read the report")
