"""Webhook deliveries, each owner's signing secret, and the job's notification claim."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import NotificationStatus
from chalicelib.core.errors import (
    CONDITION_FAILED,
    StorageError,
    client_error_code,
)
from chalicelib.store.base import StoreBase
from chalicelib.store.items import MAX_CAUSE_LENGTH, _stored


class Notifications(StoreBase):
    """Webhook deliveries, secrets and notification claims."""

    def record_webhook(self, job_id: str, delivery: Mapping[str, Any]) -> None:
        """What happened to the job's webhook (status, attempts, last error): shown on the job,
        never changing the job's own status."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET webhook = :w",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":w": _stored(dict(delivery))},
        )

    @staticmethod
    def _secret_key(owner: str) -> dict[str, str]:
        return {"pk": contracts.user_pk(owner), "sk": contracts.WEBHOOK_SECRET_SK}

    def webhook_secret(self, owner: str) -> dict[str, Any] | None:
        """{"secret", "createdAt"} of the owner's webhook signing secret, or None."""
        item = self.table.get_item(Key=self._secret_key(owner), ConsistentRead=True).get("Item")
        return {"secret": item["secret"], "createdAt": item["createdAt"]} if item else None

    def put_webhook_secret(self, owner: str, secret: str, *, replace: bool) -> dict[str, Any]:
        """Store the owner's secret; unless `replace`, keep (and return) one that exists already,
        so two first requests at once agree on one secret."""
        item = {**self._secret_key(owner), "owner": owner, "secret": secret, "createdAt": contracts.utc_now_iso()}
        try:
            self.table.put_item(Item=item, **({} if replace else {"ConditionExpression": "attribute_not_exists(pk)"}))
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            existing = self.webhook_secret(owner)
            if existing is None:
                raise StorageError("the webhook secret could not be stored") from exc
            return existing
        return {"secret": secret, "createdAt": item["createdAt"]}

    def record_notification_failure(
        self, job_id: str, error: str, cause: str, status: NotificationStatus = NotificationStatus.FAILED
    ) -> None:
        """The email could not be sent (FAILED, or NO_SUBSCRIPTION: the owner has no topic): said
        on the job, where the API and UI show it."""
        self._update(
            Key=self._job_key(job_id),
            UpdateExpression="SET notification = :n",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":n": {
                    "status": status.value,
                    "error": error,
                    "cause": cause[:MAX_CAUSE_LENGTH],
                    "at": contracts.utc_now_iso(),
                }
            },
        )

    # A job's one email (chalicelib/delivery/notify.py): whoever sends it claims it first, conditionally.

    def claim_notification(self, job_id: str, sender: str, stale_before: str) -> bool:
        """Take the right to send the job's email: nobody has, the last try FAILED, or a claim
        made before `stale_before` was never completed (its sender died). False if held or done."""
        return self._set_notification(
            job_id,
            {"status": NotificationStatus.SENDING.value, "by": sender, "at": contracts.utc_now_iso()},
            "attribute_not_exists(notification) OR notification.#s = :failed "
            "OR (notification.#s = :sending AND notification.#at < :stale)",
            {
                ":failed": NotificationStatus.FAILED.value,
                ":sending": NotificationStatus.SENDING.value,
                ":stale": stale_before,
            },
        )

    def set_notification(self, job_id: str, status: NotificationStatus, sender: str, **details: str) -> None:
        """What happened to the job's email (after a claim): SENT with its message id, or FAILED."""
        notification = {"status": status.value, "by": sender, "at": contracts.utc_now_iso(), **details}
        if "cause" in notification:
            notification["cause"] = notification["cause"][:MAX_CAUSE_LENGTH]
        self._set_notification(job_id, notification)

    def note_notification(self, job_id: str, status: NotificationStatus, sender: str) -> bool:
        """Say what happened without a claim (the workflow sent it; the owner declined it), unless
        the job already says something about its email."""
        return self._set_notification(
            job_id,
            {"status": status.value, "by": sender, "at": contracts.utc_now_iso()},
            "attribute_not_exists(notification)",
            {},
        )

    def _set_notification(
        self,
        job_id: str,
        notification: Mapping[str, Any],
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        kwargs: dict[str, Any] = {
            "Key": self._job_key(job_id),
            "UpdateExpression": "SET notification = :n",
            "ConditionExpression": "attribute_exists(pk)" + (f" AND ({condition})" if condition else ""),
            "ExpressionAttributeValues": {":n": dict(notification), **(values or {})},
        }
        names = {k: v for k, v in (("#s", "status"), ("#at", "at")) if condition and k in condition}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._update(**kwargs)
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True
