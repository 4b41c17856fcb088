"""The job store on moto: transitions, live counts, pages and cursors, cached labels."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core import contracts
from chalicelib.core.contracts import ErrorCode, ImageStatus, JobStatus
from chalicelib.core.errors import BadRequest, StorageError
from chalicelib.store.jobs import MAX_IMAGES_PAGE_SIZE, UNFINISHED_CAUSE, JobStore, NewImage

OWNER = "owner-1"


def _images(count: int) -> list[NewImage]:
    images = []
    for index in range(count):
        image_id = f"{index:032x}"
        ref = contracts.image_ref_of("a" * 32, image_id, "png")
        images.append(
            NewImage(
                image_id=image_id,
                image_ref=ref,
                key=contracts.upload_key(OWNER, ref),
                name=f"img{index}.png",
                labels=("Person",),
                boxes=((0.1, 0.2, 0.3, 0.6),),
            )
        )
    return images


def _job(store: JobStore, count: int = 3, *, owner: str = OWNER, suffix: str = "0123456789ab") -> str:
    job_id = f"20261124T120000Z-{suffix}"
    store.put_job(
        job_id=job_id,
        owner=owner,
        model="stability-inpaint",
        settings={"prompt": "a beach", "cfgScale": 7.5, "seed": 3},
        images=_images(count),
    )
    return job_id


def _counts(store: JobStore, job_id: str) -> dict[str, int]:
    return store.get_job(job_id)["counts"]


def _image(store: JobStore, job_id: str, index: int) -> dict[str, Any]:
    return store.images(job_id)[index]


# ---------------------------------------------------------------------------------- items


def test_a_job_reads_back_as_written_with_plain_numbers(store: JobStore) -> None:
    job_id = _job(store, 2)
    job = store.get_job(job_id)
    assert (job["owner"], job["status"], job["imageCount"]) == (OWNER, "SUBMITTED", 2)
    assert job["settings"] == {"prompt": "a beach", "cfgScale": 7.5, "seed": 3}
    assert isinstance(job["settings"]["seed"], int) and isinstance(job["settings"]["cfgScale"], float)
    assert job["counts"] == {"PENDING": 2, "RUNNING": 0, "SUCCEEDED": 0, "FAILED": 0, "CANCELLED": 0}
    images = store.images(job_id)
    assert [i["name"] for i in images] == ["img0.png", "img1.png"]
    assert images[0]["boxes"] == [[0.1, 0.2, 0.3, 0.6]] and images[0]["status"] == "PENDING"
    assert store.get_job("20261124T120000Z-ffffffffffff") is None
    assert store.get_job("../JOB") is None  # not a job id: not even asked


def test_a_job_id_is_written_once(store: JobStore) -> None:
    _job(store, 1)
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        _job(store, 1)


# ---------------------------------------------------------------------------------- job status


def test_job_runs_only_from_submitted_and_a_final_status_is_kept(store: JobStore) -> None:
    job_id = _job(store)
    assert store.mark_running(job_id, "arn:1") is True
    assert store.mark_running(job_id, "arn:2") is False  # a repeated stream record
    assert store.get_job(job_id)["executionArn"] == "arn:1"
    store.finish_job(job_id, JobStatus.COMPLETED, {"SUCCEEDED": 3}, {"json": "r.json"}, "2026-11-24T12:05:00.000Z")
    assert store.mark_running(job_id, "arn:3") is False
    assert store.fail_job(job_id, "late") is False
    job = store.get_job(job_id)
    assert (job["status"], job["finishedAt"], job.get("cause")) == ("COMPLETED", "2026-11-24T12:05:00.000Z", None)


def test_a_job_that_cannot_start_fails_with_its_cause(store: JobStore) -> None:
    job_id = _job(store)
    assert store.fail_job(job_id, "the job has no images") is True
    job = store.get_job(job_id)
    assert (job["status"], job["cause"]) == ("FAILED", "the job has no images")
    assert store.fail_job("20261124T120000Z-ffffffffffff", "no such job") is False  # never creates a job


def test_notification_failure_is_recorded_on_the_job(store: JobStore) -> None:
    job_id = _job(store)
    store.record_notification_failure(job_id, "SNS.AuthorizationErrorException", "x" * 5000)
    notification = store.get_job(job_id)["notification"]
    assert notification["status"] == "FAILED" and notification["error"] == "SNS.AuthorizationErrorException"
    assert len(notification["cause"]) == 2000


# ---------------------------------------------------------------------------------- image status


def test_counts_follow_each_image_live(store: JobStore) -> None:
    job_id = _job(store, 3)
    ids = [i["imageId"] for i in store.images(job_id)]
    assert store.start_image(job_id, ids[0]) and store.start_image(job_id, ids[1])
    assert _counts(store, job_id) == {"PENDING": 1, "RUNNING": 2, "SUCCEEDED": 0, "FAILED": 0, "CANCELLED": 0}
    outputs = [{"key": "results/o/j/x-1.png", "variant": 1, "seed": 3}]
    assert store.set_image_status(job_id, ids[0], ImageStatus.SUCCEEDED, outputs=outputs, width=640, height=400)
    assert store.set_image_status(job_id, ids[2], ImageStatus.FAILED, error_code=ErrorCode.IMAGE_INVALID, cause="x")
    assert _counts(store, job_id) == {"PENDING": 0, "RUNNING": 1, "SUCCEEDED": 1, "FAILED": 1, "CANCELLED": 0}
    done = _image(store, job_id, 0)
    assert (done["status"], done["outputs"], done["width"]) == ("SUCCEEDED", outputs, 640)
    assert "errorCode" not in done and done["finishedAt"] and done["startedAt"]
    failed = _image(store, job_id, 2)
    assert (failed["status"], failed["errorCode"], failed["cause"]) == ("FAILED", "IMAGE_INVALID", "x")


def test_a_repeated_step_neither_changes_a_final_status_nor_counts_twice(store: JobStore) -> None:
    job_id = _job(store, 2)
    first, second = (i["imageId"] for i in store.images(job_id))
    store.start_image(job_id, first)
    assert store.start_image(job_id, first) is True  # a retried prepare: still RUNNING, counted once
    assert _counts(store, job_id)["RUNNING"] == 1
    assert store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, outputs=[{"key": "k", "variant": 1}])
    for _ in range(3):
        assert (
            store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, outputs=[{"key": "k2", "variant": 1}]) is False
        )
    assert store.set_image_status(job_id, first, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="late") is False
    assert store.start_image(job_id, first) is False
    assert store.set_image_status(job_id, second, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="no")
    assert store.set_image_status(job_id, second, ImageStatus.RUNNING) is False
    assert store.set_image_status(job_id, second, ImageStatus.SUCCEEDED) is False
    assert _counts(store, job_id) == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 1, "CANCELLED": 0}
    kept = _image(store, job_id, 0)
    assert (kept["status"], kept["outputs"][0]["key"]) == ("SUCCEEDED", "k")
    assert _image(store, job_id, 1)["status"] == "FAILED"


def test_the_condition_holds_when_another_writer_finished_the_image_meanwhile(store: JobStore, monkeypatch) -> None:
    job_id = _job(store, 1)
    image_id = store.images(job_id)[0]["imageId"]
    store.start_image(job_id, image_id)
    stale = _image(store, job_id, 0)  # RUNNING, as this writer saw it
    store.set_image_status(job_id, image_id, ImageStatus.SUCCEEDED, outputs=[{"key": "k", "variant": 1}])
    real_read = store._image
    reads: list[str] = []

    def first_read_is_stale(job: str, image: str) -> dict[str, Any] | None:
        reads.append(image)
        return stale if len(reads) == 1 else real_read(job, image)

    monkeypatch.setattr(store, "_image", first_read_is_stale)
    pauses: list[float] = []
    monkeypatch.setattr(store, "sleep", pauses.append)
    # the write itself is refused by its condition, then a fresh read sees the final status: at
    # once (the image moved; only contention, which says nothing about it, waits to retry)
    assert store.set_image_status(job_id, image_id, ImageStatus.FAILED, error_code="MODEL_ERROR") is False
    assert len(reads) == 2 and pauses == []
    assert _counts(store, job_id) == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 0}
    assert _image(store, job_id, 0)["status"] == "SUCCEEDED"


def test_an_image_that_is_not_in_the_job_is_never_created(store: JobStore) -> None:
    job_id = _job(store, 1)
    with pytest.raises(StorageError, match="no image"):
        store.set_image_status(job_id, "f" * 32, ImageStatus.FAILED, error_code="MODEL_ERROR")
    assert len(store.images(job_id)) == 1
    with pytest.raises(ValueError, match="PENDING"):
        store.set_image_status(job_id, store.images(job_id)[0]["imageId"], ImageStatus.PENDING)


def test_close_unfinished_fails_only_open_images_and_counts_them(store: JobStore) -> None:
    job_id = _job(store, 3)
    ids = [i["imageId"] for i in store.images(job_id)]
    store.start_image(job_id, ids[1])
    store.set_image_status(job_id, ids[2], ImageStatus.SUCCEEDED, outputs=[{"key": "k", "variant": 1}])
    images = store.close_unfinished(job_id)
    assert [i["status"] for i in images] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert {i["cause"] for i in images[:2]} == {UNFINISHED_CAUSE}
    assert {i["errorCode"] for i in images[:2]} == {"INTERNAL_ERROR"}
    assert _counts(store, job_id) == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 2, "CANCELLED": 0}
    store.close_unfinished(job_id)  # again: nothing left to close, nothing counted twice
    assert _counts(store, job_id) == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 2, "CANCELLED": 0}


# ---------------------------------------------------------------------------------- pages


def test_images_page_through_a_large_job_without_gaps(store: JobStore) -> None:
    job_id = _job(store, 250)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.images_page(OWNER, job_id, limit=MAX_IMAGES_PAGE_SIZE, cursor=cursor)
        pages += 1
        assert len(page.items) <= MAX_IMAGES_PAGE_SIZE
        seen += [i["imageId"] for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3 and seen == [i.image_id for i in _images(250)]
    # a page never exceeds the cap, whatever is asked
    assert len(store.images_page(OWNER, job_id, limit=10_000).items) == MAX_IMAGES_PAGE_SIZE
    assert len(store.images_page(OWNER, job_id, limit=0).items) == 1


def test_images_page_filters_by_status_across_pages(store: JobStore) -> None:
    job_id = _job(store, 120)
    failed = [i.image_id for i in _images(120)][::7]  # spread over the whole job
    for image_id in failed:
        store.set_image_status(job_id, image_id, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="x")
    first = store.images_page(OWNER, job_id, limit=10, status=ImageStatus.FAILED)
    assert [i["imageId"] for i in first.items] == failed[:10] and first.next_cursor
    second = store.images_page(OWNER, job_id, limit=10, status=ImageStatus.FAILED, cursor=first.next_cursor)
    assert [i["imageId"] for i in second.items] == failed[10:] and second.next_cursor is None
    assert {i["status"] for i in first.items + second.items} == {"FAILED"}
    # exactly a full last page: no cursor to an empty page
    exact = store.images_page(OWNER, job_id, limit=len(failed), status=ImageStatus.FAILED)
    assert len(exact.items) == len(failed) and exact.next_cursor is None


def test_images_page_filters_by_verdict_and_the_job_counts_each_verdict(store: JobStore) -> None:
    job_id = _job(store, 40)
    ids = [i.image_id for i in _images(40)]
    verdicts = {
        image_id: ("FAIL" if n % 9 == 0 else "WARN" if n % 4 == 0 else "PASS") for n, image_id in enumerate(ids)
    }
    for image_id in ids[:-2]:  # two images are still pending
        store.set_image_status(job_id, image_id, ImageStatus.SUCCEEDED, verdict=verdicts[image_id], model_calls=2)
    failing = [image_id for image_id in ids[:-2] if verdicts[image_id] == "FAIL"]
    page = store.images_page(OWNER, job_id, limit=3, verdict="FAIL")
    rest = store.images_page(OWNER, job_id, limit=10, verdict="FAIL", cursor=page.next_cursor)
    assert [i["imageId"] for i in page.items + rest.items] == failing and rest.next_cursor is None
    both = store.images_page(OWNER, job_id, limit=100, status=ImageStatus.SUCCEEDED, verdict="WARN")
    assert {i["verdict"] for i in both.items} == {"WARN"}
    unscored = store.images_page(OWNER, job_id, limit=100, verdict="NONE")
    assert [i["imageId"] for i in unscored.items] == ids[-2:]
    job = store.get_job(job_id)
    counted = {v: job.get(contracts.verdict_count_attribute(v), 0) for v in ("FAIL", "WARN", "PASS")}
    assert counted == {v: list(verdicts.values())[:-2].count(v) for v in ("FAIL", "WARN", "PASS")}
    assert job[contracts.JOB_MODEL_CALLS_ATTRIBUTE] == 2 * 38  # the calls that answered, for the cost
    # a repeated finish counts nothing twice
    assert not store.set_image_status(job_id, ids[0], ImageStatus.SUCCEEDED, verdict="PASS", model_calls=2)
    assert store.get_job(job_id)[contracts.JOB_MODEL_CALLS_ATTRIBUTE] == 2 * 38


def test_image_cursors_are_bound_to_their_owner_and_job(store: JobStore) -> None:
    job_a = _job(store, 5, suffix="00000000000a")
    job_b = _job(store, 5, suffix="00000000000b")
    cursor = store.images_page(OWNER, job_a, limit=2).next_cursor
    assert cursor is not None
    assert len(store.images_page(OWNER, job_a, limit=2, cursor=cursor).items) == 2
    for owner, job_id, bad in (
        (OWNER, job_b, cursor),  # another job's cursor
        ("owner-2", job_a, cursor),  # another user's cursor
        (OWNER, job_a, "garbage"),
        (OWNER, job_a, "€"),
        (OWNER, job_a, store.list_jobs(OWNER, limit=1).next_cursor),  # a job-list cursor
    ):
        with pytest.raises(BadRequest, match="cursor is not valid"):
            store.images_page(owner, job_id, limit=2, cursor=bad)


def test_job_list_is_newest_first_paged_and_bound_to_its_owner(store: JobStore) -> None:
    ids = [_job(store, 1, suffix=f"{n:012x}") for n in range(5)]
    _job(store, 1, owner="owner-2", suffix="0000000000ff")
    listed: list[str] = []
    cursor = None
    while True:
        page = store.list_jobs(OWNER, limit=2, cursor=cursor)
        listed += [j["jobId"] for j in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(listed) == sorted(ids) and len(listed) == 5
    cursor = store.list_jobs(OWNER, limit=2).next_cursor
    with pytest.raises(BadRequest):
        store.list_jobs("owner-2", limit=2, cursor=cursor)
    with pytest.raises(BadRequest):
        store.list_jobs(OWNER, limit=2, cursor=store.images_page(OWNER, ids[0], limit=1).next_cursor or "x")


# ---------------------------------------------------------------------------------- labels


def test_cached_labels_round_trip_one_and_many(store: JobStore) -> None:
    labels = [{"name": "Person", "confidence": 98.2, "instances": [], "parents": []}]
    keys = [f"uploads/{OWNER}/{'a' * 32}/{n:032x}.png" for n in range(130)]
    assert store.cached_labels(keys[0]) is None
    for key in keys[:120]:
        store.put_labels(key, labels)
    assert store.cached_labels(keys[0]) == labels
    found = store.cached_labels_many(keys + keys[:3])  # more than one BatchGetItem, duplicates once
    assert set(found) == set(keys[:120]) and found[keys[119]] == labels


# ---------------------------------------------------------------------------------- cost


def test_the_job_s_cost_is_a_running_total_each_piece_added_once(store: JobStore) -> None:
    from chalicelib.catalogue import costs

    job_id = _job(store, 3)
    first, second, third = (i["imageId"] for i in store.images(job_id))
    # an image's attempts, added as it finishes (a repeated finish adds nothing)
    for _ in range(2):
        store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, model_calls=2, cost_usd=0.083)
    # a failed image's answered call; the batch's scene call, read twice by a retried step
    store.set_image_status(job_id, second, ImageStatus.FAILED, error_code="MODEL_ERROR", model_calls=1, cost_usd=0.04)
    assert store.record_scene_call(job_id, "stability-image-core", 0.04) is True
    assert store.record_scene_call(job_id, "stability-image-core", 0.04) is False
    # a piece recorded apart from the image's finishing (a variant's call): once per charge
    assert store.add_cost(job_id, third, "variant2", 0.043, model_calls=1) is True
    assert store.add_cost(job_id, third, "variant2", 0.043, model_calls=1) is False
    assert store.add_cost(job_id, third, "variant3", 0.043, model_calls=1) is True
    job = store.get_job(job_id)
    # exact to the cent's fraction: no float error creeps in over thousands of additions
    assert job[contracts.JOB_COST_ATTRIBUTE] == pytest.approx(0.083 + 0.04 + 0.04 + 2 * 0.043, abs=1e-12)
    cost = costs.job_cost(job)
    assert cost["actualUsd"] == 0.249 and cost["modelCalls"] == 2 + 1 + 2 + 1  # the scene's call too
    with pytest.raises(StorageError):
        store.add_cost(job_id, "f" * 32, "variant2", 0.04)


def test_a_job_from_before_the_running_total_still_says_what_its_calls_cost(store: JobStore) -> None:
    from chalicelib.catalogue import costs

    job_id = _job(store, 2)
    first = store.images(job_id)[0]["imageId"]
    store.set_image_status(job_id, first, ImageStatus.SUCCEEDED, model_calls=2)  # no cost kept then
    cost = costs.job_cost(store.get_job(job_id))
    # its calls at the model's price; the estimate from its settings, checks included
    assert cost["actualUsd"] == 0.08 and cost["estimateUsd"] == pytest.approx(2 * (0.08 + 0.003))
