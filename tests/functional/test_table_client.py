"""The jobs table the app builds (chalicelib.store.clients.table): boto3's Table surface on a plain
DynamoDB client, without boto3's resource layer (issue #28.3: ~11 ms of the API's cold start)."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from chalicelib.store import clients as aws


@pytest.fixture
def table(resources: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    def no_resources(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the app's table builds no boto3 resource")

    monkeypatch.setattr(boto3.session.Session, "resource", no_resources)
    return aws.table(os.environ["JOBS_TABLE_NAME"])


def test_python_values_go_in_and_come_out(table: Any) -> None:
    item = {
        "pk": "JOB#a",
        "sk": "JOB",
        "count": 3,
        "ratio": Decimal("0.25"),
        "labels": {"Person", "Shoe"},
        "settings": {"prompt": "a beach", "seeds": [1, 2]},
        "done": False,
    }
    table.put_item(Item=item)
    got = table.get_item(Key={"pk": "JOB#a", "sk": "JOB"})["Item"]
    assert got == {**item, "count": Decimal(3), "settings": {"prompt": "a beach", "seeds": [Decimal(1), Decimal(2)]}}


def test_conditions_and_updates_take_boto3_condition_objects(table: Any) -> None:
    for sk in ("JOB", "IMG#1", "IMG#2", "LABELS"):
        table.put_item(Item={"pk": "JOB#b", "sk": sk, "status": "RUNNING"})
    page = table.query(KeyConditionExpression=Key("pk").eq("JOB#b") & Key("sk").begins_with("IMG#"))
    assert [i["sk"] for i in page["Items"]] == ["IMG#1", "IMG#2"]
    table.update_item(
        Key={"pk": "JOB#b", "sk": "IMG#1"},
        UpdateExpression="SET #s = :s",
        ConditionExpression=Attr("status").eq("RUNNING"),
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "SUCCEEDED"},
    )
    with pytest.raises(ClientError) as refused:
        table.delete_item(Key={"pk": "JOB#b", "sk": "IMG#1"}, ConditionExpression=Attr("status").eq("RUNNING"))
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert table.get_item(Key={"pk": "JOB#b", "sk": "IMG#1"})["Item"]["status"] == "SUCCEEDED"


def test_batch_writer_and_the_client_underneath_take_python_values(table: Any) -> None:
    with table.batch_writer() as batch:
        for index in range(30):  # two BatchWriteItem calls
            batch.put_item(Item={"pk": "JOB#c", "sk": f"IMG#{index:02}", "n": index})
    table.meta.client.transact_write_items(
        TransactItems=[{"Put": {"TableName": table.name, "Item": {"pk": "JOB#c", "sk": "JOB", "n": 30}}}]
    )
    items = table.query(KeyConditionExpression=Key("pk").eq("JOB#c"))["Items"]
    assert len(items) == 31 and sum(int(i["n"]) for i in items) == sum(range(31))


def test_the_shared_dynamodb_client_keeps_the_wire_format(table: Any) -> None:
    """The table's handlers are on its own client: `clients.client("dynamodb")` (the idempotency
    layer's) still takes and gives DynamoDB's typed values."""
    table.put_item(Item={"pk": "JOB#d", "sk": "JOB", "n": 1})
    raw = aws.client("dynamodb").get_item(TableName=table.name, Key={"pk": {"S": "JOB#d"}, "sk": {"S": "JOB"}})
    assert raw["Item"]["n"] == {"N": "1"}
