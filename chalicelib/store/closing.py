"""Closing a job's unfinished images: the cancel's claim on closing, and the batched close itself
(docs/aws-notes.md#n99-batched-closing-of-a-cancelled-job)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ErrorCode, ImageStatus, JobStatus
from chalicelib.core.errors import (
    cancellation_codes,
)
from chalicelib.store.items import TRANSACT_IMAGES_PER_CALL, UNFINISHED_CAUSE, _finished_fields, _stored, plain
from chalicelib.store.transitions import ImageTransitions


class Closing(ImageTransitions):
    """Cancel closing claims and the batched close of unfinished images."""

    def hand_closing_to_starter(self, job_id: str, claim: Mapping[str, Any]) -> bool:
        """A job cancelled before its image items were all written: its closing is left to the
        starter, which writes them CANCELLED and then starts it (chalicelib/workflow/starter.py). True when
        its images were still pending at this write (the starter's `images_written` then sees
        the claim); False when they were written first (the cancel closes the job as usual)."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET closing = :closing",
            "#s = :cancelled AND attribute_exists(imagesPending) AND attribute_not_exists(closing)",
            {":closing": _stored(dict(claim)), ":cancelled": JobStatus.CANCELLED.value},
        )

    def claim_cancel_closing(self, job_id: str, claim: Mapping[str, Any], failed_status: str) -> bool:
        """Claim the hand-off of a cancelled job's closing (its unfinished images, report and
        webhook) to a background run: True for the one caller that may start it. A claim whose
        start failed (`closing.status` is `failed_status`) may be taken again."""
        return self._conditional_update(
            self._job_key(job_id),
            "SET closing = :closing",
            "#s = :cancelled AND attribute_not_exists(reportKeys)"
            " AND (attribute_not_exists(closing) OR closing.#s = :failed)",
            {
                ":closing": _stored(dict(claim)),
                ":cancelled": JobStatus.CANCELLED.value,
                ":failed": failed_status,
            },
        )

    def record_cancel_closing(self, job_id: str, closing: Mapping[str, Any]) -> None:
        """How the hand-off of a cancelled job's closing went (`claim_cancel_closing`)."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET closing = :closing",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":closing": _stored(dict(closing))},
        )

    def close_unfinished(
        self,
        job_id: str,
        cause: str = UNFINISHED_CAUSE,
        *,
        code: ErrorCode | None = ErrorCode.INTERNAL_ERROR,
        status: ImageStatus = ImageStatus.FAILED,
    ) -> list[dict[str, Any]]:
        """Every image the workflow never finished ends `status` (FAILED, or CANCELLED for a
        cancelled job) with `code` and `cause`; returns all the job's images as they now are."""
        status = ImageStatus(status)
        images = self.images(job_id)
        unfinished = [i for i in images if i.get("status") not in contracts.TERMINAL_IMAGE_STATUSES]
        if not unfinished:
            return images
        # a 10,000-image job closed one image at a time was 20,000 sequential round trips (a read
        # and a transaction each): here up to TRANSACT_IMAGES_PER_CALL images and the job's counts
        # are one transaction, from the statuses this one Query read
        fields = _finished_fields(error_code=code, cause=cause)
        for start in range(0, len(unfinished), TRANSACT_IMAGES_PER_CALL):
            batch = unfinished[start : start + TRANSACT_IMAGES_PER_CALL]
            if not self._close_batch(job_id, batch, status, fields):
                # one of them moved since it was read (it finished on its own, or started): each
                # one as before, so an image that finished keeps its own outcome
                for image in batch:
                    self.set_image_status(job_id, image["imageId"], status, error_code=code, cause=cause)
        # the whole job as it now is (a consistent read: the writes above are in it)
        return [
            plain(i)
            for i in self._query_all(KeyConditionExpression=self._images_condition(job_id), ConsistentRead=True)
        ]

    def _close_batch(
        self, job_id: str, images: Sequence[Mapping[str, Any]], status: ImageStatus, fields: Mapping[str, Any]
    ) -> bool:
        """Move `images` (unfinished, in the status each was read in) to `status` and the job's
        counts with them, in one transaction. False, and nothing written, when any of them is no
        longer in the status it was read in."""
        moved = Counter(str(i["status"]) for i in images)
        items: list[dict[str, Any]] = [
            {"Update": self._transition_update(job_id, str(i["imageId"]), ImageStatus(i["status"]), status, fields)}
            for i in images
        ]
        names = {"#after": status.value}
        values: dict[str, Any] = {":total": len(images), ":zero": 0}
        sets = []
        for n, (before, count) in enumerate(sorted(moved.items())):
            names[f"#b{n}"] = before
            values[f":b{n}"] = count
            sets.append(f"counts.#b{n} = counts.#b{n} - :b{n}")
        sets.append("counts.#after = if_not_exists(counts.#after, :zero) + :total")
        items.append(
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": self._job_key(job_id),
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        )
        try:
            self._transact(items)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if codes and codes[-1] != "ConditionalCheckFailed" and "ConditionalCheckFailed" in codes[:-1]:
                return False  # an image moved meanwhile; the job item is there
            raise
        return True
