"""Deleting a finished job: DELETING, its image items removed in batches, then its tombstone."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import JobStatus
from chalicelib.core.errors import (
    CONDITION_FAILED,
    StorageError,
    client_error_code,
)
from chalicelib.store.background import BackgroundWork
from chalicelib.store.items import _stored, plain


class Deletion(BackgroundWork):
    """A job's deletion and its tombstone."""

    def mark_deleting(self, job_id: str, owner: str, deletion: Mapping[str, Any]) -> bool:
        """A finished job of this owner → DELETING, with its `deletion` (what to remove, what has
        been removed). False when it is not (or no longer) a finished job of this owner."""
        finished = {f":t{i}": s.value for i, s in enumerate(sorted(contracts.TERMINAL_JOB_STATUSES))}
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET #s = :deleting, deletion = :deletion, statusBeforeDeletion = #s",
                ConditionExpression=f"#o = :owner AND #s IN ({', '.join(finished)})",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues={
                    ":deleting": JobStatus.DELETING.value,
                    ":deletion": _stored(dict(deletion)),
                    ":owner": owner,
                    **finished,
                },
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def record_deletion(self, job_id: str, *, removed: Mapping[str, int] | None = None, **fields: Any) -> bool:
        """Progress of a job being deleted: `removed` adds to its counts, `fields` set (status,
        lastError, by...); `updatedAt` is always set, so the sweep sees the run is alive. False
        once the job is no longer being deleted (it is gone)."""
        sets = ["deletion.updatedAt = :now"]
        names: dict[str, str] = {"#s": "status"}
        values: dict[str, Any] = {":now": contracts.utc_now_iso(), ":deleting": JobStatus.DELETING.value}
        for index, (kind, count) in enumerate(sorted((removed or {}).items())):
            names[f"#r{index}"] = kind
            values[f":r{index}"] = int(count)
            # a number inside a map (docs/aws-notes.md#n60-lambda-remaining-time-and-counters-in-nested-maps)
            sets.append(f"deletion.removed.#r{index} = deletion.removed.#r{index} + :r{index}")
        for index, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{index}"] = name
            values[f":f{index}"] = _stored(value)
            sets.append(f"deletion.#f{index} = :f{index}")
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#s = :deleting",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def image_keys(self, job_id: str, limit: int) -> list[dict[str, str]]:
        """The table keys of up to `limit` of the job's image items (a deletion's next batch)."""
        page = self.table.query(
            KeyConditionExpression=self._images_condition(job_id), ProjectionExpression="pk, sk", Limit=limit
        )
        return [{"pk": item["pk"], "sk": item["sk"]} for item in page.get("Items", [])]

    def delete_items(self, keys: Sequence[Mapping[str, str]]) -> None:
        """BatchWriteItem deletes, 25 a call (the writer resends what DynamoDB leaves unprocessed)."""
        with self.table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=dict(key))

    def finish_deletion(self, job_id: str, owner: str, removed: Mapping[str, Any]) -> dict[str, Any]:
        """The job item gives way to its tombstone (what was removed), in one transaction, once
        its images and files are gone; the background note goes too."""
        tombstone = {
            "pk": contracts.job_pk(job_id),
            "sk": contracts.DELETED_JOB_SK,
            "jobId": job_id,
            "owner": owner,
            "deletedAt": contracts.utc_now_iso(),
            "removed": dict(removed),
            # removed by the table's TTL (docs/aws-notes.md#n52-s3-deleteobjects-dynamodb-ttl-and-transactions)
            contracts.TTL_ATTRIBUTE: int(time.time()) + contracts.DELETED_JOB_RETENTION_SECONDS,
        }
        try:
            self._transact(
                [
                    {
                        "Delete": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "ConditionExpression": "#o = :owner AND #s = :deleting",
                            "ExpressionAttributeNames": {"#o": "owner", "#s": "status"},
                            "ExpressionAttributeValues": {
                                ":owner": owner,
                                ":deleting": JobStatus.DELETING.value,
                            },
                        }
                    },
                    {"Put": {"TableName": self.table.name, "Item": _stored(tombstone)}},
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            done = self.deleted_job(job_id)  # another run finished it first
            if done is None or done.get("owner") != owner:
                raise StorageError(f"job {job_id} changed while it was deleted; it was not deleted") from exc
            return done
        self.background_work_done(contracts.BackgroundWork.DELETE, job_id)
        deleted: dict[str, Any] = plain(tombstone)
        return deleted

    def deleted_job(self, job_id: str) -> dict[str, Any] | None:
        """The tombstone of a deleted job, or None."""
        if not contracts.is_job_id(job_id):
            return None
        key = {"pk": contracts.job_pk(job_id), "sk": contracts.DELETED_JOB_SK}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        return plain(item) if item else None
