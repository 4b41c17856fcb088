"""The names the templates and chalice give a stage's resources, for the tooling that must find
them without a stack (teardown re-runs, the doctor). Kept next to the templates' own !Sub names;
tests/functional/test_deploy.py checks they agree."""

from __future__ import annotations


def bucket(stage: str, account: str, region: str) -> str:
    return f"backdrop-{stage}-{account}-{region}"


def table(stage: str) -> str:
    return f"backdrop-{stage}-jobs"


def user_pool(stage: str) -> str:
    return f"backdrop-{stage}-users"


def lambda_function(stage: str, function: str) -> str:
    """Chalice names the REST API's handler <app>-<stage> and every other function
    <app>-<stage>-<name> (docs/aws-notes.md#n35-chalice-function-names)."""
    from chalicelib.core.functions import API_HANDLER

    return f"backdrop-{stage}" if function == API_HANDLER else f"backdrop-{stage}-{function}"


def lambda_log_groups(stage: str) -> list[str]:
    """Lambda creates these on first use; `chalice delete` leaves them."""
    from chalicelib.core.functions import FUNCTIONS

    return [f"/aws/lambda/{lambda_function(stage, f.name)}" for f in FUNCTIONS]


def user_topic_prefix(stage: str) -> str:
    """Every user's job-email topic is this prefix and their Cognito sub (backend/user_topics.py).
    The underscore cannot occur in a stage name (the templates' `^[a-z][a-z0-9-]{0,19}$`), so no
    other stage's topic, and no topic of this stage's own (…-alarms), starts with it: the IAM
    grant on `<prefix>*` reaches this stage's user topics only."""
    return f"backdrop-{stage}_user-"


def user_topic_arn_prefix(stage: str, region: str, account: str, partition: str) -> str:
    return f"arn:{partition}:sns:{region}:{account}:{user_topic_prefix(stage)}"
