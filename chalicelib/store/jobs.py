"""The jobs table, owned here: item shapes, keys, Decimals, pages and cursors, status transitions.

No other module reads or writes these items (the one other writer of the table is Powertools'
idempotency utility, with its own `IDEMPOTENCY#<owner>` items: chalicelib/api/idempotency.py). A job
is one item (`pk = JOB#<jobId>`, `sk = JOB`, listed per owner through the `byOwner` index) and
one item per image (`sk = IMAGE#<imageId>`); cached labels are one item per uploaded object.
Every status change is a named operation with its condition:

- a job goes SUBMITTED → RUNNING (the starter) → COMPLETED / PARTIAL / FAILED (the report), or
  from SUBMITTED / RUNNING to CANCELLED (its owner), which nothing overwrites; a finished job goes
  to DELETING (its owner), which nothing overwrites either, until its tombstone replaces it;
- an image goes PENDING → RUNNING → SUCCEEDED / FAILED (or CANCELLED), and never leaves a
  terminal status.

A deleted job leaves a tombstone (`sk = DELETED`, expired by the table's TTL) saying what was
removed, so a repeated DELETE answers the same. Each user's webhook signing secret is one item.
Work handed to a background run is noted under one partition (`pk = BACKGROUND`) until it is done,
for the reconciler's sweep.

The job item's `counts` (one number per image status) move in the same transaction as the image's
conditional update, so GET /jobs shows live progress and a repeated step cannot count twice.
"""

from __future__ import annotations

from chalicelib.store.closing import Closing
from chalicelib.store.costs import OutputsAndCosts
from chalicelib.store.deletion import Deletion
from chalicelib.store.items import (
    BATCH_GET_MAX_KEYS,
    BATCH_WRITE_MAX_ITEMS,
    CANCELLED_CAUSE,
    IMAGE_WRITE_UNITS_PER_S,
    MAX_CAUSE_LENGTH,
    MAX_IMAGES_PAGE_SIZE,
    OUTPUTS_REVISION,
    PARALLEL_CALLS,
    PARTITION_WRITE_UNITS_PER_S,
    REGENERATION_ORDINAL,
    TRANSACT_IMAGES_PER_CALL,
    TRANSACT_WRITE_MAX_ITEMS,
    UNFINISHED_CAUSE,
    WEBHOOK_PENDING,
    WRITE_CHUNK,
    Contention,
    LabelEntry,
    NewImage,
    Page,
    WritePacer,
    check_storable,
    plain,
    write_units,
)
from chalicelib.store.labels import LabelCache
from chalicelib.store.notify import Notifications
from chalicelib.store.review import ReviewItems


class JobStore(ReviewItems, OutputsAndCosts, Closing, Deletion, Notifications, LabelCache):
    """Every read and write of the jobs table, given its boto3 Table resource: one class per
    concern (chalicelib/store/*.py), composed here so callers see one store."""


# the table's item shapes and limits, importable from here as before the split
__all__ = [
    "JobStore",
    "BATCH_GET_MAX_KEYS",
    "BATCH_WRITE_MAX_ITEMS",
    "CANCELLED_CAUSE",
    "Contention",
    "IMAGE_WRITE_UNITS_PER_S",
    "LabelEntry",
    "MAX_CAUSE_LENGTH",
    "MAX_IMAGES_PAGE_SIZE",
    "NewImage",
    "OUTPUTS_REVISION",
    "PARALLEL_CALLS",
    "PARTITION_WRITE_UNITS_PER_S",
    "Page",
    "REGENERATION_ORDINAL",
    "TRANSACT_IMAGES_PER_CALL",
    "TRANSACT_WRITE_MAX_ITEMS",
    "UNFINISHED_CAUSE",
    "WEBHOOK_PENDING",
    "WRITE_CHUNK",
    "WritePacer",
    "check_storable",
    "plain",
    "write_units",
]
