"""SNS's filter-policy quotas, enforced on moto as AWS enforces them.

Used by the tests and the local stack; nothing here is deployed. moto 5.2.5 accepts any number of
subscriptions with a filter policy on one topic; SNS allows 200 per topic and 10,000 per account
by default (adjustable on request), and refuses the next Subscribe or SetSubscriptionAttributes
that would attach one with the error code `FilterPolicyLimitExceeded` (HTTP 403;
botocore's `FilterPolicyLimitExceededException`):
docs/aws-notes.md#n70-what-the-emulator-enforces-for-sns. Replacing a subscription's policy, or
removing it, does not count. A Subscribe refused here leaves no subscription behind.

Patches `moto.sns.models.SNSBackend.set_subscription_attributes` (which moto's Subscribe calls
for each attribute after making the subscription) and `moto.sns.responses.SNSResponse.subscribe`:
private moto APIs, checked against the version pinned in backend/local/sfn_hooks.py.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Final

from backend.local.sfn_hooks import _check_version

# SNS's default quotas (https://docs.aws.amazon.com/general/latest/gr/sns.html)
FILTER_POLICIES_PER_TOPIC: Final = 200
FILTER_POLICIES_PER_ACCOUNT: Final = 10_000
ERROR_CODE: Final = "FilterPolicyLimitExceeded"

_lock = threading.Lock()  # a count and the write that follows it, one at a time


@functools.cache
def _error_class() -> type[Exception]:
    from moto.sns.exceptions import SNSException

    class FilterPolicyLimitExceeded(SNSException):
        code = ERROR_CODE  # moto answers a ServiceException with its code and the model's HTTP 403

    return FilterPolicyLimitExceeded


def _limit_error(what: str) -> Exception:
    return _error_class()(
        f"Filter policy limit exceeded: {what}. To add more filter policies, submit an Amazon SNS Limit "
        "Increase case in the AWS Support Center"
    )


def _has_policy(subscription: Any) -> bool:
    return bool(subscription.attributes.get("FilterPolicy"))


def check(backend: Any, subscription: Any) -> None:
    """Refuse a first filter policy on `subscription` that would pass a quota."""
    if _has_policy(subscription):
        return  # replacing a policy does not add one
    topic_arn = subscription.topic.arn
    account = [s for s in backend.subscriptions.values() if _has_policy(s)]
    on_topic = sum(1 for s in account if s.topic.arn == topic_arn)
    if on_topic >= FILTER_POLICIES_PER_TOPIC:
        raise _limit_error(f"topic {topic_arn} has {on_topic} (at most {FILTER_POLICIES_PER_TOPIC} per topic)")
    if len(account) >= FILTER_POLICIES_PER_ACCOUNT:
        raise _limit_error(f"the account has {len(account)} (at most {FILTER_POLICIES_PER_ACCOUNT} per account)")


def install() -> Callable[[], None]:
    """Patch moto; returns the undo."""
    _check_version()
    from moto.sns.models import SNSBackend
    from moto.sns.responses import SNSResponse

    real_set = SNSBackend.set_subscription_attributes
    real_subscribe = SNSResponse.subscribe

    def set_subscription_attributes(self: Any, arn: str, name: str, value: Any) -> None:
        with _lock:
            subscription = self.subscriptions.get(arn)
            if name == "FilterPolicy" and value and subscription is not None:
                check(self, subscription)
            real_set(self, arn, name, value)

    def subscribe(self: Any) -> Any:
        existing = set(self.backend.subscriptions)
        try:
            return real_subscribe(self)
        except Exception as exc:
            if getattr(exc, "code", None) == ERROR_CODE:  # AWS makes no subscription then
                for arn in set(self.backend.subscriptions) - existing:
                    self.backend.subscriptions.pop(arn, None)
            raise

    SNSBackend.set_subscription_attributes = set_subscription_attributes  # type: ignore[method-assign]
    SNSResponse.subscribe = subscribe  # type: ignore[method-assign]

    def uninstall() -> None:
        SNSBackend.set_subscription_attributes = real_set  # type: ignore[method-assign]
        SNSResponse.subscribe = real_subscribe  # type: ignore[method-assign]

    return uninstall
