"""The local stack's bounds on moto (backend/local/moto_bounds.py): what moto would keep forever
is dropped, and what a run can observe stays as DynamoDB behaves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from backend.local import moto_bounds
from backend.local.streams import StreamPoller
from chalicelib.core.contracts import ImageStatus
from chalicelib.store.jobs import JobStore, NewImage

JOB_ID = "20261124T120000Z-0123456789ab"


@pytest.fixture
def bounded(resources: dict[str, Any]) -> Iterator[dict[str, Any]]:
    undo = moto_bounds.install()
    yield resources
    undo()


def _shard(table: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[table].stream_shard


def _job(store: JobStore, count: int) -> list[str]:
    images = [
        NewImage(image_id=f"{i:032x}", image_ref=f"ref{i}", key=f"uploads/o/{i}.png", name=f"{i}.png")
        for i in range(count)
    ]
    store.put_job(job_id=JOB_ID, owner="o", model="stability-inpaint", settings={}, images=images)
    return [image.image_id for image in images]


def test_a_cancelled_transaction_writes_nothing_and_a_committed_one_counts_once(bounded, store) -> None:
    first, second = _job(store, 2)
    records = len(_shard(bounded["table"]).items)
    assert store.start_image(JOB_ID, first)
    assert len(_shard(bounded["table"]).items) == records + 2  # the image and the job's counts
    image_before = store.get_image(JOB_ID, second)
    with pytest.raises(ClientError, match="TransactionCanceled"):
        boto3.client("dynamodb").transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": bounded["table"],
                        "Key": {"pk": {"S": f"JOB#{JOB_ID}"}, "sk": {"S": f"IMAGE#{second}"}},
                        "UpdateExpression": "SET #s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "RUNNING"}},
                    }
                },
                {
                    "Update": {
                        "TableName": bounded["table"],
                        "Key": {"pk": {"S": f"JOB#{JOB_ID}"}, "sk": {"S": "JOB"}},
                        "UpdateExpression": "SET imageCount = :n",
                        "ConditionExpression": "attribute_not_exists(pk)",  # the job exists: refused
                        "ExpressionAttributeValues": {":n": {"N": "0"}},
                    }
                },
            ]
        )
    assert store.get_image(JOB_ID, second) == image_before  # the first write was rolled back
    assert len(_shard(bounded["table"]).items) == records + 2  # and left no stream record
    job = store.get_job(JOB_ID)
    assert job["imageCount"] == 2 and job["counts"]["RUNNING"] == 1 and job["counts"]["PENDING"] == 1
    assert store.set_image_status(JOB_ID, first, ImageStatus.SUCCEEDED, outputs=[])
    assert store.get_job(JOB_ID)["counts"] == {"PENDING": 1, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 0}


def test_delivered_stream_records_are_trimmed_and_every_record_is_still_delivered_once(bounded, store) -> None:
    delivered: list[str] = []
    poller = StreamPoller(
        boto3.client("dynamodbstreams"),
        bounded["stream_arn"],
        lambda event: delivered.extend(r["dynamodb"]["SequenceNumber"] for r in event["Records"]),
    )
    _job(store, 3)  # three image INSERTs and the job's
    assert poller.poll_once() == 4
    through = max(poller.delivered_through.values(), key=int)
    assert moto_bounds.trim_stream(bounded["table"], through, poller.iterators) == 4
    assert _shard(bounded["table"]).items == []
    store.start_image(JOB_ID, f"{0:032x}")  # two more records: the image and the job's counts
    assert poller.poll_once() == 2
    assert len(delivered) == len(set(delivered)) == 6  # none lost, none twice
    # a poller that starts over (the app side restarted) begins at the oldest record kept
    fresh: list[dict[str, Any]] = []
    assert StreamPoller(boto3.client("dynamodbstreams"), bounded["stream_arn"], fresh.append).poll_once() == 2


def test_moto_keeps_no_list_of_every_item_it_ever_built(bounded, store) -> None:
    from moto.dynamodb.models.dynamo_type import Item

    before = len(Item.instances_tracked)
    _job(store, 20)
    store.images(JOB_ID)  # a query deep-copies every item it returns
    assert len(Item.instances_tracked) == before


def _answers(store: JobStore, job_ids: list[str]) -> list[Any]:
    """What a client sees of the queries the product makes: a job's images (paged) and the
    owner's jobs through the owner index (paged, newest first)."""
    images = [[i["imageId"] for i in store.images(job_id)] for job_id in job_ids]
    first = store.list_jobs("o", limit=2)
    second = store.list_jobs("o", limit=2, cursor=first.next_cursor) if first.next_cursor else None
    jobs = [[j["jobId"] for j in page.items] for page in (first, second) if page]
    return [images, jobs]


def test_queries_read_one_partition_and_answer_as_before(resources, store, monkeypatch) -> None:
    job_ids = [f"20261124T12000{n}Z-0123456789ab" for n in range(3)]
    for n, job_id in enumerate(job_ids):
        images = [NewImage(f"{n}{i:031x}", f"r{n}{i}", f"uploads/o/{n}{i}.png", f"{i}.png") for i in range(4)]
        store.put_job(job_id=job_id, owner="o", model="stability-inpaint", settings={}, images=images)
    unbounded = _answers(store, job_ids)

    undo = moto_bounds.install()
    try:
        from moto.dynamodb.models.table import Table

        reads: list[int] = []  # items each Query started from
        bounded_all_items = Table.all_items

        def counting(self: Any) -> Any:
            answer = bounded_all_items(self)
            reads.append(len(answer))
            return answer

        monkeypatch.setattr(Table, "all_items", counting)
        bounded_answers = _answers(store, job_ids)
    finally:
        monkeypatch.undo()
        undo()
    assert bounded_answers == unbounded  # same items, same order, same pages
    assert unbounded[0] == [sorted(ids) for ids in unbounded[0]] and len(unbounded[1][0]) == 2
    # each job's image query started from its partition (the job item and its 4 images), not
    # from all 15 items of the table
    assert reads[: len(job_ids)] == [5, 5, 5]
