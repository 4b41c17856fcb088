"""The API client against a scripted HTTP session: what it asks for and how it retries."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from chalicelib.core import contracts
from frontend.api_client import ApiError, BackdropClient


class ScriptedSession:
    """Answers requests from a function of (method, path, params, body); records each request."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, json: Any = None, params: Any = None, headers: Any = None, **_: Any):
        path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
        self.sent.append({"method": method, "path": "/" + path, "params": params, "body": json, "headers": headers})
        status, body = self.answer(method, "/" + path, params or {}, json)
        response = requests.Response()
        response.status_code = status
        response._content = __import__("json").dumps(body).encode()
        return response


def _client(answer: Any) -> tuple[BackdropClient, ScriptedSession]:
    session = ScriptedSession(answer)
    return BackdropClient("http://127.0.0.1:1", lambda: "token", session=session, sleep=lambda _: None), session


def test_labels_are_asked_1000_at_a_time_and_pending_ones_again() -> None:
    asked_twice: set[str] = set()

    def answer(method: str, path: str, params: Any, body: Any) -> tuple[int, Any]:
        refs = body["imageRefs"]
        assert len(refs) <= contracts.MAX_LABEL_REFS_PER_REQUEST
        # every tenth ref is pending the first time it is asked about
        pending = [r for r in refs if int(r) % 10 == 0 and r not in asked_twice]
        asked_twice.update(pending)
        return 200, {"labels": {r: [{"name": r}] for r in refs if r not in pending}, "pending": pending}

    client, session = _client(answer)
    refs = [str(n) for n in range(2_500)]
    labels = client.labels(refs)
    assert set(labels) == set(refs)
    sizes = [len(s["body"]["imageRefs"]) for s in session.sent]
    assert sizes == [1000, 1000, 500, 250]  # three chunks, then the pending quarter-thousand


def test_labels_that_never_come_are_a_clear_error_not_a_hang() -> None:
    client, _ = _client(lambda *_: (200, {"labels": {}, "pending": ["a"]}))
    with pytest.raises(ApiError, match="still pending"):
        client.labels(["a"], max_rounds=3)


def test_submit_keeps_one_idempotency_key_across_its_retries() -> None:
    answers = iter([(504, {"message": "Endpoint request timed out"}), (409, {"code": "REQUEST_IN_PROGRESS"})])

    def answer(method: str, path: str, params: Any, body: Any) -> tuple[int, Any]:
        return next(answers, (202, {"jobId": "20260101T000000Z-0123456789ab"}))

    client, session = _client(answer)
    assert client.submit({"images": []})["jobId"] == "20260101T000000Z-0123456789ab"
    keys = {s["headers"]["Idempotency-Key"] for s in session.sent}
    assert len(session.sent) == 3 and len(keys) == 1
    client.submit({"images": []})
    assert session.sent[-1]["headers"]["Idempotency-Key"] not in keys  # a new submission, a new key


def test_a_reused_key_is_not_retried() -> None:
    client, session = _client(lambda *_: (409, {"code": "IDEMPOTENCY_KEY_REUSED", "message": "used before"}))
    with pytest.raises(ApiError) as raised:
        client.submit({"images": []}, idempotency_key="k")
    assert raised.value.code == "IDEMPOTENCY_KEY_REUSED" and len(session.sent) == 1


def test_wait_polls_the_summary_and_pages_are_walked_once() -> None:
    statuses = iter(["RUNNING", "RUNNING", "COMPLETED"])

    def answer(method: str, path: str, params: Any, body: Any) -> tuple[int, Any]:
        if params.get("limit") == 0:
            return 200, {"jobId": "j", "status": next(statuses, "COMPLETED"), "counts": {}}
        start = int(params.get("cursor") or 0)
        images = [{"imageId": str(n)} for n in range(start, min(start + params["limit"], 250))]
        more = start + params["limit"] < 250
        return 200, {
            "jobId": "j",
            "status": "COMPLETED",
            "images": images,
            "nextCursor": str(start + 100) if more else None,
        }

    client, session = _client(answer)
    assert client.wait("j", poll_s=0)["status"] == "COMPLETED"
    assert [s["params"] for s in session.sent] == [{"limit": 0}] * 3
    view = client.job_with_images("j")
    assert [i["imageId"] for i in view["images"]] == [str(n) for n in range(250)]
    assert [s["params"].get("cursor") for s in session.sent[4:]] == [None, "100", "200"]
    assert json.dumps(view)  # plain data
