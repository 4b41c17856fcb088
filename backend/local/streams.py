"""Deliver DynamoDB stream records to a handler the way Lambda's event source mapping does.

Used by the tests and the local stack only (on AWS, Lambda polls the stream itself). Records
are delivered in order per shard and at least once: a shard's position only advances after the
handler returned, so a failing batch is delivered again on the next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def to_lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """boto3's GetRecords shape → the Lambda event record shape.

    docs/aws-notes.md#n24-moto-dynamodb-streams-records
    """
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {
        **record,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
        "awsRegion": record.get("awsRegion", "us-east-1"),
    }


class StreamPoller:
    def __init__(
        self, streams: Any, stream_arn: str, deliver: Callable[[dict[str, Any]], Any], batch_size: int = 100
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.deliver = deliver
        self.batch_size = batch_size
        self._iterators: dict[str, str] = {}
        self.delivered_through: dict[str, str] = {}  # shard → sequence number of the last record delivered

    @property
    def iterators(self) -> list[str]:
        """The shard iterators this poller will read next."""
        return list(self._iterators.values())

    def _shard_ids(self) -> list[str]:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        return [shard["ShardId"] for shard in description.get("Shards", [])]

    def poll_once(self) -> int:
        """Deliver every record available now; returns how many were delivered."""
        delivered = 0
        for shard_id in self._shard_ids():
            iterator = (
                self._iterators.get(shard_id)
                or self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            while iterator:
                page = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
                records = page.get("Records", [])
                if not records:
                    break
                self.deliver({"Records": [to_lambda_record(r, self.stream_arn) for r in records]})
                delivered += len(records)
                iterator = page.get("NextShardIterator")
                # advance only after a successful delivery: at-least-once, in order per shard
                self._iterators[shard_id] = iterator
                self.delivered_through[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
        return delivered
