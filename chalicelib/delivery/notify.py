"""A job's one email: who may send it, and how it reaches only the user who ran the job.

Two parties can send a job's email: the workflow's "Email the summary" step (the usual path) and
the reconciler (when the execution ended without it). The job's `notification` says who claimed
it and how it went; a claim is a conditional write (JobStore.claim_notification), so a repeated
reconciler run, or one racing another, sends at most one email.

Every user has their own job-email topic, named after their Cognito `sub` and subscribed to
their address alone (backend/user_topics.py, made by `backend.deploy create-user`): a job's email
is published to its owner's topic (contracts.user_topic_arn), so it reaches the user who ran it
and nobody else, whatever the number of users (one shared topic with a filter policy per user
stopped at SNS's 200 filter policies per topic: docs/aws-notes.md#n69-sns-filter-policy-and-topic-quotas).
An owner without a topic is recorded as NO_SUBSCRIPTION: final, and never a failure of the job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import NotificationStatus
from chalicelib.core.errors import client_error_code
from chalicelib.store.jobs import JobStore

# A claim older than this is from a sender that died before publishing (a Lambda runs 15 min at most).
STALE_CLAIM: Final = timedelta(minutes=15)


class NotificationSender(StrEnum):
    WORKFLOW = "workflow"
    RECONCILER = "reconciler"


def owner_attributes(owner: str) -> dict[str, dict[str, str]]:
    """SNS message attributes of a job email: whose it is."""
    return {contracts.NOTIFY_OWNER_ATTRIBUTE: {"DataType": "String", "StringValue": owner}}


def no_topic_cause(topic_arn: str) -> str:
    return (
        f"the job's owner has no job-email topic ({topic_arn}): nobody to email; "
        "`python -m backend.deploy subscribe-user --email <their address>` makes it"
    )


def is_missing_topic(error: str, cause: str) -> bool:
    """Whether a failed publish said the topic does not exist: SNS's `NotFound` (404) as boto3
    raises it, or as the workflow's Notify step reports it (`SNS.NotFoundException`, with
    "Error Code: NotFound" in its cause)."""
    return error in ("NotFound", "SNS.NotFound", "SNS.NotFoundException") or "Error Code: NotFound" in cause


class Notifier:
    """Publishes a job's email at most once, to its owner's own topic (given an SNS client, the
    JobStore and the prefix of every user topic ARN, config.user_topic_arn_prefix)."""

    def __init__(self, sns: Any, store: JobStore, topic_arn_prefix: str) -> None:
        self.sns = sns
        self.store = store
        self.topic_arn_prefix = topic_arn_prefix

    def send_once(
        self, job_id: str, owner: str, subject: str, message: str, sender: NotificationSender
    ) -> NotificationStatus | None:
        """Publish the job's email unless someone already has: SENT, NO_SUBSCRIPTION when the owner
        has no topic, or None when another sender holds or completed the claim. Any other refused
        publish is recorded as FAILED and raised again, so the caller's retry (Lambda's, the
        sweep's) can try later."""
        stale_before = (datetime.now(UTC) - STALE_CLAIM).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if not self.store.claim_notification(job_id, sender.value, stale_before):
            return None
        try:
            topic_arn = contracts.user_topic_arn(self.topic_arn_prefix, owner)
        except ValueError:  # no topic can be named after it (a Cognito sub always can): it has none
            return self._no_subscription(job_id, sender, f"{self.topic_arn_prefix}{owner}")
        try:
            published = self.sns.publish(
                TopicArn=topic_arn, Subject=subject, Message=message, MessageAttributes=owner_attributes(owner)
            )
        except ClientError as exc:
            code = client_error_code(exc) or "Error"
            if is_missing_topic(code, ""):
                return self._no_subscription(job_id, sender, topic_arn)
            error = f"SNS.{code}"
            cause = str(exc.response.get("Error", {}).get("Message") or exc)
            self.store.set_notification(job_id, NotificationStatus.FAILED, sender.value, error=error, cause=cause)
            raise
        self.store.set_notification(
            job_id, NotificationStatus.SENT, sender.value, messageId=str(published.get("MessageId", ""))
        )
        return NotificationStatus.SENT

    def _no_subscription(self, job_id: str, sender: NotificationSender, topic_arn: str) -> NotificationStatus:
        status = NotificationStatus.NO_SUBSCRIPTION
        self.store.set_notification(job_id, status, sender.value, cause=no_topic_cause(topic_arn))
        return status

    def record(self, job_id: str, status: NotificationStatus, sender: NotificationSender) -> bool:
        """Note what happened without sending (the workflow sent it; the owner declined it)."""
        return self.store.note_notification(job_id, status, sender.value)
