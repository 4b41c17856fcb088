"""DynamoDB as AWS answers it where moto is softer (backend/local/dynamodb_rules.py): overlapping
transactions are cancelled, a partition past its throughput is throttled, and a transaction
repeated with its ClientRequestToken is not applied twice. Each test fails on plain moto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from backend.local import dynamodb_rules

# no SDK retries: each test sees DynamoDB's own first answer
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def ddb(resources: dict[str, Any]) -> Any:
    return boto3.client("dynamodb", config=NO_RETRIES)


@pytest.fixture
def limits(resources: dict[str, Any]) -> Iterator[dict[str, float]]:
    now = {"t": 0.0}
    undo = dynamodb_rules.install_partition_limits(write_units_per_s=10, read_units_per_s=30, clock=lambda: now["t"])
    yield now
    undo()


def _add(table: str, pk: str, sk: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def _n(ddb: Any, table: str, pk: str, sk: str) -> int:
    item = ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True).get("Item")
    return int(item["n"]["N"]) if item else 0


def test_an_injected_conflict_cancels_the_transaction_as_aws_words_it(resources, transaction_rules, ddb) -> None:
    table = resources["table"]
    transaction_rules.conflict_next(1, table=table, pk="JOB#a", sk="JOB")
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=[_add(table, "JOB#a", "IMAGE#1"), _add(table, "JOB#a", "JOB")])
    error = caught.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert error["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]"
    )
    assert [r["Code"] for r in error["CancellationReasons"]] == ["None", "TransactionConflict"]
    assert _n(ddb, table, "JOB#a", "IMAGE#1") == 0  # nothing written
    ddb.transact_write_items(TransactItems=[_add(table, "JOB#a", "IMAGE#1"), _add(table, "JOB#a", "JOB")])
    assert _n(ddb, table, "JOB#a", "JOB") == 1  # the injection was one transaction


def test_an_injected_conflict_refuses_a_single_write_of_that_item(resources, transaction_rules, ddb) -> None:
    table = resources["table"]
    transaction_rules.conflict_next(1, table=table, pk="JOB#a2", sk="JOB")
    update = {
        "TableName": table,
        "Key": {"pk": {"S": "JOB#a2"}, "sk": {"S": "JOB"}},
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    with pytest.raises(ClientError) as caught:
        ddb.update_item(**update)
    assert caught.value.response["Error"] == {
        "Code": "TransactionConflictException",
        "Message": "Operation was rejected because there is an ongoing transaction for the item.",
    }
    ddb.update_item(**update)
    assert _n(ddb, table, "JOB#a2", "JOB") == 1


def test_overlapping_transactions_on_one_item_conflict_and_a_single_write_is_refused(
    resources, transaction_rules, ddb, monkeypatch
) -> None:
    """Real overlap: while one transaction is being applied, another on the same item is cancelled
    and an UpdateItem of that item fails with TransactionConflictException."""
    from moto.dynamodb.models import DynamoDBBackend

    table = resources["table"]
    inside, release = threading.Event(), threading.Event()
    original = DynamoDBBackend.transact_write_items

    def slow(self: Any, items: list[dict[str, Any]]) -> None:
        if any(entry["Update"]["Key"]["sk"]["S"] == "IMAGE#slow" for entry in items if "Update" in entry):
            inside.set()
            release.wait(10)
        original(self, items)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", slow)
    first = threading.Thread(
        target=lambda: ddb.transact_write_items(
            TransactItems=[_add(table, "JOB#b", "IMAGE#slow"), _add(table, "JOB#b", "JOB")]
        )
    )
    first.start()
    assert inside.wait(10)
    try:
        with pytest.raises(ClientError) as caught:
            ddb.transact_write_items(TransactItems=[_add(table, "JOB#b", "IMAGE#2"), _add(table, "JOB#b", "JOB")])
        assert [r["Code"] for r in caught.value.response["CancellationReasons"]] == ["None", "TransactionConflict"]
        with pytest.raises(ClientError, match="TransactionConflictException"):
            ddb.update_item(
                TableName=table,
                Key={"pk": {"S": "JOB#b"}, "sk": {"S": "JOB"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        # another item of the same partition is not held
        ddb.transact_write_items(TransactItems=[_add(table, "JOB#b", "IMAGE#3")])
    finally:
        release.set()
        first.join(10)
    assert _n(ddb, table, "JOB#b", "JOB") == 1
    assert transaction_rules.stats["overlaps"] == 1 and transaction_rules.stats["single_write_conflicts"] == 1
    assert list(dynamodb_rules.held_items()) == []


def test_a_seeded_probability_cancels_the_same_transactions_every_run(resources, transaction_rules, ddb) -> None:
    table = resources["table"]

    def run() -> list[bool]:
        transaction_rules.conflict_randomly(0.3, seed=7)
        outcome = []
        for i in range(40):
            try:
                ddb.transact_write_items(TransactItems=[_add(table, "JOB#c", f"IMAGE#{i}")])
                outcome.append(True)
            except ClientError:
                outcome.append(False)
        return outcome

    first = run()
    assert first == run()
    assert 4 <= first.count(False) <= 20


def test_a_transaction_repeated_with_its_client_token_is_applied_once(resources, transaction_rules, ddb) -> None:
    table = resources["table"]
    items = [_add(table, "JOB#d", "IMAGE#1"), _add(table, "JOB#d", "JOB")]
    ddb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    ddb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")  # answered, not applied
    assert _n(ddb, table, "JOB#d", "JOB") == 1
    with pytest.raises(ClientError, match="IdempotentParameterMismatch"):
        ddb.transact_write_items(TransactItems=items[:1], ClientRequestToken="token-1")
    ddb.transact_write_items(TransactItems=items)  # no token: a new transaction
    assert _n(ddb, table, "JOB#d", "JOB") == 2


def test_a_lost_answer_is_retried_by_the_sdk_and_applied_once_with_a_token(resources, transaction_rules) -> None:
    table = resources["table"]
    retrying = boto3.client("dynamodb", config=Config(retries={"max_attempts": 3, "mode": "standard"}))
    items = [_add(table, "JOB#e", "JOB")]
    transaction_rules.lose_answers(1)
    retrying.transact_write_items(TransactItems=items, ClientRequestToken="token-2")
    assert _n(retrying, table, "JOB#e", "JOB") == 1
    assert transaction_rules.stats["answers_lost"] == 1 and transaction_rules.stats["replayed"] == 1
    # botocore fills in a token per call itself (the parameter is an idempotency token in the
    # service model), so its own retries are idempotent too; a new call is a new transaction
    transaction_rules.lose_answers(1)
    retrying.transact_write_items(TransactItems=items)
    assert _n(retrying, table, "JOB#e", "JOB") == 2
    assert transaction_rules.stats["replayed"] == 2


def test_a_partition_past_its_write_rate_is_throttled_as_aws_throttles_it(resources, limits, ddb) -> None:
    table = resources["table"]
    for i in range(10):  # one second of units, 1 KB items
        ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#f"}, "sk": {"S": f"IMAGE#{i}"}})
    with pytest.raises(ClientError) as caught:
        ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#f"}, "sk": {"S": "IMAGE#x"}})
    error = caught.value.response
    assert error["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert error["ThrottlingReasons"][0]["reason"] == "TableWriteKeyRangeThroughputExceeded"
    # another partition key value has its own units
    ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#g"}, "sk": {"S": "JOB"}})
    limits["t"] += 0.5  # half a second refills half
    for i in range(5):
        ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#f"}, "sk": {"S": f"IMAGE#y{i}"}})
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#f"}, "sk": {"S": "IMAGE#z"}})


def test_a_large_item_costs_a_unit_per_started_kilobyte(resources, limits, ddb) -> None:
    table = resources["table"]
    ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#h"}, "sk": {"S": "big"}, "blob": {"S": "x" * 8500}})  # 9 units
    ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#h"}, "sk": {"S": "small"}})  # the 10th
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#h"}, "sk": {"S": "more"}})


def test_batch_writes_past_the_rate_come_back_unprocessed(resources, limits, ddb) -> None:
    table = resources["table"]
    requests = [{"PutRequest": {"Item": {"pk": {"S": "JOB#i"}, "sk": {"S": f"IMAGE#{i}"}}}} for i in range(25)]
    answer = ddb.batch_write_item(RequestItems={table: requests})
    assert len(answer["UnprocessedItems"][table]) == 15
    assert (
        ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "JOB#i"}})[
            "Count"
        ]
        == 10
    )


def test_a_transaction_on_a_throttled_partition_is_cancelled_with_throttling_error(resources, limits, ddb) -> None:
    table = resources["table"]
    for i in range(5):  # transactional writes cost twice: five single-item transactions use the second
        ddb.transact_write_items(TransactItems=[_add(table, "JOB#j", f"IMAGE#{i}")])
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=[_add(table, "JOB#k", "JOB"), _add(table, "JOB#j", "JOB")])
    assert [r["Code"] for r in caught.value.response["CancellationReasons"]] == ["None", "ThrottlingError"]
    assert _n(ddb, table, "JOB#k", "JOB") == 0  # all or nothing


def test_reads_past_the_partition_rate_are_throttled(resources, limits, ddb) -> None:
    table = resources["table"]
    ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#m"}, "sk": {"S": "JOB"}})
    key = {"pk": {"S": "JOB#m"}, "sk": {"S": "JOB"}}
    for _ in range(30):  # 30 strongly consistent reads of a small item: one second of read units
        ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    with pytest.raises(ClientError) as caught:
        ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    assert caught.value.response["ThrottlingReasons"][0]["reason"] == "TableReadKeyRangeThroughputExceeded"
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "JOB#m"}})


def test_uninstalled_rules_leave_moto_as_it_was(resources, ddb) -> None:
    table = resources["table"]
    undo = dynamodb_rules.install_partition_limits(write_units_per_s=1)
    transaction_rules = dynamodb_rules.install_transaction_rules()
    transaction_rules.undo()
    undo()
    for i in range(5):
        ddb.put_item(TableName=table, Item={"pk": {"S": "JOB#n"}, "sk": {"S": f"IMAGE#{i}"}})


def test_full_buckets_are_forgotten_so_memory_stays_flat(resources, limits, ddb) -> None:
    state = dynamodb_rules.partition_limits()
    assert state is not None
    for i in range(4200):  # one write unit on each of 4,200 partition key values
        state.take_writes("t", {f"k{i}": 1})
    limits["t"] += 1.0  # every bucket full again
    state.take_writes("t", {"k-last": 1})
    assert len(state._buckets) == 1
