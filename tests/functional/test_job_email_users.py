"""Job emails reach every user, the 201st and the 250th too (issue #24), and SNS's filter-policy
quotas are enforced on moto as AWS enforces them (backend/local/sns_rules.py, installed by the
`aws_mock` fixture)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from backend.local import sns_rules
from chalicelib.core import contracts

STAGE = "test"
USERS = 250


def _queue(name: str) -> tuple[str, str]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _emails(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    got: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return got


def _filter(owner: str) -> dict[str, str]:
    return {"FilterPolicy": json.dumps({contracts.NOTIFY_OWNER_ATTRIBUTE: [owner]})}


# ------------------------------------------------------------------------ the emulated quota


def test_sns_refuses_the_201st_filter_policy_on_a_topic_as_aws_does(aws_mock: None) -> None:
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="shared")["TopicArn"]
    for i in range(sns_rules.FILTER_POLICIES_PER_TOPIC):  # the old design: one filtered subscription per user
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=f"user{i}@example.com", Attributes=_filter(str(i)))
    with pytest.raises(ClientError) as refused:
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="user200@example.com", Attributes=_filter("200"))
    error = refused.value.response
    assert error["Error"]["Code"] == "FilterPolicyLimitExceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "per topic" in error["Error"]["Message"]
    # AWS makes no subscription when it refuses
    endpoints = [
        s["Endpoint"]
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
        for s in page["Subscriptions"]
    ]
    assert len(endpoints) == 200 and "user200@example.com" not in endpoints
    # a subscription without a policy is still welcome; attaching one to it is refused the same way
    plain = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="plain@example.com", ReturnSubscriptionArn=True)
    with pytest.raises(ClientError, match="FilterPolicyLimitExceeded"):
        sns.set_subscription_attributes(
            SubscriptionArn=plain["SubscriptionArn"], AttributeName="FilterPolicy", AttributeValue='{"owner": ["x"]}'
        )
    # replacing a policy adds none
    first = next(
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        if s["Endpoint"] == "user0@example.com"
    )
    sns.set_subscription_attributes(
        SubscriptionArn=first, AttributeName="FilterPolicy", AttributeValue='{"owner": ["y"]}'
    )
    # the quota is per topic: another topic takes policies
    other = sns.create_topic(Name="other")["TopicArn"]
    sns.subscribe(TopicArn=other, Protocol="email", Endpoint="user200@example.com", Attributes=_filter("200"))


def test_sns_refuses_a_filter_policy_past_the_accounts_quota(aws_mock: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sns_rules, "FILTER_POLICIES_PER_ACCOUNT", 3)  # 10,000 on AWS: the rule, not the count
    sns = boto3.client("sns")
    for i in range(3):
        topic = sns.create_topic(Name=f"t{i}")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=f"u{i}@example.com", Attributes=_filter(str(i)))
    topic = sns.create_topic(Name="t3")["TopicArn"]
    with pytest.raises(ClientError, match="per account"):
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="u3@example.com", Attributes=_filter("3"))


# ------------------------------------------------------------------------ 250 users


@pytest.mark.slow  # ~5 s of CPU: 250 users: make test, not make test-fast
def test_job_emails_reach_the_201st_and_the_250th_user_and_nobody_else(store: Any) -> None:
    """250 users made as the local stack makes them (its create_user: the user's own topic, an SQS
    inbox standing in for their address), then the emails of a job of the 201st and of the 250th,
    sent by the reconciler's notifier: each reaches its owner's inbox, and no one else's."""
    from backend import resource_names
    from backend.local.stack import LOCAL_ACCOUNT, add_user
    from chalicelib.delivery.notify import NotificationSender, Notifier

    users = [str(uuid.uuid4()) for _ in range(USERS)]
    inboxes = {}
    for n, sub in enumerate(users):
        url, arn = _queue(f"inbox-{n}")
        add_user(boto3.client, STAGE, sub, arn)  # refused at the 201st with one shared filtered topic
        inboxes[sub] = url
    prefix = resource_names.user_topic_arn_prefix(STAGE, "us-east-1", LOCAL_ACCOUNT, "aws")
    notifier = Notifier(boto3.client("sns"), store, prefix)
    jobs = {}
    for sub in (users[200], users[-1]):
        job_id = contracts.new_job_id()
        store.put_job(job_id=job_id, owner=sub, model="stability-inpaint", settings={}, images=[])
        jobs[sub] = job_id
        sent = notifier.send_once(job_id, sub, f"Backdrop job {job_id}", "done", NotificationSender.RECONCILER)
        assert sent == contracts.NotificationStatus.SENT
    for sub, url in inboxes.items():
        got = _emails(url)
        if sub in jobs:
            assert [e["Subject"] for e in got] == [f"Backdrop job {jobs[sub]}"], sub
            assert got[0]["MessageAttributes"][contracts.NOTIFY_OWNER_ATTRIBUTE]["Value"] == sub
        else:
            assert got == [], sub
    # no filter policy anywhere: the quota that stopped user 201 is not in the way of user 10,000
    sns = boto3.client("sns")
    for page in sns.get_paginator("list_subscriptions").paginate():
        for subscription in page["Subscriptions"]:
            attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
            assert "FilterPolicy" not in attributes["Attributes"]


# ------------------------------------------------------------------------ a user without a topic


def test_an_owner_without_a_topic_is_recorded_and_nothing_is_raised(store: Any) -> None:
    from backend import resource_names
    from chalicelib.delivery.notify import NotificationSender, Notifier

    prefix = resource_names.user_topic_arn_prefix(STAGE, "us-east-1", "123456789012", "aws")
    notifier = Notifier(boto3.client("sns"), store, prefix)
    job_id = contracts.new_job_id()
    store.put_job(job_id=job_id, owner="no-topic-user", model="stability-inpaint", settings={}, images=[])
    sent = notifier.send_once(job_id, "no-topic-user", "s", "m", NotificationSender.RECONCILER)
    assert sent == contracts.NotificationStatus.NO_SUBSCRIPTION
    notification = store.get_job(job_id)["notification"]
    assert notification["status"] == "NO_SUBSCRIPTION"
    assert "backdrop-test_user-no-topic-user" in notification["cause"] and "subscribe-user" in notification["cause"]
    # final: no later sender claims it again
    assert notifier.send_once(job_id, "no-topic-user", "s", "m", NotificationSender.RECONCILER) is None


@pytest.mark.parametrize(
    ("error", "cause", "status"),
    [
        # what the workflow's Notify step reports when the owner's topic does not exist
        (
            "SNS.NotFoundException",
            "Topic does not exist (Service: AmazonSNS; Status Code: 404; Error Code: NotFound; Request ID: x)",
            "NO_SUBSCRIPTION",
        ),
        ("SNS.InternalErrorException", "Internal error (Service: AmazonSNS; Error Code: InternalError)", "FAILED"),
        ("States.Timeout", "", "FAILED"),
    ],
)
def test_the_workflows_email_failure_says_whether_the_owner_has_no_topic(
    store: Any, error: str, cause: str, status: str
) -> None:
    from chalicelib.delivery.report import Reporter

    job_id = contracts.new_job_id()
    store.put_job(job_id=job_id, owner="o", model="stability-inpaint", settings={}, images=[])
    answer = Reporter(boto3.client("s3"), store).record_notification_failure(
        {"jobId": job_id, "notifyError": {"Error": error, "Cause": cause}}
    )
    assert answer == {"notification": status}
    assert store.get_job(job_id)["notification"]["status"] == status
