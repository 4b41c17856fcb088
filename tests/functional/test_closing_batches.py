"""Closing a cancelled job's unfinished images in batches (JobStore.close_unfinished) on moto.

One image at a time, a 10,000-image job's closing was a read and a transaction per image, 20,000
sequential round trips; now one Query reads the statuses and each TransactWriteItems moves up to
99 images and the job's counts (docs/aws-notes.md#n99-batched-closing-of-a-cancelled-job).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.store.jobs import TRANSACT_IMAGES_PER_CALL, JobStore, NewImage

OWNER = "owner-1"
JOB_ID = "20261208T020000Z-0123456789ab"


def _job(store: JobStore, count: int) -> list[str]:
    images = []
    for n in range(count):
        ref = contracts.image_ref_of("c" * 32, f"{n:032x}", "png")
        images.append(
            NewImage(image_id=f"{n:032x}", image_ref=ref, key=contracts.upload_key(OWNER, ref), name=f"{n}.png")
        )
    store.put_job(job_id=JOB_ID, owner=OWNER, model="stability-inpaint", settings={"prompt": "x"}, images=images)
    return [i.image_id for i in images]


@pytest.fixture(autouse=True)
def item_level_rollback(resources: dict[str, Any]) -> Iterator[None]:
    """moto backs up every table a transaction touches once per item (a 100-item transaction on a
    1,000-item table copies it 100 times): the local stack's item-level backup instead."""
    from backend.local import moto_bounds

    undo = moto_bounds.install_transactions()
    yield
    undo()


@pytest.fixture
def calls(store: JobStore) -> Iterator[collections.Counter[str]]:
    """DynamoDB operations the store sends, by name (botocore's before-call event: the real calls)."""
    sent: collections.Counter[str] = collections.Counter()

    def hook(model: Any, **_: Any) -> None:
        sent[model.name] += 1

    events = store.table.meta.client.meta.events
    events.register("before-call.dynamodb", hook)
    yield sent
    events.unregister("before-call.dynamodb", hook)


@pytest.mark.slow  # ~12 s of CPU: a thousand images written through moto (make test, not make test-fast)
def test_closing_a_thousand_images_takes_a_transaction_per_99(store: JobStore, calls: collections.Counter[str]) -> None:
    ids = _job(store, 1_000)
    for image_id in ids[:100]:
        store.start_image(JOB_ID, image_id)
    for image_id in ids[100:150]:
        store.set_image_status(JOB_ID, image_id, ImageStatus.SUCCEEDED, verdict="PASS")
    calls.clear()
    images = store.close_unfinished(JOB_ID, "cancelled by its owner", code=None, status=ImageStatus.CANCELLED)

    # 950 unfinished images: ceil(950 / 99) = 10 transactions, no read or write per image
    assert calls["TransactWriteItems"] == -(-950 // TRANSACT_IMAGES_PER_CALL) == 10
    assert calls["GetItem"] == 0 and calls["UpdateItem"] == 0
    assert sum(calls.values()) <= 20, calls  # before: ~2,850 (a read, a transaction and a re-read each)

    statuses = collections.Counter(i["status"] for i in images)
    assert statuses == {"CANCELLED": 950, "SUCCEEDED": 50}
    assert all(i.get("cause") == "cancelled by its owner" for i in images if i["status"] == "CANCELLED")
    counts = store.get_job(JOB_ID)["counts"]
    assert counts == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 50, "FAILED": 0, "CANCELLED": 950}
    # the index keys moved in the same transactions: the CANCELLED view holds them all
    seen, cursor = 0, None
    while True:
        page = store.images_page(OWNER, JOB_ID, limit=100, status=ImageStatus.CANCELLED, cursor=cursor)
        seen += len(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == 950


def test_an_image_that_finished_after_the_read_keeps_its_outcome(store: JobStore, monkeypatch) -> None:
    ids = _job(store, 150)
    stale = store.images(JOB_ID)  # read while every image is PENDING
    store.set_image_status(JOB_ID, ids[5], ImageStatus.SUCCEEDED, verdict="WARN")  # finishes meanwhile
    store.start_image(JOB_ID, ids[120])  # and another one starts (the second batch)
    monkeypatch.setattr(store, "images", lambda job_id: [dict(i) for i in stale])

    images = store.close_unfinished(JOB_ID, "cancelled", code=None, status=ImageStatus.CANCELLED)

    by_id = {i["imageId"]: i for i in images}
    assert by_id[ids[5]]["status"] == "SUCCEEDED" and by_id[ids[5]]["verdict"] == "WARN"
    assert by_id[ids[120]]["status"] == "CANCELLED"
    assert collections.Counter(i["status"] for i in images) == {"CANCELLED": 149, "SUCCEEDED": 1}
    counts = store.get_job(JOB_ID)["counts"]
    assert counts == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 149}
