"""Deleting a job's files and records in bounded batches that can stop and resume anywhere.

A job being deleted is DELETING (chalicelib/jobs/control.py marks it) with a `deletion` map on
its item: whether its originals go too, what has been removed so far, who is working on it and
when it last moved. `JobDeleter.run` removes, in this order, the originals (if asked: they are
found through the image items, so before those go), the results, the reports, the workflow's
scratch files and then the image items, one batch at a time (S3 DeleteObjects takes 1,000 keys,
docs/aws-notes.md#n52-s3-deleteobjects-dynamodb-ttl-and-transactions; the image items go 1,000 a
page, 25 per BatchWriteItem), adding each batch to the counts on the job. Last, the job item gives
way to its tombstone. Before each batch it asks how much time is left and stops when a batch might
not fit: the API runs it inside its request for a small job, the background worker for a large one
(a `DELETE` task), which starts itself again to go on (chalicelib/workflow/background.py). Every step finds what is left by
listing it again, so a run that dies half-way loses nothing: the next one (a repeated DELETE, the
Lambda's own retry or the reconciler's sweep) goes on from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ClosingBy, ClosingStatus, JobStatus
from chalicelib.core.errors import service_failure
from chalicelib.store.jobs import JobStore

log = logging.getLogger(__name__)

S3_DELETE_BATCH: Final = 1000  # DeleteObjects takes at most 1,000 keys
IMAGE_ITEMS_BATCH: Final = 1000  # image items per query page: 40 BatchWriteItem calls of 25
# A Lambda run knows the time it has left (docs/aws-notes.md#n60-lambda-remaining-time-and-counters-in-nested-maps).
# The longest one batch may take: a listing and a DeleteObjects of 1,000 keys, or a page of 1,000
# image items deleted 25 a call (a few seconds each at most). A run starts a batch only with this
# much time left.
BATCH_SECONDS: Final = 10.0
# What `removed` counts, in the answer and on the tombstone.
REMOVED_KINDS: Final = ("images", "results", "reports", "scratch", "originals")
TimeLeft = Callable[[], float]  # seconds this run may still use


def new_deletion(originals: bool, by: str) -> dict[str, Any]:
    """The `deletion` map of a job that has just become DELETING."""
    now = contracts.utc_now_iso()
    return {
        "originals": originals,
        "requestedAt": now,
        "updatedAt": now,
        "by": by,
        "status": ClosingStatus.STARTED.value,
        "removed": {kind: 0 for kind in REMOVED_KINDS},
    }


def deleting_view(job: dict[str, Any]) -> dict[str, Any]:
    """A DELETING job's `deletion` as the API shows it: what goes, what has gone, by what."""
    deletion = job.get("deletion") or {}
    failed = deletion.get("status") == ClosingStatus.FAILED.value
    by = ClosingBy.RECONCILER if failed or deletion.get("by") == ClosingBy.RECONCILER else ClosingBy.BACKGROUND
    removed = deletion.get("removed") or {}
    return {
        "originals": bool(deletion.get("originals")),
        "requestedAt": deletion.get("requestedAt"),
        "updatedAt": deletion.get("updatedAt"),
        "removed": {k: int(removed.get(k) or 0) for k in REMOVED_KINDS},
        "deletingBy": by.value,
    }


@dataclass(frozen=True)
class DeletionRun:
    """How a run ended: `done` with the tombstone, or stopped for time with the job as it is."""

    done: bool
    job_id: str
    tombstone: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "done": self.done, "removed": (self.tombstone or {}).get("removed")}


class OutOfTime(Exception):
    """Not enough time left for another batch: the next run goes on."""


class JobDeleter:
    """Given the JobStore and an S3 client for the bucket."""

    def __init__(self, store: JobStore, s3: Any, bucket: str) -> None:
        self.store = store
        self.s3 = s3
        self.bucket = bucket

    def run(self, job_id: str, owner: str, time_left: TimeLeft | None = None) -> DeletionRun:
        """Go on deleting a DELETING job of this owner until it is gone (or time runs short).
        A job that is already gone answers done with its tombstone; one that is not being deleted
        is left alone (done, without a tombstone)."""
        job = self.store.get_job(job_id)
        if job is None or job.get("owner") != owner or job.get("status") != JobStatus.DELETING.value:
            tombstone = self.store.deleted_job(job_id)
            mine = tombstone if tombstone and tombstone.get("owner") == owner else None
            return DeletionRun(True, job_id, mine)
        deletion = job.get("deletion") or {}
        try:
            if deletion.get("originals") and not deletion.get("originalsDone"):
                self._delete_keys(job_id, "originals", self._originals(owner, job_id), time_left)
                self.store.record_deletion(job_id, originalsDone=True)
            for kind, prefix in (
                ("results", contracts.job_results_prefix(owner, job_id)),
                ("reports", contracts.job_reports_prefix(owner, job_id)),
                ("scratch", contracts.job_scratch_prefix(job_id)),
            ):
                self._delete_prefix(job_id, kind, prefix, time_left)
            self._delete_images(job_id, time_left)
        except OutOfTime:
            log.info("deletion of job %s goes on in another run", job_id)
            return DeletionRun(False, job_id)
        removed = dict((self.store.get_job(job_id) or job).get("deletion", {}).get("removed") or {})
        tombstone = self.store.finish_deletion(job_id, owner, {k: int(removed.get(k) or 0) for k in REMOVED_KINDS})
        log.info("job %s deleted: %s", job_id, tombstone["removed"])
        return DeletionRun(True, job_id, tombstone)

    # ------------------------------------------------------------------ batches

    @staticmethod
    def _check(time_left: TimeLeft | None) -> None:
        if time_left is not None and time_left() < BATCH_SECONDS:
            raise OutOfTime

    def _delete_prefix(self, job_id: str, kind: str, prefix: str, time_left: TimeLeft | None) -> None:
        """List a page (at most 1,000 keys), delete it, count it; until the prefix is empty."""
        while True:
            self._check(time_left)
            try:
                page = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=S3_DELETE_BATCH)
            except ClientError as exc:
                raise service_failure(exc, f"could not list {prefix}") from exc
            keys = [obj["Key"] for obj in page.get("Contents", [])]
            if not keys:
                return
            self.store.record_deletion(job_id, removed={kind: self._delete_batch(keys)})

    def _delete_keys(self, job_id: str, kind: str, keys: list[str], time_left: TimeLeft | None) -> None:
        for start in range(0, len(keys), S3_DELETE_BATCH):
            self._check(time_left)
            self.store.record_deletion(
                job_id, removed={kind: self._delete_batch(keys[start : start + S3_DELETE_BATCH])}
            )

    def _delete_images(self, job_id: str, time_left: TimeLeft | None) -> None:
        while True:
            self._check(time_left)
            keys = self.store.image_keys(job_id, IMAGE_ITEMS_BATCH)
            if not keys:
                return
            self.store.delete_items(keys)
            self.store.record_deletion(job_id, removed={"images": len(keys)})

    def _delete_batch(self, keys: list[str]) -> int:
        """One DeleteObjects call; counts the keys S3 says it deleted (a key already gone counts)."""
        try:
            answer = self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": False}
            )
        except ClientError as exc:
            raise service_failure(exc, "could not delete the job's files") from exc
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise service_failure(
                ClientError({"Error": {"Code": first.get("Code"), "Message": first.get("Message")}}, "DeleteObjects"),
                f"could not delete {len(errors)} of the job's files (first: {first.get('Key')})",
            )
        return len(answer.get("Deleted") or [])

    # ------------------------------------------------------------------ originals

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except ClientError as exc:
            raise service_failure(exc, f"could not list {prefix}") from exc
        return keys

    def _originals(self, owner: str, job_id: str) -> list[str]:
        """The job's originals that still exist: one listing per upload batch, never a key
        outside the owner's uploads."""
        images = self.store.images(job_id)
        wanted = {str(i.get("key", "")) for i in images}
        batches = sorted({ref.split("/", 1)[0] for ref in (str(i.get("imageRef", "")) for i in images) if "/" in ref})
        present: set[str] = set()
        for upload_id in batches:
            present.update(self._list(f"{contracts.upload_prefix(owner)}{upload_id}/"))
        return sorted(wanted & present)
