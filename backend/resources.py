"""Create Backdrop's stateful resources through the AWS APIs, from the contracts' definitions.

The tests and the local stack use this against moto; the CloudFormation templates declare the
same bucket settings and the same table schema (chalicelib.core.contracts.TABLE_*).
"""

from __future__ import annotations

from typing import Any

import boto3

from chalicelib.core import contracts


def create_resources(
    *, bucket: str, table: str, endpoint_url: str | None = None, region: str = "us-east-1"
) -> dict[str, Any]:
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region)
    # outside us-east-1, S3 wants the bucket's Region named (IllegalLocationConstraintException otherwise)
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **location)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    created = ddb.create_table(
        TableName=table,
        KeySchema=contracts.TABLE_KEY_SCHEMA,
        AttributeDefinitions=contracts.TABLE_ATTRIBUTES,
        GlobalSecondaryIndexes=contracts.TABLE_GSIS,
        StreamSpecification=contracts.TABLE_STREAM,
        BillingMode="PAY_PER_REQUEST",
    )
    return {
        "bucket": bucket,
        "table": table,
        "stream_arn": created["TableDescription"]["LatestStreamArn"],
    }
