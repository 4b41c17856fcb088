"""A job's items as submitted and its status: SUBMITTED, RUNNING, then finished, failed or cancelled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib.core import config, contracts
from chalicelib.core.contracts import ImageStatus, JobStatus
from chalicelib.core.errors import (
    CONDITION_FAILED,
    client_error_code,
)
from chalicelib.store.base import StoreBase
from chalicelib.store.items import (
    BATCH_WRITE_MAX_ITEMS,
    IMAGE_WRITE_UNITS_PER_S,
    MAX_CAUSE_LENGTH,
    WEBHOOK_PENDING,
    NewImage,
    Page,
    WritePacer,
    _decode_cursor,
    _encode_cursor,
    _limit,
    _stored,
    check_storable,
    plain,
    write_units,
)


class JobItems(StoreBase):
    """Job items: written, read, listed, moved through their statuses."""

    def image_items(
        self,
        job_id: str,
        images: Sequence[NewImage],
        *,
        expires: int,
        status: ImageStatus = ImageStatus.PENDING,
        cause: str | None = None,
    ) -> list[dict[str, Any]]:
        """A job's image items as they are first written: PENDING, or (a job cancelled before its
        images were written) already CANCELLED with `cause`."""
        items = []
        for image in images:
            item: dict[str, Any] = {
                **self._image_key(job_id, image.image_id),
                "imageId": image.image_id,
                "imageRef": image.image_ref,
                "key": image.key,
                "name": image.name,
                "labels": list(image.labels),
                # the only numbers: as Decimals directly (a JSON round trip per item costs ~1 s of
                # CPU for 10,000 images)
                "boxes": [[Decimal(str(v)) for v in box] for box in image.boxes],
                "status": status.value,
                **contracts.image_view_keys(job_id, image.image_id, status.value, None),
                contracts.TTL_ATTRIBUTE: expires,
            }
            if cause:
                item["cause"] = cause
            if image.prompt:
                item["prompt"] = image.prompt
            if image.background:
                item["background"] = dict(image.background)
            items.append(item)
        return items

    def put_job(
        self,
        *,
        job_id: str,
        owner: str,
        model: str,
        settings: Mapping[str, Any],
        images: Sequence[NewImage],
        created_at: str | None = None,
        notify: bool = True,
        email: str | None = None,
        webhook_url: str | None = None,
        retry_of: str | None = None,
        estimate: Mapping[str, Any] | None = None,
        images_file: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Write a SUBMITTED job, whose INSERT on the stream starts the workflow. `notify`: whether
        its email goes out; `email`: the owner's address when they submitted it; `retry_of`: the
        job whose failed images it sends again; `estimate`: what POST /jobs said it would cost
        (kept, so the job's views say the same figure).

        `images_file` (POST /jobs): the S3 key of `images` as records (NewImage.to_record). Only
        the job item is written, with its image count and that key (`imagesPending`); the starter
        writes the image items at the partition's pace (write_images) before it starts the
        workflow. A 10,000-image submit is then one PutItem, not ten seconds of one partition's
        writes inside API Gateway's 29 s, and nothing is written before the job item, so no failure
        leaves images without their job (docs/aws-notes.md#n83-dynamodb-partition-write-rate).

        Without it (tests, benchmarks, tools with a complete job at hand): the images, then the
        job item, checked storable before the first write."""
        created_at = created_at or contracts.utc_now_iso()
        # the job's items go when its results do (the bucket's lifecycle rules)
        expires = config.expires_at(config.RESULT_RETENTION_DAYS)
        job = {
            **self._job_key(job_id),
            "jobId": job_id,
            "owner": owner,
            "createdAt": created_at,
            "status": JobStatus.SUBMITTED.value,
            "model": model,
            "settings": dict(settings),
            "imageCount": len(images),
            "counts": {s.value: (len(images) if s is ImageStatus.PENDING else 0) for s in ImageStatus},
            "gsi1pk": contracts.owner_index_pk(owner),
            "gsi1sk": f"{created_at}#{job_id}",
            contracts.TTL_ATTRIBUTE: expires,
            "notify": notify,
            # its image items carry the index keys of a filtered page (store.images_page)
            contracts.JOB_VIEW_KEYS_ATTRIBUTE: True,
        }
        if email:
            job["email"] = email
        if webhook_url:
            job["webhook"] = {"url": webhook_url, "status": WEBHOOK_PENDING}
        if retry_of:
            job["retryOf"] = retry_of
        if name:  # the batch's name for people (POST /jobs `name`)
            job["name"] = name
        if estimate is not None:
            job[contracts.JOB_ESTIMATE_ATTRIBUTE] = dict(estimate)
        if images_file:
            job[contracts.JOB_IMAGES_PENDING_ATTRIBUTE] = images_file
        stored = _stored(job)
        check_storable(stored)
        if not images_file:
            self._write_all(self.image_items(job_id, images, expires=expires))
        self.table.put_item(Item=stored, ConditionExpression="attribute_not_exists(pk)")
        return cast(dict[str, Any], plain(job))

    def write_images(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        write_units_per_s: float = IMAGE_WRITE_UNITS_PER_S,
        pacer: WritePacer | None = None,
    ) -> None:
        """Put one job's image items (one partition), BatchWriteItem 25 at a time, one call after
        the other at no more than `write_units_per_s`; what DynamoDB leaves unprocessed, or a
        call it throttles whole, is sent again after a backoff with full jitter, as its API
        reference asks (docs/aws-notes.md#n84-batchwriteitem-unprocessed-items). Puts replace:
        writing the same items again changes nothing. A write made in several calls shares one
        `pacer` (JobStore.write_pacer), or each call would start with a full second's allowance."""
        pacer = pacer or self.write_pacer(write_units_per_s)
        for start in range(0, len(items), BATCH_WRITE_MAX_ITEMS):
            batch = items[start : start + BATCH_WRITE_MAX_ITEMS]
            pacer.spend(sum(write_units(item) for item in batch))
            self._batch_put([{"PutRequest": {"Item": dict(item)}} for item in batch])

    def write_pacer(self, write_units_per_s: float = IMAGE_WRITE_UNITS_PER_S) -> WritePacer:
        """One pace for a job's image writes, however many calls they take."""
        return WritePacer(write_units_per_s, self.clock, self.sleep)

    def images_written(
        self, job_id: str, status: JobStatus, counts: Mapping[str, int] | None = None
    ) -> dict[str, Any] | None:
        """Every image item of the job is written: `imagesPending` goes, on the condition that the
        job still waits for them and is `status` (with `counts`: its counts are set too, for
        images written CANCELLED). The job as it now is, or None when the condition failed."""
        update = "REMOVE #p"
        values: dict[str, Any] = {":s": status.value}
        names = {"#p": contracts.JOB_IMAGES_PENDING_ATTRIBUTE, "#s": "status"}
        if counts is not None:
            update = "SET #c = :c " + update
            names["#c"] = "counts"
            values[":c"] = dict(counts)
        try:
            response = self.table.update_item(
                Key=self._job_key(job_id),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#p) AND #s = :s",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return None
        return cast(dict[str, Any], plain(response["Attributes"]))

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        if not contracts.is_job_id(job_id):
            return None
        item = self.table.get_item(Key=self._job_key(job_id), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def list_jobs(self, owner: str, limit: int = 20, cursor: str | None = None) -> Page:
        """The owner's jobs, newest first, one page at a time."""
        index_pk = contracts.owner_index_pk(owner)
        kwargs: dict[str, Any] = {
            "IndexName": contracts.OWNER_INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(index_pk),
            "ScanIndexForward": False,
            "Limit": _limit(limit, contracts.MAX_JOBS_PAGE_SIZE),
        }
        scope = f"jobs:{owner}"
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(
                cursor, scope, {"gsi1pk": index_pk}, {"pk", "sk", "gsi1pk", "gsi1sk"}
            )
        page = self.table.query(**kwargs)
        return Page([plain(i) for i in page.get("Items", [])], _encode_cursor(scope, page.get("LastEvaluatedKey")))

    def mark_running(self, job_id: str, execution_arn: str) -> bool:
        """SUBMITTED → RUNNING with its execution; False if the job had moved on already (the
        workflow may even have finished and written its final status: that is kept)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET #s = :running, executionArn = :arn, startedAt = :now",
            "#s = :submitted",
            {
                ":running": JobStatus.RUNNING.value,
                ":submitted": JobStatus.SUBMITTED.value,
                ":arn": execution_arn,
                ":now": contracts.utc_now_iso(),
            },
        )

    def fail_job(self, job_id: str, cause: str) -> bool:
        """A job that could not run at all ends FAILED with its cause (never from a final status)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET #s = :failed, cause = :cause, finishedAt = :now",
            "attribute_exists(pk) AND #s IN (:submitted, :running)",
            {
                ":failed": JobStatus.FAILED.value,
                ":cause": cause[:MAX_CAUSE_LENGTH],
                ":now": contracts.utc_now_iso(),
                ":submitted": JobStatus.SUBMITTED.value,
                ":running": JobStatus.RUNNING.value,
            },
        )

    def finish_job(
        self,
        job_id: str,
        status: JobStatus,
        counts: Mapping[str, int],
        report_keys: Mapping[str, str],
        finished_at: str,
    ) -> bool:
        """The job's final status, counts and report keys (written again by a repeated report).
        False, and nothing written, when the job was cancelled meanwhile and `status` is not
        CANCELLED: a cancellation is never overwritten."""
        values: dict[str, Any] = {
            ":s": status.value,
            ":c": dict(counts),
            ":f": finished_at,
            ":r": dict(report_keys),
        }
        # a job being deleted stays so (a late report of its cancel closing changes nothing)
        condition = "attribute_exists(pk) AND #s <> :deleting"
        values[":deleting"] = JobStatus.DELETING.value
        if status is not JobStatus.CANCELLED:
            condition += " AND #s <> :cancelled"
            values[":cancelled"] = JobStatus.CANCELLED.value
        return self._conditional_update(
            self._job_key(job_id), "SET #s = :s, counts = :c, finishedAt = :f, reportKeys = :r", condition, values
        )

    def cancel_job(self, job_id: str) -> bool:
        """SUBMITTED / RUNNING → CANCELLED; False if the job had finished (or been cancelled)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET #s = :cancelled, cancelledAt = :now",
            "attribute_exists(pk) AND #s IN (:submitted, :running)",
            {
                ":cancelled": JobStatus.CANCELLED.value,
                ":now": contracts.utc_now_iso(),
                ":submitted": JobStatus.SUBMITTED.value,
                ":running": JobStatus.RUNNING.value,
            },
        )
