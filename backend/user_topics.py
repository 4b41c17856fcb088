"""Each user's own job-email topic: made with the user, removed with the user or the stage.

A job's email is published to its owner's topic (chalicelib/delivery/notify.py, the workflow's Notify
step), named `backdrop-<stage>_user-<sub>` (backend/resource_names.py) and subscribed to the
user's address alone, so it reaches nobody else. No filter policies: SNS allows 200 per topic
and 10,000 per account, while an account holds 100,000 standard topics by default
(docs/aws-notes.md#n69-sns-filter-policy-and-topic-quotas). Used by `backend.deploy`
(create-user, subscribe-user, delete-user, teardown, the doctor) with an email endpoint and by
the local stack and the tests with an SQS inbox standing in for it: one code path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from backend import resource_names
from chalicelib.core import contracts

# The same encryption at rest as the resources stack's other topics: the AWS-managed key for
# SNS (publishers in the account need no KMS grant for it; CloudWatch alarms could not use it,
# but nothing but Backdrop publishes here).
TOPIC_ATTRIBUTES = {"KmsMasterKeyId": "alias/aws/sns"}


@dataclass(frozen=True)
class UserTopic:
    topic_arn: str
    subscription_arn: str  # "pending confirmation" for an email address until the user confirms


def topic_name(stage: str, sub: str) -> str:
    return contracts.user_topic_name(resource_names.user_topic_prefix(stage), sub)


def subscribe(
    sns: Any, stage: str, sub: str, endpoint: str, *, protocol: str = "email", encrypt: bool = True
) -> UserTopic:
    """The user's topic (CreateTopic is idempotent for the same name and attributes) and their
    one subscription to it, without a filter policy: everything published there is theirs."""
    topic_arn = sns.create_topic(
        Name=topic_name(stage, sub),
        Attributes=TOPIC_ATTRIBUTES if encrypt else {},
        Tags=[{"Key": "backdrop:stage", "Value": stage}, {"Key": "backdrop:user", "Value": sub}],
    )["TopicArn"]
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint, ReturnSubscriptionArn=True)
    return UserTopic(topic_arn, subscription["SubscriptionArn"])


def topics(sns: Any, stage: str) -> Iterator[str]:
    """Every user topic of the stage (ListTopics: 100 a page, the whole account's topics)."""
    marker = ":" + resource_names.user_topic_prefix(stage)
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if marker in topic["TopicArn"]:
                yield topic["TopicArn"]


def delete(sns: Any, topic_arn: str) -> None:
    """DeleteTopic also deletes its subscriptions; a topic that is gone is not an error."""
    sns.delete_topic(TopicArn=topic_arn)


def sub_of(stage: str, topic_arn: str) -> str:
    return topic_arn.rsplit(":", 1)[-1].removeprefix(resource_names.user_topic_prefix(stage))
