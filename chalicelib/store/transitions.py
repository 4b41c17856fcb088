"""An image's status transitions (PENDING -> RUNNING -> finished), each conditional, with the job
item's counts moved in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ErrorCode, ImageStatus
from chalicelib.core.errors import (
    StorageError,
)
from chalicelib.store.images import ImageReads
from chalicelib.store.items import _TRANSITION_ATTEMPTS, _finished_fields, _stored, _usd


class ImageTransitions(ImageReads):
    """Conditional image status transitions."""

    def start_image(self, job_id: str, image_id: str) -> bool:
        """PENDING → RUNNING (a repeated start only refreshes startedAt). False, and nothing
        written, if the image has already finished."""
        fields = {"startedAt": contracts.utc_now_iso(), "errorCode": None, "cause": None}
        return self._transition(job_id, image_id, ImageStatus.RUNNING, fields)

    def set_image_status(
        self,
        job_id: str,
        image_id: str,
        status: ImageStatus,
        *,
        error_code: ErrorCode | str | None = None,
        cause: str | None = None,
        outputs: Sequence[Mapping[str, Any]] | None = None,
        attempts: Sequence[Mapping[str, Any]] | None = None,
        width: int | None = None,
        height: int | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
        verdict: str | None = None,
        model_calls: int | None = None,
        cost_usd: float | None = None,
    ) -> bool:
        """Move an image that has not finished to `status` (RUNNING, SUCCEEDED, FAILED, CANCELLED) with
        what is known about it; the job's counts move in the same transaction. False, and nothing
        written, if the image had already finished. Fields not given are removed when the image
        finishes (a FAILED image has no outputs, a SUCCEEDED one no error). `verdict`: the worst
        scorecard outcome of its outputs (what the gallery filters and sorts on); `model_calls`:
        the model calls that answered for it, and `cost_usd`: what it cost (its attempts' model
        calls and checks), each added to the job's running total in the same transaction, so
        once: the transition is conditional on the image not having finished."""
        status = ImageStatus(status)
        if status is ImageStatus.PENDING:
            raise ValueError("an image never goes back to PENDING")
        terminal = status in contracts.TERMINAL_IMAGE_STATUSES
        fields: dict[str, Any] = {"startedAt": started_at} if started_at else {}
        if terminal:
            fields.update(
                _finished_fields(
                    error_code=error_code,
                    cause=cause,
                    outputs=outputs,
                    attempts=attempts,
                    width=width,
                    height=height,
                    finished_at=finished_at,
                    verdict=verdict,
                    model_calls=model_calls,
                    cost_usd=cost_usd,
                )
            )
        return self._transition(job_id, image_id, status, fields)

    def _transition(self, job_id: str, image_id: str, status: ImageStatus, fields: Mapping[str, Any]) -> bool:
        """Optimistic transition: read the image's status, then update it on the condition that
        it is still that status, moving the job's counts in the same transaction."""
        # contention (a conflict on the job item, throttling) is retried inside _transact; this
        # loop only looks again when another writer really moved the image, which can happen at
        # most once per status
        for _ in range(_TRANSITION_ATTEMPTS):
            current = self._image(job_id, image_id)
            if current is None:
                raise StorageError(f"job {job_id} has no image {image_id}")
            before = ImageStatus(current["status"])
            if before in contracts.TERMINAL_IMAGE_STATUSES:
                return False
            try:
                self._write_transition(job_id, image_id, before, status, fields)
            except ClientError as exc:
                if not self._lost_race(exc):
                    raise
                continue  # another writer moved the image: look again
            return True
        raise StorageError(f"image {image_id} of job {job_id} kept changing; its status was not updated")

    def _transition_update(
        self, job_id: str, image_id: str, before: ImageStatus, after: ImageStatus, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The image's UpdateItem (as a TransactWriteItems Update) moving it from `before` to
        `after` with `fields` (None: removed), on the condition that it is still `before`."""
        names = {"#s": "status", "#u": "updatedAt"}
        values: dict[str, Any] = {":after": after.value, ":before": before.value, ":now": contracts.utc_now_iso()}
        sets = ["#s = :after", "#u = :now"]
        # the index keys move in the same write as the status and verdict (store.images_page)
        keys = contracts.image_view_keys(job_id, image_id, after.value, fields.get("verdict"))
        if "verdict" not in fields:  # the verdict is not written: its key stays as it is
            del keys[contracts.VERDICT_INDEX_PK]
        for i, (name, value) in enumerate(keys.items()):
            names[f"#k{i}"] = name
            values[f":k{i}"] = value
            sets.append(f"#k{i} = :k{i}")
        removes = []
        for i, (name, value) in enumerate(fields.items()):
            names[f"#f{i}"] = name
            if value is None:
                removes.append(f"#f{i}")
            else:
                values[f":f{i}"] = value
                sets.append(f"#f{i} = :f{i}")
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return {
            "TableName": self.table.name,
            "Key": self._image_key(job_id, image_id),
            "UpdateExpression": update,
            "ConditionExpression": "#s = :before",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _stored(values),
        }

    def _write_transition(
        self, job_id: str, image_id: str, before: ImageStatus, after: ImageStatus, fields: Mapping[str, Any]
    ) -> None:
        image_update = self._transition_update(job_id, image_id, before, after, fields)
        if before is after:  # a repeated start: no count moves
            self._update(**{k: v for k, v in image_update.items() if k != "TableName"})
            return
        counts_update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": self._job_key(job_id),
            "UpdateExpression": "SET counts.#before = counts.#before - :one, "
            "counts.#after = if_not_exists(counts.#after, :zero) + :one",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#before": before.value, "#after": after.value},
            "ExpressionAttributeValues": {":one": 1, ":zero": 0},
        }
        adds = []
        calls = fields.get("modelCalls")
        if calls:  # the job's running total of answered model calls: its actual cost
            adds.append(f"{contracts.JOB_MODEL_CALLS_ATTRIBUTE} :calls")
            counts_update["ExpressionAttributeValues"][":calls"] = int(calls)
        cost = fields.get("costUsd")
        if cost:  # the job's running total of what it cost (chalicelib/catalogue/costs.py)
            adds.append("#cost :cost")
            counts_update["ExpressionAttributeNames"]["#cost"] = contracts.JOB_COST_ATTRIBUTE
            counts_update["ExpressionAttributeValues"][":cost"] = _usd(cost)
        if fields.get("verdict"):  # per-verdict counts, so the gallery skips empty verdicts
            adds.append("#verdict :one")
            counts_update["ExpressionAttributeNames"]["#verdict"] = contracts.verdict_count_attribute(fields["verdict"])
        if adds:
            counts_update["UpdateExpression"] += " ADD " + ", ".join(adds)
        # the resource's client serializes Python values itself, as the Table does
        self._transact([{"Update": image_update}, {"Update": counts_update}])
