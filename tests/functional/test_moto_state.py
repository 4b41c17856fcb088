"""The tests' bucket and table are created once per process and restored into each test's moto
(tests/moto_state.py): every test must still start from the same clean state, the one
backend/resources.py creates. Each `with mock_aws()` below is what one test's `aws_mock` fixture is."""

from __future__ import annotations

from typing import Any

import boto3
from builders import BUCKET, TABLE
from moto import mock_aws
from moto_state import fresh_resources

from backend.resources import create_resources

REGION = "us-east-1"


def _fresh() -> dict[str, Any]:
    return fresh_resources(bucket=BUCKET, table=TABLE, region=REGION)


def _state() -> dict[str, Any]:
    """What a test can observe of the resources: their settings and everything in them."""
    s3, ddb, sns = boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sns")
    table = ddb.describe_table(TableName=TABLE)["Table"]
    return {
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "objects": s3.list_objects_v2(Bucket=BUCKET).get("Contents", []),
        "versioning": s3.get_bucket_versioning(Bucket=BUCKET).get("Status"),
        "encryption": s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"],
        "public_access": s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"],
        "tables": ddb.list_tables()["TableNames"],
        "items": ddb.scan(TableName=TABLE)["Items"],
        "keys": table["KeySchema"],
        "attributes": sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "indexes": sorted(
            ((i["IndexName"], str(i["KeySchema"]), str(i["Projection"])) for i in table["GlobalSecondaryIndexes"]),
        ),
        "stream": table["StreamSpecification"],
        "billing": table["BillingModeSummary"]["BillingMode"],
        "topics": sns.list_topics()["Topics"],
    }


def test_a_write_in_one_test_is_not_seen_by_the_next() -> None:
    with mock_aws():  # one test: writes an object, an item, a bucket setting, another bucket and a topic
        _fresh()
        clean = _state()
        s3 = boto3.client("s3")
        s3.put_object(Bucket=BUCKET, Key="uploads/owner-1/left.png", Body=b"left behind")
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket="another-bucket")
        boto3.client("dynamodb").put_item(TableName=TABLE, Item={"pk": {"S": "JOB#left"}, "sk": {"S": "JOB"}})
        boto3.client("sns").create_topic(Name="left-topic")
        dirty = _state()
        assert dirty["objects"] and dirty["items"] and dirty["topics"] and dirty["versioning"] == "Enabled"
    with mock_aws():  # the next test
        _fresh()
        assert _state() == clean
        assert clean["objects"] == [] and clean["items"] == [] and clean["topics"] == []
        assert clean["buckets"] == [BUCKET] and clean["tables"] == [TABLE]


def test_restored_resources_are_those_the_apis_create() -> None:
    """The restored copy against create_resources run afresh through the AWS APIs: the same
    bucket settings, key schema, indexes and stream (the copy cannot drift from the definitions)."""
    with mock_aws():
        _fresh()  # the first call of a process creates; the second restores at least once
    with mock_aws():
        restored = _fresh()
        restored_state = _state()
    with mock_aws():
        created = create_resources(bucket=BUCKET, table=TABLE, region=REGION)
        created_state = _state()
    assert restored_state == created_state
    assert restored.keys() == created.keys() and restored["stream_arn"].startswith(
        f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/"
    )
