"""Every hostile request body is a 400 that names the problem, and nothing is written first.

Through Chalice's test client on moto, against every route that reads a body.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from builders import BUCKET, TABLE
from chalice.test import Client

from chalicelib.core import contracts

OWNER = "owner-strict"


def _uploaded(photo: Any) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(OWNER, ref), Body=photo())
    return ref


def _job_body(ref: str, prompt: str = "a beach") -> str:
    """A POST /jobs body as text: `prompt` is pasted in raw, so JSON escapes reach the server as sent."""
    image = json.dumps({"imageRef": ref, "name": "a.png", "labels": ["Person"]})
    return '{"prompt": "' + prompt + '", "images": [' + image + "]}"


def _items() -> list[dict[str, Any]]:
    return boto3.resource("dynamodb").Table(TABLE).scan()["Items"]


def _post(client: Client, path: str, token: str, body: bytes | str) -> Any:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return client.http.post(path, headers={"Authorization": token, "Content-Type": "application/json"}, body=raw)


def test_a_lone_surrogate_in_the_prompt_is_a_400_and_leaves_no_orphan_items(client, token_for, photo) -> None:
    ref = _uploaded(photo)
    response = _post(client, "/jobs", token_for(OWNER), _job_body(ref, prompt="sunset \\ud800 beach"))
    assert response.status_code == 400, response.body
    body = response.json_body
    assert body["code"] == "BAD_REQUEST"
    assert body["details"][0]["field"] == "prompt" and "surrogate" in body["message"]
    assert _items() == []  # neither image items nor a job: nothing was written
    # the same job with a real character goes through
    ok = _post(client, "/jobs", token_for(OWNER), _job_body(ref, prompt="sunset \\u2600 beach"))
    assert ok.status_code == 202, ok.body


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        (
            "/jobs",
            '{"prompt": "x", "images": [{"imageRef": "r", "name": "\\udc00.png"}]}',
            "images[0].name",
            "surrogate",
        ),
        (
            "/uploads",
            '{"files": [{"name": "\\ud83d.png", "contentType": "image/png", "size": 9}]}',
            "files[0].name",
            "surrogate",
        ),
        ("/labels", '{"imageRefs": ["\\udfff"]}', "imageRefs[0]", "surrogate"),
        ("/jobs", b'{"prompt": "caf\xe9"}', "body", "not valid UTF-8"),
        ("/jobs", b"\xef\xbb\xbf{}", "body", "not valid JSON"),  # a byte-order mark
        ("/uploads", "[" * 100_000 + "]" * 100_000, "body", "nests far deeper than 20"),
        ("/jobs", '{"images": ' + "[" * 25 + "]" * 25 + "}", "images" + "[0]" * 19, "deeper than 20"),
        ("/labels", '{"imageRefs": [], "imageRefs": ["x"]}', "imageRefs", "more than once"),
        ("/jobs", '{"prompt": "x", "seed": NaN}', "body", "NaN"),
        ("/jobs", '{"prompt": "x", "cfgScale": 1e999}', "body", "too large"),
        ("/jobs", '{"prompt": "x", "seed": ' + "9" * 5000 + "}", "body", "5,000 digits"),
        ("/jobs", '{"prompt": "x"', "body", "not valid JSON"),
    ],
    ids=[
        "surrogate-in-image-name",
        "surrogate-in-file-name",
        "surrogate-in-ref",
        "latin-1-bytes",
        "byte-order-mark",
        "nested-100000-deep",
        "nested-25-deep",
        "duplicate-key",
        "nan",
        "infinite-float",
        "5000-digit-number",
        "truncated",
    ],
)
def test_hostile_bodies_are_a_400_naming_the_problem(client, token_for, path, body, field, words) -> None:
    response = _post(client, path, token_for(OWNER), body)
    assert response.status_code == 400, (response.status_code, response.body[:300])
    answer = response.json_body
    assert answer["code"] == "BAD_REQUEST"
    assert words in answer["message"], answer
    assert answer["details"][0]["field"] == field
    assert _items() == []
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_a_body_over_the_size_limit_is_refused_before_it_is_parsed(client, token_for) -> None:
    padding = "x" * (contracts.MAX_REQUEST_BODY_BYTES + 1)
    response = _post(client, "/jobs", token_for(OWNER), json.dumps({"prompt": padding, "images": []}))
    assert response.status_code == 400
    assert response.json_body["details"][0]["field"] == "body"
    assert f"at most {contracts.MAX_REQUEST_BODY_BYTES:,}" in response.json_body["message"]
    assert _items() == []


def test_a_text_body_with_a_lone_surrogate_is_refused_where_aws_hands_over_text() -> None:
    """On AWS the body arrives as a string and Chalice encodes it as UTF-8: a lone surrogate fails
    right there, before any JSON parsing, and must still be a 400, not a crash."""
    from chalice.app import Request

    from chalicelib.core.errors import BadRequest
    from chalicelib.core.validation import request_json

    event = {
        "multiValueQueryStringParameters": None,
        "headers": {"content-type": "application/json"},
        "pathParameters": None,
        "requestContext": {"httpMethod": "POST", "resourcePath": "/jobs"},
        "body": '{"prompt": "\ud800"}',
        "isBase64Encoded": False,
        "stageVariables": None,
    }
    with pytest.raises(BadRequest, match="not valid Unicode at character 12"):
        request_json(Request(event))
