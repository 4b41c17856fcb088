"""Start the workflow when a job is inserted (DynamoDB stream → manifest in S3 → StartExecution).

Streams deliver at least once, so this is idempotent: the manifest is written to the same key
with the same content, and the execution name is the job id, so Step Functions itself refuses a
second run of the same job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from chalicelib import contracts
from chalicelib.errors import client_error_code
from chalicelib.store import JobStore, plain

log = logging.getLogger(__name__)
_deserializer = TypeDeserializer()


def job_inserts(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The new job items among stream records (event name INSERT, sort key JOB); others are ignored."""
    jobs = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        new_image = (record.get("dynamodb") or {}).get("NewImage") or {}
        if new_image.get("sk", {}).get("S") != contracts.JOB_SK:
            continue
        jobs.append(plain({k: _deserializer.deserialize(v) for k, v in new_image.items()}))
    return jobs


class WorkflowStarter:
    def __init__(self, s3: Any, store: JobStore, stepfunctions: Any, bucket: str, state_machine_arn: str) -> None:
        self.s3 = s3
        self.store = store
        self.sfn = stepfunctions
        self.bucket = bucket
        self.state_machine_arn = state_machine_arn

    def manifest(self, job_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for item in self.store.images(job_id):
            entry = {"imageId": item["imageId"], "key": item["key"], "name": item.get("name") or item["imageId"]}
            for optional in ("labels", "boxes", "prompt"):
                if item.get(optional):
                    entry[optional] = item[optional]
            items.append(entry)
        items.sort(key=lambda e: e["imageId"])  # same records, same manifest bytes
        return items

    def start(self, job: Mapping[str, Any]) -> str | None:
        """Write the manifest and start the execution; returns its ARN (None if it already ran)."""
        job = plain(dict(job))
        job_id = job["jobId"]
        manifest = self.manifest(job_id)
        if not manifest:
            self.store.fail_job(job_id, "the job has no images")
            return None
        manifest_key = contracts.manifest_key(job_id)
        self.s3.put_object(
            Bucket=self.bucket, Key=manifest_key, Body=json.dumps(manifest).encode(), ContentType="application/json"
        )
        execution_input = {
            "jobId": job_id,
            "owner": job["owner"],
            "bucket": self.bucket,
            "manifestKey": manifest_key,
            "settings": job["settings"],
            "imageCount": len(manifest),
            "notify": job.get("notify") is not False,  # the owner's email, unless they declined it
        }
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=job_id, input=json.dumps(execution_input, sort_keys=True)
            )
        except ClientError as exc:
            if client_error_code(exc) == "ExecutionAlreadyExists":
                log.info("job %s already has an execution; repeated stream record ignored", job_id)
                return None
            raise  # throttling or an outage: the stream retries the batch
        execution_arn = str(response["executionArn"])
        # False when the workflow has already finished and written its final status: kept
        self.store.mark_running(job_id, execution_arn)
        return execution_arn

    def handle_records(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        started = []
        for job in job_inserts(records):
            arn = self.start(job)
            if arn:
                started.append(arn)
        return started
