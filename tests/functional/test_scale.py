"""Jobs at scale through the HTTP API on moto: paged job views that stay small, idempotent
submission, labels for many refs, and bad input at scale (each a clear 4xx, nothing written)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest
from builders import BUCKET, TABLE, make_photo
from chalice.test import Client

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.jobs.labels import DETECT_WORKERS, LabelService
from chalicelib.store.jobs import CANCELLED_CAUSE, JobStore, NewImage


def _headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json", **extra}


PHOTO = make_photo(120, 100)


def _upload(owner: str, data: bytes = PHOTO, upload_id: str | None = None, ext: str = "png") -> str:
    ref = contracts.image_ref_of(upload_id or contracts.new_opaque_id(), contracts.new_opaque_id(), ext)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=data)
    return ref


def _job_body(refs: list[str], **extra: Any) -> dict[str, Any]:
    body = {
        "prompt": "a marble studio floor",
        "images": [{"imageRef": r, "name": f"img{i}.png", "labels": ["Person"]} for i, r in enumerate(refs)],
    }
    return {**body, **extra}


def _post(client: Client, path: str, token: str, body: Any, **headers: str) -> Any:
    return client.http.post(path, headers=_headers(token, **headers), body=json.dumps(body))


def _items(prefix: str = "JOB#") -> int:
    """Job and image items in the table (labels caches and idempotency records are not jobs)."""
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    return sum(1 for item in items if item["pk"]["S"].startswith(prefix))


def _put_job(store: JobStore, owner: str, count: int, *, suffix: str = "0123456789ab", **image: Any) -> str:
    job_id = f"20261124T120000Z-{suffix}"
    images = []
    for index in range(count):
        ref = contracts.image_ref_of("a" * 32, f"{index:032x}", "jpg")
        images.append(
            NewImage(
                image_id=f"{index:032x}",
                image_ref=ref,
                key=contracts.upload_key(owner, ref),
                name=f"IMG_{index:05d}.jpg",
                labels=image.get("labels", ("Person", "Clothing")),
                boxes=((0.1, 0.2, 0.3, 0.6),),
                prompt=image.get("prompt"),
            )
        )
    store.put_job(job_id=job_id, owner=owner, model="stability-inpaint", settings={"prompt": "x"}, images=images)
    return job_id


def _walk(client: Client, token: str, job_id: str, query: str = "") -> tuple[list[dict[str, Any]], list[int]]:
    """Every image of a job through GET /jobs/{id}, page by page; also each answer's size."""
    images: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(1_000):
        params = query + (f"&cursor={cursor}" if cursor else "")
        response = client.http.get(f"/jobs/{job_id}?{params.lstrip('&')}", headers=_headers(token))
        assert response.status_code == 200, response.body
        sizes.append(len(response.body))
        images += response.json_body["images"]
        cursor = response.json_body["nextCursor"]
        if cursor is None:
            return images, sizes
    raise AssertionError("the pages never ended")


# ---------------------------------------------------------------------------------- job view


def test_job_view_pages_images_with_links_for_that_page_only(client: Client, token_for, store) -> None:
    token = token_for("owner-1")
    job_id = _put_job(store, "owner-1", 7)
    first = client.http.get(f"/jobs/{job_id}?limit=3", headers=_headers(token)).json_body
    assert first["counts"] == {"PENDING": 7, "RUNNING": 0, "SUCCEEDED": 0, "FAILED": 0, "CANCELLED": 0}
    assert len(first["images"]) == 3 and first["nextCursor"]
    assert all(contracts.upload_key("owner-1", i["imageRef"]) in i["originalUrl"] for i in first["images"])
    images, _ = _walk(client, token, job_id, "limit=3")
    assert [i["imageId"] for i in images] == [f"{n:032x}" for n in range(7)]

    summary = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token)).json_body
    assert summary["counts"]["PENDING"] == 7 and "images" not in summary and "originalUrl" not in json.dumps(summary)
    default = client.http.get(f"/jobs/{job_id}", headers=_headers(token)).json_body
    assert len(default["images"]) == 7 and default["nextCursor"] is None


def test_job_view_filters_by_status_and_counts_stay_live(client: Client, token_for, store) -> None:
    token = token_for("owner-1")
    job_id = _put_job(store, "owner-1", 6)
    for index in (1, 4):
        store.set_image_status(job_id, f"{index:032x}", ImageStatus.FAILED, error_code="MODEL_ERROR", cause="boom")
    failed, _ = _walk(client, token, job_id, "limit=1&status=FAILED")
    assert [i["imageId"] for i in failed] == [f"{1:032x}", f"{4:032x}"]
    assert {i["errorCode"] for i in failed} == {"MODEL_ERROR"}
    listed = client.http.get("/jobs", headers=_headers(token)).json_body["jobs"][0]
    assert listed["counts"] == {"PENDING": 4, "RUNNING": 0, "SUCCEEDED": 0, "FAILED": 2, "CANCELLED": 0}
    # a cancel: the images not finished end CANCELLED, counted live and listed by that status
    store.set_image_status(job_id, f"{2:032x}", ImageStatus.SUCCEEDED, outputs=[])
    assert store.cancel_job(job_id)
    store.close_unfinished(job_id, CANCELLED_CAUSE, code=None, status=ImageStatus.CANCELLED)
    view = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token)).json_body
    assert view["status"] == "CANCELLED"
    assert view["counts"] == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 2, "CANCELLED": 3}
    cancelled, _ = _walk(client, token, job_id, "limit=2&status=CANCELLED")
    assert [i["imageId"] for i in cancelled] == [f"{n:032x}" for n in (0, 3, 5)]
    assert {i["cause"] for i in cancelled} == {CANCELLED_CAUSE}


def test_job_view_filters_by_verdict_and_counts_verdicts(client: Client, token_for, store) -> None:
    token = token_for("owner-1")
    job_id = _put_job(store, "owner-1", 5)
    for index, verdict in ((0, "PASS"), (2, "FAIL"), (3, "WARN")):
        store.set_image_status(job_id, f"{index:032x}", ImageStatus.SUCCEEDED, verdict=verdict, model_calls=2)
    failing, _ = _walk(client, token, job_id, "limit=1&verdict=FAIL")
    assert [(i["imageId"], i["verdict"]) for i in failing] == [(f"{2:032x}", "FAIL")]
    summary = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token)).json_body
    assert summary["verdicts"] == {"FAIL": 1, "WARN": 1, "PASS": 1, "SKIPPED": 0}


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limit=101", "limit must be"),
        ("limit=-1", "limit must be"),
        ("limit=ten", "limit must be"),
        ("status=DONE", "status must be"),
        ("verdict=MAYBE", "verdict must be"),
    ],
)
def test_bad_page_parameters_are_a_400_naming_them(client: Client, token_for, store, query: str, says: str) -> None:
    job_id = _put_job(store, "owner-1", 2)
    response = client.http.get(f"/jobs/{job_id}?{query}", headers=_headers(token_for("owner-1")))
    assert response.status_code == 400 and response.json_body["code"] == "BAD_REQUEST"
    assert says in response.json_body["message"]


def test_a_cursor_from_another_job_or_user_is_a_400(client: Client, token_for, store) -> None:
    job_a = _put_job(store, "owner-1", 5, suffix="aaaaaaaaaaaa")
    job_b = _put_job(store, "owner-1", 5, suffix="bbbbbbbbbbbb")
    job_c = _put_job(store, "owner-2", 5, suffix="cccccccccccc")
    cursor = client.http.get(f"/jobs/{job_a}?limit=2", headers=_headers(token_for("owner-1"))).json_body["nextCursor"]
    jobs_cursor = client.http.get("/jobs?limit=1", headers=_headers(token_for("owner-1"))).json_body["nextCursor"]
    for owner, job_id, bad in (
        ("owner-1", job_b, cursor),  # another job's
        ("owner-2", job_c, cursor),  # another user's
        ("owner-1", job_a, jobs_cursor),  # a job-list cursor
        ("owner-1", job_a, "bm90IGEgY3Vyc29y"),
    ):
        response = client.http.get(f"/jobs/{job_id}?limit=2&cursor={bad}", headers=_headers(token_for(owner)))
        assert response.status_code == 400, (owner, job_id, response.body)
        assert "cursor is not valid" in response.json_body["message"]
    # and another user's job stays a 404 whatever the query
    assert client.http.get(f"/jobs/{job_a}?limit=2", headers=_headers(token_for("owner-2"))).status_code == 404


@pytest.mark.slow  # ~25-30 s of CPU: the scale run (make test), not make test-fast
def test_a_page_of_large_images_is_cut_before_1_mb_and_nothing_is_skipped(client: Client, token_for, store) -> None:
    """Images at their limits (50 labels of 100 characters, a 10,000-character prompt, five
    variants, a 2,000-character cause) are ~30 KB each: 100 of them would be 3 MB."""
    token = token_for("owner-1")
    labels = tuple(f"{n:02d}" + "L" * 98 for n in range(contracts.MAX_LABELS_PER_IMAGE))
    job_id = _put_job(store, "owner-1", 120, labels=labels, prompt="p" * 10_000)
    outputs = [{"key": f"results/owner-1/{job_id}/x-{v}.png", "variant": v, "seed": v} for v in range(1, 6)]
    for index in range(0, 120, 2):
        store.set_image_status(job_id, f"{index:032x}", ImageStatus.SUCCEEDED, outputs=outputs)
    images, sizes = _walk(client, token, job_id, "limit=100")
    assert max(sizes) <= contracts.MAX_RESPONSE_BYTES, sizes
    assert len(sizes) > 2  # cut, not one page of 100 and one of 20
    assert [i["imageId"] for i in images] == [f"{n:032x}" for n in range(120)]


class _CountingTable:
    """The jobs table, counting the items every query reads."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.items_read = 0

    def query(self, **kwargs: Any) -> Any:
        page = self._table.query(**kwargs)
        self.items_read += len(page.get("Items", []))
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


@pytest.mark.slow
def test_a_10000_image_job_view_stays_small_and_reads_one_page(client: Client, token_for, store, monkeypatch) -> None:
    token = token_for("owner-1")
    job_id = _put_job(store, "owner-1", contracts.MAX_IMAGES_PER_JOB)
    counting = _CountingTable(store.table)
    monkeypatch.setattr(backdrop_app, "_store", lambda: JobStore(counting))
    signed: list[str] = []
    s3 = backdrop_app.aws.client("s3")
    real_presign = s3.generate_presigned_url

    def presign(*args: Any, **kwargs: Any) -> str:
        signed.append(kwargs["Params"]["Key"])
        return real_presign(*args, **kwargs)

    monkeypatch.setattr(s3, "generate_presigned_url", presign)
    for query, page in (("", contracts.DEFAULT_IMAGES_PAGE_SIZE), ("?limit=100", 100)):
        counting.items_read, signed[:] = 0, []
        response = client.http.get(f"/jobs/{job_id}{query}", headers=_headers(token))
        assert response.status_code == 200
        body = response.json_body
        assert body["counts"]["PENDING"] == contracts.MAX_IMAGES_PER_JOB and body["imageCount"] == 10_000
        assert len(body["images"]) == page and body["nextCursor"]
        assert len(response.body) < 100_000  # ~50-100 KB of a 1 MB budget
        assert counting.items_read <= page + 1  # one page (and one more to know there is a next)
        assert len(signed) == page  # links for that page only
    counting.items_read = 0
    summary = client.http.get(f"/jobs/{job_id}?limit=0", headers=_headers(token))
    assert counting.items_read == 0 and len(summary.body) < 2_000


# ---------------------------------------------------------------------------------- idempotency


def test_the_same_idempotency_key_and_body_answer_the_same_job(client: Client, token_for) -> None:
    token = token_for("owner-1")
    body = _job_body([_upload("owner-1"), _upload("owner-1")])
    first = _post(client, "/jobs", token, body, **{"Idempotency-Key": "retry-after-504"})
    again = _post(client, "/jobs", token, body, **{"Idempotency-Key": "retry-after-504"})
    assert first.status_code == again.status_code == 202, (first.body, again.body)
    assert again.json_body == first.json_body
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    # one job item (its two image items are written by the starter, from one records file): no second job
    assert _items() == 1 and _items(f"JOB#{first.json_body['jobId']}") == 1
    # the same key from another user is that user's own key
    other_ref = _upload("owner-2")
    other = _post(
        client, "/jobs", token_for("owner-2"), _job_body([other_ref]), **{"Idempotency-Key": "retry-after-504"}
    )
    assert other.status_code == 202 and other.json_body["jobId"] != first.json_body["jobId"]


def test_a_reused_idempotency_key_with_another_body_is_a_409_and_creates_nothing(client: Client, token_for) -> None:
    token = token_for("owner-1")
    refs = [_upload("owner-1"), _upload("owner-1")]
    assert _post(client, "/jobs", token, _job_body(refs[:1]), **{"Idempotency-Key": "k-1"}).status_code == 202
    reused = _post(client, "/jobs", token, _job_body(refs), **{"Idempotency-Key": "k-1"})
    assert reused.status_code == 409 and reused.json_body["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "different request body" in reused.json_body["message"]
    assert _items() == 1  # the first job only (its image is written by the starter)


def test_a_refused_request_does_not_hold_its_idempotency_key(client: Client, token_for) -> None:
    token = token_for("owner-1")
    ref = _upload("owner-1")
    refused = _post(client, "/jobs", token, _job_body([ref], variants=99), **{"Idempotency-Key": "k-2"})
    assert refused.status_code == 400 and _items() == 0
    # fixed body, same key: accepted (the key stored nothing for the refused attempt)
    accepted = _post(client, "/jobs", token, _job_body([ref]), **{"Idempotency-Key": "k-2"})
    assert accepted.status_code == 202, accepted.body


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve-key", "tab\there"])
def test_an_unusable_idempotency_key_is_a_400(client: Client, token_for, key: str) -> None:
    response = _post(client, "/jobs", token_for("owner-1"), _job_body([_upload("owner-1")]), **{"Idempotency-Key": key})
    assert response.status_code == 400 and "Idempotency-Key" in response.json_body["message"]
    assert _items() == 0


def test_a_repeat_while_the_first_request_runs_is_a_409_to_retry(client: Client, token_for, monkeypatch) -> None:
    """The client's own retry after a gateway timeout, while the first attempt is still writing."""
    from chalicelib.jobs import service as jobs

    token = token_for("owner-1")
    body = _job_body([_upload("owner-1")])
    entered, release = threading.Event(), threading.Event()
    real_submit = jobs.JobService.submit

    def slow_submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(10)
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(jobs.JobService, "submit", slow_submit)
    answers: list[Any] = []
    first = threading.Thread(
        target=lambda: answers.append(_post(client, "/jobs", token, body, **{"Idempotency-Key": "k-3"}))
    )
    first.start()
    assert entered.wait(10)
    monkeypatch.setattr(jobs.JobService, "submit", real_submit)
    during = _post(client, "/jobs", token, body, **{"Idempotency-Key": "k-3"})
    release.set()
    first.join(10)
    assert during.status_code == 409 and during.json_body["code"] == "REQUEST_IN_PROGRESS"
    assert answers[0].status_code == 202 and _items() == 1  # one job (its image is the starter's to write)


# ---------------------------------------------------------------------------------- bad input at scale


def test_11000_images_are_refused_before_anything_is_read_or_written(client: Client, token_for, monkeypatch) -> None:
    s3 = backdrop_app.aws.client("s3")
    monkeypatch.setattr(s3, "get_paginator", lambda *_: pytest.fail("the uploads were listed for a refused job"))
    refs = [contracts.image_ref_of("a" * 32, f"{i:032x}", "png") for i in range(11_000)]
    response = _post(client, "/jobs", token_for("owner-1"), _job_body(refs), **{"Idempotency-Key": "big"})
    assert response.status_code == 400 and response.json_body["code"] == "VALIDATION_FAILED"
    assert "1 to 10,000 images, not 11,000" in response.json_body["message"]
    assert boto3.client("dynamodb").scan(TableName=TABLE, Select="COUNT")["Count"] == 0


def test_a_10_mb_body_is_a_400_and_nothing_is_written(client: Client, token_for) -> None:
    body = _job_body([_upload("owner-1")], prompt="p" * (10 * 1024 * 1024))
    response = _post(client, "/jobs", token_for("owner-1"), body, **{"Idempotency-Key": "huge"})
    assert response.status_code == 400 and response.json_body["details"][0]["field"] == "body"
    assert f"at most {contracts.MAX_REQUEST_BODY_BYTES:,}" in response.json_body["message"]
    # no job, and no idempotency record holding the key either
    assert boto3.client("dynamodb").scan(TableName=TABLE, Select="COUNT")["Count"] == 0


# ---------------------------------------------------------------------------------- labels


class _SlowRekognition:
    """DetectLabels that takes a while, recording how many calls ran at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self.calls = 0
        self._lock = threading.Lock()

    def detect_labels(self, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        return {"Labels": [{"Name": "Person", "Confidence": 99.0, "Instances": [], "Parents": []}]}


@pytest.mark.slow  # ~25-30 s of CPU: the scale run (make test), not make test-fast
def test_labels_of_1000_refs_are_detected_in_parallel_in_one_request(client: Client, token_for, monkeypatch) -> None:
    from chalicelib.jobs import labels

    monkeypatch.setattr(labels, "DETECT_BUDGET_SECONDS", 300.0)  # this shared machine may be slow; AWS is not
    slow = _SlowRekognition(0.01)
    real_client = backdrop_app.aws.client

    def clients(service: str) -> Any:
        return slow if service == "rekognition" else real_client(service)

    clients.cache_clear = real_client.cache_clear  # type: ignore[attr-defined]
    monkeypatch.setattr(backdrop_app.aws, "client", clients)
    upload_id = contracts.new_opaque_id()
    refs = [_upload("owner-1", upload_id=upload_id) for _ in range(contracts.MAX_LABEL_REFS_PER_REQUEST)]
    response = _post(client, "/labels", token_for("owner-1"), {"imageRefs": refs})
    assert response.status_code == 200, response.body
    assert response.json_body["pending"] == [] and set(response.json_body["labels"]) == set(refs)
    assert slow.calls == len(refs) and 1 < slow.most <= DETECT_WORKERS
    too_many = _post(client, "/labels", token_for("owner-1"), {"imageRefs": refs + [refs[0]] * 1})
    assert too_many.status_code == 400 and "1 to 1,000" in too_many.json_body["message"]


def test_labels_not_detected_in_time_are_pending_and_answered_later(resources: dict[str, Any], store) -> None:
    slow = _SlowRekognition(0.2)
    service = LabelService(slow, store, boto3.client("s3"), BUCKET)
    keys = [contracts.upload_key("owner-1", _upload("owner-1")) for _ in range(40)]
    found, pending = service.labels_many(keys, budget_s=0.05)
    assert pending and len(found) + len(pending) == len(keys)
    deadline = time.monotonic() + 10
    while pending and time.monotonic() < deadline:  # each ask detects (and caches) more of them
        found, pending = service.labels_many(keys, budget_s=1.0)
    assert not pending and set(found) == set(keys)


def test_labels_leave_no_detection_running_after_the_answer(resources: dict[str, Any], store) -> None:
    """Lambda freezes the environment once the handler returns: POST /labels must not answer while
    detections it started are still running (they would stall, or run inside a later request)."""
    slow = _SlowRekognition(0.3)
    service = LabelService(slow, store, boto3.client("s3"), BUCKET)
    keys = [contracts.upload_key("owner-1", _upload("owner-1")) for _ in range(3 * DETECT_WORKERS)]
    found, pending = service.labels_many(keys, budget_s=0.05)
    # nothing of this request runs on: no pool thread alive, no call in flight
    assert [t.name for t in threading.enumerate() if t.name.startswith("labels")] == []
    assert slow.running == 0
    calls = slow.calls
    time.sleep(0.5)
    assert slow.calls == calls  # no detection started after the answer either
    # what had started was finished and answered; what had not is pending, never half-done
    assert len(found) == calls and len(pending) == len(keys) - calls and pending
    assert all(store.cached_labels(key) is not None for key in found)
    assert all(store.cached_labels(key) is None for key in pending)
