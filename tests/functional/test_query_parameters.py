"""Query parameters that are not what a route takes are a 400 naming the parameter, never a 500
and never quietly read as something else (issue #26: `?limit=²` and a 5,000-digit limit answered
500; the schema fuzzer, tests/functional/test_fuzz_api.py, found the rest)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.test import Client
from harness import upload

import app as backdrop_app

OWNER = "owner-q"
HOSTILE_NUMBERS = [
    "%C2%B2",  # "²": str.isdigit() says yes, int() says no (it was a 500)
    "9" * 5000,  # past int()'s 4,300 digits (it was a 500)
    "%EF%BC%91",  # "１", a full-width digit: int() reads it as 1
    "1_0",  # int() reads 10
    "%201",  # " 1": int() strips the space
    "-1",
    "1.0",
    "",
]


@pytest.fixture
def client(resources: dict[str, Any], rekognition: Any) -> Iterator[Client]:
    with Client(backdrop_app.app, stage_name="dev") as test_client:
        yield test_client


@pytest.fixture
def job_id(client: Client, token_for: Any, photo: Any) -> str:
    ref = upload(OWNER, "a.png", photo(), "png")
    body = {"prompt": "a marble floor", "images": [{"imageRef": ref, "labels": ["Person"]}]}
    answer = client.http.post("/jobs", headers=_h(token_for(OWNER)), body=json.dumps(body))
    assert answer.status_code == 202, answer.body
    return str(answer.json_body["jobId"])


def _h(token: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


def _refused(answer: Any, name: str) -> None:
    assert answer.status_code == 400, (answer.status_code, answer.body[:300])
    body = answer.json_body
    assert body["code"] == "BAD_REQUEST" and body["message"].startswith(f"{name} must be"), body
    assert [d["field"] for d in body["details"]] == [name], body


@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
def test_a_job_pages_limit_that_is_not_ascii_digits_is_a_400_naming_limit(client, token_for, job_id, value) -> None:
    _refused(client.http.get(f"/jobs/{job_id}?limit={value}", headers=_h(token_for(OWNER))), "limit")


@pytest.mark.parametrize("value", [*HOSTILE_NUMBERS, "0", "101", "100000"])
def test_the_job_lists_limit_outside_1_to_100_or_not_ascii_digits_is_a_400_naming_limit(
    client, token_for, value
) -> None:
    _refused(client.http.get(f"/jobs?limit={value}", headers=_h(token_for(OWNER))), "limit")


def test_the_limits_the_routes_take_are_still_taken(client, token_for, job_id) -> None:
    headers = _h(token_for(OWNER))
    summary = client.http.get(f"/jobs/{job_id}?limit=0", headers=headers)
    assert summary.status_code == 200 and not summary.json_body.get("images"), summary.body
    assert len(client.http.get(f"/jobs/{job_id}?limit=100", headers=headers).json_body["images"]) <= 100
    assert [j["jobId"] for j in client.http.get("/jobs?limit=1", headers=headers).json_body["jobs"]] == [job_id]
    assert client.http.get("/jobs?limit=100", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("query", "name"),
    [("status=succeeded", "status"), ("status=", "status"), ("verdict=%C2%B2", "verdict"), ("verdict=pass", "verdict")],
)
def test_an_unknown_status_or_verdict_is_a_400_naming_it(client, token_for, job_id, query, name) -> None:
    _refused(client.http.get(f"/jobs/{job_id}?{query}", headers=_h(token_for(OWNER))), name)


@pytest.mark.parametrize(
    ("method", "path", "name"), [("GET", "report?format=XML", "format"), ("DELETE", "?originals=yes", "originals")]
)
def test_report_format_and_delete_originals_are_words_and_a_400_names_them(
    client, token_for, job_id, method, path, name
) -> None:
    s3 = boto3.client("s3")
    before = s3.list_objects_v2(Bucket="backdrop-test-bucket").get("KeyCount")
    url = f"/jobs/{job_id}/{path}" if not path.startswith("?") else f"/jobs/{job_id}{path}"
    _refused(client.http.request(method, url, headers=_h(token_for(OWNER))), name)
    assert s3.list_objects_v2(Bucket="backdrop-test-bucket").get("KeyCount") == before
