"""Filtered pages of a large job cost one query: the byStatus and byVerdict indexes on moto.

DynamoDB applies a Query's Limit before its FilterExpression
(docs/aws-notes.md#n98-query-limit-before-filter), so a page filtered after the read takes a
query per `limit` items read; these pages are read from the partition of their index instead,
whose keys every status or verdict write moves with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.store.jobs import JobStore, NewImage

OWNER = "owner-1"
JOB_ID = "20261208T010000Z-0123456789ab"


def _images(count: int) -> list[NewImage]:
    out = []
    for index in range(count):
        image_id = f"{index:032x}"
        ref = contracts.image_ref_of("b" * 32, image_id, "png")
        out.append(
            NewImage(
                image_id=image_id,
                image_ref=ref,
                key=contracts.upload_key(OWNER, ref),
                name=f"img{index}.png",
                labels=("Person",),
                boxes=((0.1, 0.2, 0.3, 0.6),),
            )
        )
    return out


def _job(store: JobStore, count: int) -> list[str]:
    images = _images(count)
    store.put_job(job_id=JOB_ID, owner=OWNER, model="stability-inpaint", settings={"prompt": "a beach"}, images=images)
    return [i.image_id for i in images]


@pytest.fixture
def queries(store: JobStore) -> Iterator[list[dict[str, Any]]]:
    """Every Query the store sends (its parameters), counted at botocore's event hook: the real calls."""
    sent: list[dict[str, Any]] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    events = store.table.meta.client.meta.events
    events.register("provide-client-params.dynamodb.Query", hook)
    yield sent
    events.unregister("provide-client-params.dynamodb.Query", hook)


@pytest.mark.slow  # ~28 s of CPU: a thousand images written through moto (make test, not make test-fast)
def test_a_filtered_page_of_a_thousand_images_is_one_query(store: JobStore, queries: list[dict[str, Any]]) -> None:
    ids = _job(store, 1_000)
    failed = ids[7::50]  # 20 failed, spread over the whole job
    for image_id in failed:
        store.set_image_status(JOB_ID, image_id, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="x")
    warned = ids[3::100]  # 10 results whose scorecard warned
    for image_id in warned:
        store.set_image_status(JOB_ID, image_id, ImageStatus.SUCCEEDED, verdict="WARN", model_calls=2)

    queries.clear()
    page = store.images_page(OWNER, JOB_ID, limit=12, status=ImageStatus.FAILED)
    assert [i["imageId"] for i in page.items] == failed[:12] and page.next_cursor
    assert len(queries) == 1 and queries[0]["IndexName"] == contracts.STATUS_INDEX
    rest = store.images_page(OWNER, JOB_ID, limit=12, status=ImageStatus.FAILED, cursor=page.next_cursor)
    assert [i["imageId"] for i in rest.items] == failed[12:] and rest.next_cursor is None

    queries.clear()
    both = store.images_page(OWNER, JOB_ID, limit=12, status=ImageStatus.SUCCEEDED, verdict="WARN")
    assert [i["imageId"] for i in both.items] == warned and both.next_cursor is None
    assert len(queries) == 1 and queries[0]["IndexName"] == contracts.VERDICT_INDEX

    # "doubtful first" ends with the images that have no verdict: still one query for a page
    queries.clear()
    unscored = store.images_page(OWNER, JOB_ID, limit=12, status=ImageStatus.PENDING, verdict="NONE")
    pending = [i for i in ids if i not in set(failed) | set(warned)]
    assert [i["imageId"] for i in unscored.items] == pending[:12] and len(queries) == 1


def test_the_index_keys_move_with_the_status_and_the_verdict(store: JobStore) -> None:
    ids = _job(store, 6)
    store.start_image(JOB_ID, ids[0])
    store.set_image_status(JOB_ID, ids[0], ImageStatus.SUCCEEDED, verdict="FAIL", outputs=[{"key": "r0"}])
    store.set_image_status(JOB_ID, ids[1], ImageStatus.SUCCEEDED, verdict="PASS")
    store.set_image_status(JOB_ID, ids[2], ImageStatus.FAILED, error_code="MODEL_ERROR", cause="x")

    def page(**filters: Any) -> list[str]:
        return [i["imageId"] for i in store.images_page(OWNER, JOB_ID, limit=100, **filters).items]

    assert page(status=ImageStatus.RUNNING) == []  # it left RUNNING in the same write
    assert page(status=ImageStatus.SUCCEEDED) == ids[:2]
    assert page(verdict="FAIL") == [ids[0]]
    assert page(verdict="NONE") == [ids[2], *ids[3:]]  # by status (FAILED < PENDING), then id
    assert page(status=ImageStatus.PENDING, verdict="NONE") == ids[3:]
    assert page(status=ImageStatus.FAILED, verdict="FAIL") == []

    # a pick that changes the delivered output's verdict moves the image to that verdict's view
    before = store.get_image(JOB_ID, ids[0])
    assert before is not None
    picked = [{"key": "r0", "variant": 1, "delivered": True, "quality": {"outcome": "PASS"}}]
    assert store.set_outputs(JOB_ID, ids[0], picked, before)
    assert page(verdict="FAIL") == [] and page(status=ImageStatus.SUCCEEDED, verdict="PASS") == ids[:2]


def test_a_page_cut_short_resumes_inside_its_view(store: JobStore) -> None:
    ids = _job(store, 30)
    failed = ids[1::3]
    for image_id in failed:
        store.set_image_status(JOB_ID, image_id, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="x")
    for filters in ({"status": ImageStatus.FAILED}, {"status": ImageStatus.FAILED, "verdict": "NONE"}):
        page = store.images_page(OWNER, JOB_ID, limit=5, **filters)
        # the API answers fewer images than the page held (its answer would be too large)
        cursor = store.images_cursor_after(OWNER, JOB_ID, page.items[2], **filters)
        resumed = store.images_page(OWNER, JOB_ID, limit=5, cursor=cursor, **filters)
        assert [i["imageId"] for i in resumed.items] == failed[3:8]
    # a cursor of one view is no cursor of another
    cursor = store.images_page(OWNER, JOB_ID, limit=2, status=ImageStatus.FAILED).next_cursor
    with pytest.raises(Exception, match="cursor is not valid"):
        store.images_page(OWNER, JOB_ID, limit=2, status=ImageStatus.PENDING, cursor=cursor)
    with pytest.raises(Exception, match="cursor is not valid"):
        store.images_page(OWNER, JOB_ID, limit=2, cursor=cursor)


def test_a_job_written_before_the_index_keys_is_filtered_as_before(store: JobStore) -> None:
    ids = _job(store, 40)
    failed = ids[::9]
    for image_id in failed:
        store.set_image_status(JOB_ID, image_id, ImageStatus.FAILED, error_code="MODEL_ERROR", cause="x")
    # as such a job is stored: no flag on the job, no keys on its images
    keys = (contracts.STATUS_INDEX_PK, contracts.VERDICT_INDEX_PK, contracts.VERDICT_INDEX_SK)
    for image_id in ids:
        store.table.update_item(
            Key={"pk": contracts.job_pk(JOB_ID), "sk": contracts.image_sk(image_id)},
            UpdateExpression="REMOVE " + ", ".join(keys),
        )
    assert store.images_page(OWNER, JOB_ID, limit=100, status=ImageStatus.FAILED).items == []  # the index is empty
    first = store.images_page(OWNER, JOB_ID, limit=3, status=ImageStatus.FAILED, indexed=False)
    rest = store.images_page(OWNER, JOB_ID, limit=3, status=ImageStatus.FAILED, indexed=False, cursor=first.next_cursor)
    assert [i["imageId"] for i in first.items + rest.items] == failed and rest.next_cursor is None


def test_the_deployed_table_has_the_indexes_the_store_queries() -> None:
    """The CloudFormation table (backend/templates/resources.yaml) and the local and test tables
    (contracts.TABLE_GSIS, TABLE_ATTRIBUTES) are written apart: they must agree, or a deployed
    stack would answer a filtered page with a ValidationException (no such index)."""
    from backend import templates

    table = templates.load("resources")["Resources"]["JobsTable"]["Properties"]
    assert table["GlobalSecondaryIndexes"] == contracts.TABLE_GSIS
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(contracts.TABLE_ATTRIBUTES, key=str)
