"""The local stack's AWS checks against requests signed by botocore itself (no server, no AWS)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from backend.local.aws_gateway import Credentials, Refused, SignedRequest, SigV4Checker

CREDS = Credentials(access_key="ASIATEST", secret_key="secret-of-this-run", session_token="token-of-this-run")
ENDPOINT = "http://127.0.0.1:4566"


def _boto(creds: Credentials = CREDS) -> BotoCredentials:
    return BotoCredentials(creds.access_key, creds.secret_key, creds.session_token)


def _signed(method: str, url: str, body: bytes, service: str, headers: dict[str, str] | None = None) -> SignedRequest:
    request = AWSRequest(method=method, url=url, data=body, headers={"Host": urlsplit(url).netloc, **(headers or {})})
    (S3SigV4Auth if service == "s3" else SigV4Auth)(_boto(), service, "us-east-1").add_auth(request)
    parts = urlsplit(url)
    return SignedRequest(method, parts.path, parts.query, {k.lower(): v for k, v in request.headers.items()}, body)


def _s3_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=CREDS.access_key,
        aws_secret_access_key=CREDS.secret_key,
        aws_session_token=CREDS.session_token,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def test_header_signatures_from_botocore_verify_and_tampering_does_not() -> None:
    checker = SigV4Checker(CREDS)
    body = json.dumps({"TableName": "jobs"}).encode()
    request = _signed("POST", f"{ENDPOINT}/", body, "dynamodb", {"X-Amz-Target": "DynamoDB_20120810.Scan"})
    assert checker.check_header(request).service == "dynamodb"
    other_body = SignedRequest(
        request.method, request.raw_path, request.raw_query, request.headers, b'{"TableName":"x"}'
    )
    with pytest.raises(Refused, match="SignatureDoesNotMatch"):
        checker.check_header(other_body)
    s3 = _signed("GET", f"{ENDPOINT}/bucket/uploads/a%20b/%C3%BC.png?list-type=2&prefix=a%2Fb", b"", "s3")
    assert checker.check_header(s3).service == "s3"
    moved = SignedRequest("GET", "/bucket/uploads/other.png", s3.raw_query, s3.headers, b"")
    with pytest.raises(Refused, match="SignatureDoesNotMatch"):
        checker.check_header(moved)
    put = _signed("PUT", f"{ENDPOINT}/bucket/k", b"original", "s3")
    swapped = SignedRequest("PUT", put.raw_path, put.raw_query, put.headers, b"replaced")
    with pytest.raises(Refused, match="XAmzContentSHA256Mismatch"):
        checker.check_header(swapped)


def test_only_the_runs_own_credentials_and_clock_are_accepted() -> None:
    stranger = Credentials("ak", "sk", CREDS.session_token)
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/bucket", headers={"Host": "127.0.0.1:4566"})
    S3SigV4Auth(_boto(stranger), "s3", "us-east-1").add_auth(request)
    signed = SignedRequest("GET", "/bucket", "", {k.lower(): v for k, v in request.headers.items()}, b"")
    with pytest.raises(Refused, match="InvalidAccessKeyId"):
        SigV4Checker(CREDS).check_header(signed)
    mine = _signed("GET", f"{ENDPOINT}/bucket", b"", "s3")
    with pytest.raises(Refused, match="RequestTimeTooSkewed"):
        SigV4Checker(CREDS, clock=lambda: time.time() + 3600).check_header(mine)
    no_token = {k: v for k, v in mine.headers.items() if k != "x-amz-security-token"}
    with pytest.raises(Refused, match="InvalidToken"):
        SigV4Checker(CREDS).check_header(SignedRequest("GET", "/bucket", "", no_token, b""))


def test_presigned_urls_verify_until_they_expire() -> None:
    url = _s3_client().generate_presigned_url(
        "get_object", Params={"Bucket": "bucket", "Key": "results/u/j/a b+ü.png"}, ExpiresIn=60
    )
    parts = urlsplit(url)
    request = SignedRequest("GET", parts.path, parts.query, {"host": parts.netloc})
    assert SigV4Checker(CREDS).check_query(request).service == "s3"
    with pytest.raises(Refused, match="expired"):
        SigV4Checker(CREDS, clock=lambda: time.time() + 61).check_query(request)
    with pytest.raises(Refused, match="SignatureDoesNotMatch"):
        SigV4Checker(CREDS).check_query(
            SignedRequest("GET", "/bucket/results/u/j/other.png", parts.query, request.headers)
        )


def _grant(**overrides: Any) -> dict[str, str]:
    post = _s3_client().generate_presigned_post(
        Bucket="bucket",
        Key="uploads/owner-b/u/i.png",
        Fields={"Content-Type": "image/png"},
        Conditions=[{"Content-Type": "image/png"}, ["content-length-range", 1, 1000]],
        ExpiresIn=900,
    )
    return {**post["fields"], **overrides}


@pytest.mark.parametrize(
    ("fields", "size", "code"),
    [
        ({"key": "uploads/owner-a/u/i.png"}, 10, "AccessDenied"),  # another user's key
        ({"Content-Type": "text/html"}, 10, "AccessDenied"),
        ({"acl": "public-read"}, 10, "AccessDenied"),  # a field no condition covers
        ({}, 1001, "EntityTooLarge"),
        ({}, 0, "EntityTooSmall"),
        ({"x-amz-signature": "0" * 64}, 10, "SignatureDoesNotMatch"),
        ({"x-amz-security-token": "guessed"}, 10, "InvalidToken"),
    ],
)
def test_post_policy_refuses_what_s3_refuses(fields: dict[str, str], size: int, code: str) -> None:
    with pytest.raises(Refused) as caught:
        SigV4Checker(CREDS).check_post("bucket", _grant(**fields), size)
    assert caught.value.code == code


def test_post_policy_accepts_its_own_grant_until_it_expires() -> None:
    SigV4Checker(CREDS).check_post("bucket", _grant(), 10)
    SigV4Checker(CREDS).check_post("bucket", {**_grant(), "x-ignore-tracking": "1"}, 10)
    with pytest.raises(Refused, match="AccessDenied"):
        SigV4Checker(CREDS).check_post("another-bucket", _grant(), 10)
    with pytest.raises(Refused, match="expired"):
        SigV4Checker(CREDS, clock=lambda: time.time() + 901).check_post("bucket", _grant(), 10)
    policy = json.loads(base64.b64decode(_grant()["policy"]))
    policy["conditions"].append(["content-length-range", 1, 10**9])
    widened = base64.b64encode(json.dumps(policy).encode()).decode()
    with pytest.raises(Refused, match="SignatureDoesNotMatch"):
        SigV4Checker(CREDS).check_post("bucket", _grant(policy=widened), 10)
