"""The local stack's DynamoDB answers as AWS does (backend/local/dynamodb_rules.py through its moto
server): a partition key value written past 1,000 units a second is throttled, and transactions
conflict. Plain moto (the stack before) writes everything at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from backend.local import dynamodb_rules
from backend.local.stack import LocalStack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local() -> Iterator[LocalStack]:
    stack = LocalStack(api_port=0, stage="ddbrules").start()
    try:
        yield stack
    finally:
        stack.stop()


def test_a_hot_partition_key_is_throttled_past_a_thousand_write_units(local: LocalStack) -> None:
    ddb = local.client("dynamodb")
    table = local.outputs["table"]
    # 4 KB items (4 write units each): 100 units per call, faster than the partition's 1,000 a
    # second even at the local moto server's pace
    padding = "x" * 4000
    unprocessed = 0
    for batch in range(40):
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": "JOB#hot"}, "sk": {"S": f"IMAGE#{batch}-{i}"}, "p": {"S": padding}}}}
            for i in range(25)
        ]
        try:
            answer = ddb.batch_write_item(RequestItems={table: requests})
        except ClientError as exc:  # every request of the batch throttled
            assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
            unprocessed += len(requests)
            continue
        unprocessed += len(answer.get("UnprocessedItems", {}).get(table, []))
    assert unprocessed > 0
    limits = dynamodb_rules.partition_limits()
    assert limits is not None and limits.write_units_per_s == 1000 and limits.throttled["write"] > 0


def test_transactions_conflict_on_the_local_stack(local: LocalStack) -> None:
    rules = dynamodb_rules.installed_rules()
    assert rules is not None
    table = local.outputs["table"]
    rules.conflict_next(1, table=table, pk="JOB#conflict", sk="JOB")
    ddb = local.client("dynamodb")
    update = {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": "JOB#conflict"}, "sk": {"S": "JOB"}},
            "UpdateExpression": "SET n = :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=[update])
    assert [r["Code"] for r in caught.value.response["CancellationReasons"]] == ["TransactionConflict"]
    ddb.transact_write_items(TransactItems=[update])
