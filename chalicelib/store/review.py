"""A job's review (open, closed, decisions) and the claims a reviewer's regeneration or retry takes."""

from __future__ import annotations

from collections.abc import Mapping

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.core.errors import (
    CONDITION_FAILED,
    client_error_code,
)
from chalicelib.store.items import REGENERATION_ORDINAL
from chalicelib.store.job_items import JobItems


class ReviewItems(JobItems):
    """Review items and the claims taken on an image or a job during review."""

    def open_review(self, job_id: str, token: str, deadline: str) -> None:
        """The workflow waits for the owner: keep its task token (a repeated open replaces it)."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET review = :r",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":r": {"status": contracts.ReviewStatus.WAITING.value, "token": token, "deadline": deadline}
            },
        )

    def close_review(self, job_id: str, status: contracts.ReviewStatus) -> None:
        """The wait is over: the token is forgotten, the outcome kept."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET review.#s = :s, review.closedAt = :t REMOVE review.#t",
            ConditionExpression="attribute_exists(review)",
            ExpressionAttributeNames={"#s": "status", "#t": "token"},
            ExpressionAttributeValues={":s": status.value, ":t": contracts.utc_now_iso()},
        )

    def set_review_decisions(self, job_id: str, decisions: Mapping[str, contracts.ReviewDecision]) -> list[str]:
        """Record each image's decision; answers the ids that are not succeeded images of the job."""
        refused = []
        for image_id, decision in decisions.items():
            try:
                self._update(
                    Key=self._image_key(job_id, image_id),
                    UpdateExpression="SET reviewDecision = :d",
                    ConditionExpression="attribute_exists(pk) AND #s = :ok",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":d": decision.value, ":ok": ImageStatus.SUCCEEDED.value},
                )
            except ClientError as exc:
                if client_error_code(exc) != CONDITION_FAILED:
                    raise
                refused.append(image_id)
        return refused

    def claim_regeneration(self, job_id: str, image_id: str, most: int) -> int | None:
        """Count one more regeneration of a SUCCEEDED image; None when it has `most` already (or
        is not SUCCEEDED), else the claim's ordinal: 1, 2, ... per image, never given twice (a
        released claim does not give its ordinal back), so each regeneration can take its own seed
        from it (contracts.derived_seed)."""
        try:
            answer = self._update(
                Key=self._image_key(job_id, image_id),
                UpdateExpression="ADD regenerations :one, #n :one",
                ConditionExpression="#s = :ok AND (attribute_not_exists(regenerations) OR regenerations < :most)",
                ExpressionAttributeNames={"#s": "status", "#n": REGENERATION_ORDINAL},
                ExpressionAttributeValues={":one": 1, ":ok": ImageStatus.SUCCEEDED.value, ":most": most},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return None
        return int(answer["Attributes"][REGENERATION_ORDINAL])

    def release_regeneration(self, job_id: str, image_id: str) -> None:
        """A claimed regeneration that made no job: it may be asked for again (with the next
        ordinal: its seed is not given to another)."""
        self._update(
            Key=self._image_key(job_id, image_id),
            UpdateExpression="ADD regenerations :minus",
            ExpressionAttributeValues={":minus": -1},
        )

    def count_review_decisions(self, job_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for image in self._query_all(KeyConditionExpression=self._images_condition(job_id)):
            if image.get("reviewDecision"):
                counts[image["reviewDecision"]] = counts.get(image["reviewDecision"], 0) + 1
        return counts

    def claim_retry(self, job_id: str, retry_job_id: str) -> str | None:
        """Name `retry_job_id` as the one retry of `job_id`'s failed images; None if that worked,
        else the retry it already has (one retry per failed set)."""
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression="SET retriedAs = :r",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(retriedAs)",
                ExpressionAttributeValues={":r": retry_job_id},
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            job = self.get_job(job_id) or {}
            return str(job.get("retriedAs") or "")
        return None

    def release_retry(self, job_id: str, retry_job_id: str) -> None:
        """Undo claim_retry when the retry job could not be written."""
        self._conditional_update(self._job_key(job_id), "REMOVE retriedAs", "retriedAs = :r", {":r": retry_job_id})
