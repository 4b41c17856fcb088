"""The cost benchmark's S3 request classes, read from requests as moto's server receives them."""

from __future__ import annotations

import pytest

from backend.local.meter import S3_DELETE, S3_GET_CLASS, S3_PUT_CLASS, Meter, s3_request_class

SIGNED = "AWS4-HMAC-SHA256 Credential=local/20261125/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"


@pytest.mark.parametrize(
    ("method", "host", "path", "query", "expected"),
    [
        ("GET", "127.0.0.1:5000", "/bucket/jobs/j/requests/i.json", "", S3_GET_CLASS),
        ("HEAD", "127.0.0.1:5000", "/bucket/uploads/o/u/i.png", "", S3_GET_CLASS),
        ("GET", "127.0.0.1:5000", "/bucket", "list-type=2&prefix=uploads%2F", S3_PUT_CLASS),  # a LIST
        ("PUT", "127.0.0.1:5000", "/bucket/results/o/j/i-1.jpeg", "", S3_PUT_CLASS),
        ("POST", "127.0.0.1:5000", "/bucket", "delete", S3_PUT_CLASS),  # DeleteObjects is a POST
        ("DELETE", "127.0.0.1:5000", "/bucket/jobs/j/manifest.json", "", S3_DELETE),
        ("GET", "bucket.localhost:5000", "/jobs/j/manifest.json", "", S3_GET_CLASS),  # virtual-hosted
        ("GET", "bucket.localhost:5000", "/", "list-type=2", S3_PUT_CLASS),
    ],
)
def test_signed_s3_requests_are_classed_as_s3_prices_them(method, host, path, query, expected) -> None:
    environ = {
        "REQUEST_METHOD": method,
        "HTTP_HOST": host,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "HTTP_AUTHORIZATION": SIGNED,
    }
    assert s3_request_class(environ) == expected


def test_presigned_requests_and_other_services() -> None:
    presigned_get = {
        "REQUEST_METHOD": "GET",
        "HTTP_HOST": "127.0.0.1:5000",
        "PATH_INFO": "/bucket/results/o/j/i-1.jpeg",
        "QUERY_STRING": "X-Amz-Credential=local%2F20261125%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x",
    }
    assert s3_request_class(presigned_get) == S3_GET_CLASS
    upload = {"REQUEST_METHOD": "POST", "PATH_INFO": "/bucket", "CONTENT_TYPE": "multipart/form-data; boundary=x"}
    assert s3_request_class(upload) == S3_PUT_CLASS
    dynamodb = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_AUTHORIZATION": SIGNED.replace("/s3/", "/dynamodb/")}
    assert s3_request_class(dynamodb) is None


def test_lambda_durations_are_billed_per_invocation_rounded_up() -> None:
    meter = Meter()
    handler = meter.timed("prepare", lambda event, context: event["n"] * 2)
    assert handler({"n": 21}, None) == 42
    with pytest.raises(KeyError):
        handler({}, None)  # a failed invocation is billed too
    assert meter.lambda_invocations["prepare"] == 2
    assert meter.lambda_billed_ms["prepare"] >= 2  # at least 1 ms each
