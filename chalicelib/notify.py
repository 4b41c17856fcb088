"""A job's one email: who may send it, and how it reaches only the user who ran the job.

Two parties can send a job's email: the workflow's "Email the summary" step (the usual path) and
the reconciler (when the execution ended without it). The job's `notification` says who claimed
it and how it went; a claim is a conditional write (JobStore.claim_notification), so a repeated
reconciler run, or one racing another, sends at most one email.

Every job email is published with the message attribute `owner` (the user's Cognito `sub`):
each user's email subscription carries the filter policy {"owner": ["<sub>"]}
(contracts.owner_filter_policy), so SNS delivers a job's email to the user who ran it and to
nobody else (docs/aws-notes.md#n40-sns-subscription-filter-policies).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib import contracts
from chalicelib.contracts import NotificationStatus
from chalicelib.errors import client_error_code
from chalicelib.store import JobStore

# A claim older than this is from a sender that died before publishing (a Lambda runs 15 min at most).
STALE_CLAIM: Final = timedelta(minutes=15)


class NotificationSender(StrEnum):
    WORKFLOW = "workflow"
    RECONCILER = "reconciler"


def owner_attributes(owner: str) -> dict[str, dict[str, str]]:
    """SNS message attributes of a job email: what the users' filter policies match on."""
    return {contracts.NOTIFY_OWNER_ATTRIBUTE: {"DataType": "String", "StringValue": owner}}


class Notifier:
    """Publishes a job's email at most once (given an SNS client, the JobStore and the topic)."""

    def __init__(self, sns: Any, store: JobStore, topic_arn: str) -> None:
        self.sns = sns
        self.store = store
        self.topic_arn = topic_arn

    def send_once(
        self, job_id: str, owner: str, subject: str, message: str, sender: NotificationSender
    ) -> NotificationStatus | None:
        """Publish the job's email unless someone already has: SENT, or None when another sender
        holds or completed the claim. A refused publish is recorded as FAILED and raised again,
        so the caller's retry (Lambda's, the sweep's) can try later."""
        stale_before = (datetime.now(UTC) - STALE_CLAIM).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if not self.store.claim_notification(job_id, sender.value, stale_before):
            return None
        try:
            published = self.sns.publish(
                TopicArn=self.topic_arn, Subject=subject, Message=message, MessageAttributes=owner_attributes(owner)
            )
        except ClientError as exc:
            error = f"SNS.{client_error_code(exc) or 'Error'}"
            cause = str(exc.response.get("Error", {}).get("Message") or exc)
            self.store.set_notification(job_id, NotificationStatus.FAILED, sender.value, error=error, cause=cause)
            raise
        self.store.set_notification(
            job_id, NotificationStatus.SENT, sender.value, messageId=str(published.get("MessageId", ""))
        )
        return NotificationStatus.SENT

    def record(self, job_id: str, status: NotificationStatus, sender: NotificationSender) -> bool:
        """Note what happened without sending (the workflow sent it; the owner declined it)."""
        return self.store.note_notification(job_id, status, sender.value)
