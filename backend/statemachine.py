"""Load, fill and check the state machine definition in statemachine/.

The ASL file holds `${PascalCase}` placeholders for every ARN, name and tunable; nothing
account-specific is a literal. Two kinds: the S3 layout (`${MapResultsPrefix}`, from
chalicelib.core.contracts.S3_LAYOUT) is filled here for every caller, and the deploy-time values
(function ARNs, topic, bucket, execution type, concurrency) are filled by `render_definition`
for the local stack and the tests, or by CloudFormation's DefinitionSubstitutions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from backend import jsonfmt
from chalicelib.core.contracts import MAX_RE_ROLLS, MAX_VARIANTS, S3_LAYOUT, ErrorCode
from chalicelib.core.errors import (
    MODEL_RETRY_POLICIES,
    STORAGE_RETRY,
    RetryPolicy,
    StorageBusy,
    retried_model_errors,
    service_errors_with,
)
from chalicelib.core.functions import WORKFLOW_FUNCTIONS
from chalicelib.delivery.webhooks import WEBHOOK_RETRY, WebhookRetry

ASL_PATH = Path(__file__).resolve().parent.parent / "statemachine" / "backdrop.asl.json"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Za-z0-9]*)\}")
PURE_STATE_TYPES = frozenset({"Pass", "Choice", "Succeed", "Fail", "Wait"})
# A Map is not retried as a whole (that would re-run every image); its children retry their
# own Tasks and its Catch hands any Map Run failure to the report.
NO_RETRY_TYPES = PURE_STATE_TYPES | {"Map"}


LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# A Lambda task that waits for its task token (review before delivery): its length is the
# owner's deadline (TimeoutSecondsPath), not the function's time.
LAMBDA_INVOKE_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"
BEDROCK_INVOKE_MODEL = "arn:aws:states:::bedrock:invokeModel"


def _retrier(errors: list[str], policy: RetryPolicy) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "ErrorEquals": errors,
        "IntervalSeconds": policy.interval_s,
        "BackoffRate": int(policy.backoff_rate) if policy.backoff_rate.is_integer() else policy.backoff_rate,
        "MaxAttempts": policy.max_attempts,
    }
    if policy.max_delay_s is not None:
        rule["MaxDelaySeconds"] = policy.max_delay_s
    rule["JitterStrategy"] = "FULL"
    return rule


_LAMBDA_THROTTLED = _retrier(["Lambda.TooManyRequestsException"], RetryPolicy(2, 6, max_delay_s=30))
_ONCE_MORE = RetryPolicy(1, 3)
# Every Task's Retry is one of these, chosen by `retry_policy`. The ASL file carries them in full
# (so it stays plain ASL for cfn-lint, moto and the console); `python -m backend.statemachine`
# writes them into it and a test fails while the file and this table disagree.
RETRY_POLICIES: dict[str, list[dict[str, Any]]] = {
    # Lambda could not run the step (throttled, or a fault of the Lambda service). The step's own
    # errors are never retried: they describe the image (chalicelib/core/errors.py).
    "lambda-service-errors": [
        _LAMBDA_THROTTLED,
        _retrier(["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"], _ONCE_MORE),
        # ... and S3 failing for a while under the step (chalicelib/core/errors.py: StorageBusy): the
        # step is retried, each image on its own, rather than the image failed for good
        _retrier([StorageBusy.__name__], STORAGE_RETRY),
    ],
    # Bedrock: what chalicelib/core/errors.py calls luck, with its policies (an image that used them up
    # says so in its cause, from the same numbers). Validation, access and content-filter errors
    # are never retried.
    "bedrock-transient-errors": [
        _retrier(retried_model_errors(ErrorCode.MODEL_THROTTLED), MODEL_RETRY_POLICIES[ErrorCode.MODEL_THROTTLED]),
        _retrier(retried_model_errors(ErrorCode.MODEL_ERROR), MODEL_RETRY_POLICIES[ErrorCode.MODEL_ERROR]),
    ],
    # The report runs once per job and is idempotent: any failure is worth a few retries before
    # the fallback summary.
    "lambda-any-error": [_LAMBDA_THROTTLED, _retrier(["States.ALL"], _ONCE_MORE)],
    "any-error": [_retrier(["States.ALL"], _ONCE_MORE)],
}
# The webhook sender makes one attempt per invocation and raises WebhookRetry while attempts are
# left: the waits between attempts are this Task's own Retry (full jitter), not a sleep in the
# function (issue #25).
RETRY_POLICIES["lambda-service-errors-and-webhook"] = [
    *RETRY_POLICIES["lambda-service-errors"],
    _retrier([WebhookRetry.__name__], WEBHOOK_RETRY),
]
RETRY_ANY_ERROR_STATES = frozenset({"Write the report"})
WEBHOOK_STATES = frozenset({"Send the webhook"})


def retry_policy(name: str, state: Mapping[str, Any]) -> str:
    """The named retry policy of a Task, from what it calls."""
    resource = state.get("Resource")
    if resource == BEDROCK_INVOKE_MODEL:
        return "bedrock-transient-errors"
    if resource == LAMBDA_INVOKE:
        if name in WEBHOOK_STATES:
            return "lambda-service-errors-and-webhook"
        return "lambda-any-error" if name in RETRY_ANY_ERROR_STATES else "lambda-service-errors"
    if resource == LAMBDA_INVOKE_WAIT:  # a deadline that passed is not retried
        return "lambda-service-errors"
    return "any-error"


# Every Task has a time limit. A Lambda task waits a little longer than the function's own
# timeout (chalicelib/core/functions.py), so the function's timeout error, with its log, comes first.
LAMBDA_TASK_MARGIN_S = 5
BEDROCK_CALL_TIMEOUT_S = 90
SERVICE_CALL_TIMEOUT_S = 30
# The longest a Distributed Map child of each type may run. An Express child is stopped at
# 5 minutes and runs no Catch then: its image would end as an unexplained INTERNAL_ERROR.
EXPRESS_CHILD_CAP_S = 300
STANDARD_CHILD_CAP_S = 365 * 24 * 3600  # one year
CHILD_CAPS_S = {"EXPRESS": EXPRESS_CHILD_CAP_S, "STANDARD": STANDARD_CHILD_CAP_S}
# Step Functions pricing in us-east-1: a Standard execution is billed per state transition, an
# Express one per request and GB-second (docs/performance.md compares them for one image).
STANDARD_USD_PER_TRANSITION = 0.025 / 1000


def task_timeout_s(state: Mapping[str, Any]) -> int:
    resource = state.get("Resource")
    if resource == LAMBDA_INVOKE:
        placeholder = str(state["Parameters"]["FunctionName"]).removeprefix("${").removesuffix("}")
        function = next((f for f in WORKFLOW_FUNCTIONS if f.arn_placeholder == placeholder), None)
        if function is None or function.timeout_s is None:
            raise ValueError(f"{placeholder} is not a workflow function with a timeout in chalicelib/core/functions.py")
        return function.timeout_s + LAMBDA_TASK_MARGIN_S
    return BEDROCK_CALL_TIMEOUT_S if resource == BEDROCK_INVOKE_MODEL else SERVICE_CALL_TIMEOUT_S


def load_template() -> str:
    return ASL_PATH.read_text()


def with_policies(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with every Task's Retry and TimeoutSeconds set from the tables above."""
    for _, level in _levels(definition):
        for name, state in level.get("States", {}).items():
            if state.get("Type") == "Task":
                if "TimeoutSecondsPath" not in state:  # a wait's time limit is its input's
                    state["TimeoutSeconds"] = task_timeout_s(state)
                state["Retry"] = RETRY_POLICIES[retry_policy(name, state)]
    return definition


# Errors that refuse a call before it does any work: an attempt failing with one costs its
# wait, not the task's time limit.
REFUSED_ERRORS = frozenset(
    {
        "Lambda.TooManyRequestsException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        *service_errors_with("Bedrock", ErrorCode.MODEL_THROTTLED),
    }
)


def retry_waits_s(rule: Mapping[str, Any]) -> float:
    """The longest a retrier can wait in all (full jitter waits at most the computed delay)."""
    interval, rate = rule.get("IntervalSeconds", 1), rule.get("BackoffRate", 2.0)
    cap = rule.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate**attempt, cap) for attempt in range(rule.get("MaxAttempts", 3)))


def task_worst_case_s(state: Mapping[str, Any]) -> float:
    """Every attempt a retrier allows, each at the time limit unless the error refuses the call
    up front, plus every wait. No TimeoutSeconds: no bound."""
    timeout = state.get("TimeoutSeconds", float("inf"))
    rules = state.get("Retry", [])
    slow_attempts = sum(r.get("MaxAttempts", 3) for r in rules if not set(r["ErrorEquals"]) <= REFUSED_ERRORS)
    return timeout * (1 + slow_attempts) + sum(retry_waits_s(r) for r in rules)


# The only loops a definition may have, each with how many times one run may enter it: the
# model's last call made again goes back to Finalize once per further variant (at most
# contracts.MAX_VARIANTS - 1) and once per automatic re-roll (at most contracts.MAX_RE_ROLLS).
LOOP_BOUNDS: dict[str, int] = {"Re-roll the image": MAX_RE_ROLLS + MAX_VARIANTS - 1}


def worst_case_s(level: Mapping[str, Any], loop_bounds: Mapping[str, int] | None = None) -> float:
    """The longest a run of one level (a Map's child, say) can take: the costliest path from
    StartAt, a Task's Catch counted after the Task used up all its retries, each bounded loop
    (`loop_bounds`: state -> most entries per run) taken as often as it may be. A loop through
    no bounded state has no worst case: ValueError."""
    states = level["States"]
    bounds = dict(LOOP_BOUNDS if loop_bounds is None else loop_bounds)
    memo: dict[tuple[str, tuple[int, ...]], float] = {}
    names = sorted(bounds)

    def longest(name: str, left: tuple[int, ...], path: frozenset[tuple[str, tuple[int, ...]]]) -> float:
        key = (name, left)
        if key in path:
            raise ValueError(f"{name}: a loop with no bound (LOOP_BOUNDS in backend/statemachine.py)")
        if key not in memo:
            if name in bounds:
                index = names.index(name)
                if left[index] == 0:
                    return float("-inf")  # entered as often as it may be: this path is not possible
                left = left[:index] + (left[index] - 1,) + left[index + 1 :]
            state = states[name]
            after = [state.get("Next"), state.get("Default")]
            after += [c.get("Next") for c in state.get("Choices", []) + state.get("Catch", [])]
            own = task_worst_case_s(state) if state["Type"] == "Task" else 0.0
            possible = [longest(n, left, path | {key}) for n in after if n]
            memo[key] = own + max([t for t in possible if t != float("-inf")], default=0.0)
        return memo[key]

    return longest(level["StartAt"], tuple(bounds[n] for n in names), frozenset())


def child_budgets() -> dict[str, float]:
    """Each Map state's child worst case, in seconds, for the committed ASL."""
    definition = json.loads(load_template())
    return {
        f"{where}{name}": worst_case_s(state["ItemProcessor"])
        for where, level in _levels(definition)
        for name, state in level.get("States", {}).items()
        if "ItemProcessor" in state
    }


def execution_type_for(budget_s: float) -> str:
    """The child execution type a worst case needs: Express (cheaper per image) only when the
    whole budget fits its 5-minute cap, with room to spare; otherwise Standard."""
    return "EXPRESS" if budget_s < EXPRESS_CHILD_CAP_S else "STANDARD"


def worst_child_s() -> float:
    return max(child_budgets().values())


def child_execution_type() -> str:
    """What the deploy sets as the Map's `ExecutionType` (`${MapExecutionType}`), from the ASL's
    own worst case: today's Bedrock retry budget (two calls, each up to 8 throttled retries, and
    the last call again up to MAX_VARIANTS - 1 + MAX_RE_ROLLS times with Finalize again) is
    ~7,480 s, so STANDARD."""
    return execution_type_for(worst_child_s())


def happy_path(
    family: str = "stability", definition: Mapping[str, Any] | None = None, recipe: str = "prompt"
) -> list[str]:
    """The states one image's child enters when every step succeeds, for a model family and a
    background recipe (chalicelib.core.contracts.BackgroundSource): a Standard child is billed one
    state transition for each."""
    definition = definition or json.loads(load_template())
    map_state = next(s for s in definition["States"].values() if "ItemProcessor" in s)
    child = map_state["ItemProcessor"]
    path: list[str] = []
    name: str | None = child["StartAt"]
    while name:
        path.append(name)
        state = child["States"][name]
        if state["Type"] == "Choice":
            name = next(
                (c["Next"] for c in state["Choices"] if c.get("StringEquals") in (family, recipe)), state.get("Default")
            )
        else:
            name = state.get("Next")
    return path


def canonical_text(text: str | None = None) -> str:
    """The ASL file as `python -m backend.statemachine` writes it: policies applied, laid out."""
    return jsonfmt.dumps(with_policies(json.loads(text if text is not None else load_template())))


def placeholders(text: str | None = None) -> set[str]:
    return set(_PLACEHOLDER.findall(text if text is not None else load_template()))


def fill_layout(text: str) -> str:
    """Fill the S3 layout placeholders (a text of any kind: ASL, YAML template)."""
    return _PLACEHOLDER.sub(lambda m: S3_LAYOUT.get(m.group(1), m.group(0)), text)


def deploy_placeholders(text: str | None = None) -> set[str]:
    """The placeholders a deploy must fill: all but the S3 layout's."""
    return placeholders(text) - set(S3_LAYOUT)


def render_definition(substitutions: Mapping[str, str | int], template: str | None = None) -> str:
    """Fill every placeholder; a value standing alone as a JSON string becomes a JSON value
    (so "${MapMaxConcurrency}" becomes a number). Unknown or missing names are errors."""
    text = fill_layout(template if template is not None else load_template())
    wanted = placeholders(text)
    missing = sorted(wanted - set(substitutions))
    unused = sorted(set(substitutions) - wanted)
    if missing or unused:
        raise ValueError(f"state machine substitutions: missing {missing}, not used {unused}")

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        if isinstance(node, str):
            whole = _PLACEHOLDER.fullmatch(node)
            if whole:
                return substitutions[whole.group(1)]
            return _PLACEHOLDER.sub(lambda m: str(substitutions[m.group(1)]), node)
        return node

    return json.dumps(fill(json.loads(text)), separators=(",", ":"))


def _levels(definition: Mapping[str, Any], where: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield where, definition
    for name, state in definition.get("States", {}).items():
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from _levels(state[key], f"{where}{name}.{key}/")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from _levels(branch, f"{where}{name}.Branches[{index}]/")


def check_graph(definition: Mapping[str, Any]) -> list[str]:
    """Problems a reviewer would catch: dangling transitions (cfn-lint misses them), Tasks
    without Retry, Tasks without Catch outside failure handlers, unreachable states."""
    problems: list[str] = []
    for where, level in _levels(definition):
        states = level.get("States", {})
        if level.get("StartAt") not in states:
            problems.append(f"{where or 'top level: '}StartAt {level.get('StartAt')!r} is not a state")
        targets: set[str] = {level.get("StartAt", "")}
        handlers: set[str] = set()
        followed: set[str] = set()  # reached by a Next, Default or Choice: a step, not only a handler
        for name, state in states.items():
            nexts = [state.get("Next"), state.get("Default")]
            nexts += [choice.get("Next") for choice in state.get("Choices", [])]
            catches = [catch.get("Next") for catch in state.get("Catch", [])]
            handlers.update(c for c in catches if c)
            followed.update(n for n in nexts if n)
            for target in nexts + catches:
                if target is not None and target not in states:
                    problems.append(f"{where}{name}: transition to missing state {target!r}")
                if target:
                    targets.add(target)
            if (
                not state.get("End")
                and state.get("Type") not in ("Choice", "Succeed", "Fail")
                and not state.get("Next")
            ):
                problems.append(f"{where}{name}: neither Next nor End")
            if state.get("Type") not in NO_RETRY_TYPES and not state.get("Retry"):
                problems.append(f"{where}{name}: {state.get('Type')} state has no Retry")
            if state.get("Type") == "Task" and not {"TimeoutSeconds", "TimeoutSecondsPath"} & set(state):
                problems.append(f"{where}{name}: Task has no TimeoutSeconds")
        for name in set(states) - targets:
            problems.append(f"{where}{name}: unreachable")
        # every Task that is not only a failure handler must hand its errors to one
        for name, state in states.items():
            if state.get("Type") == "Task" and not state.get("Catch") and (name not in handlers or name in followed):
                problems.append(f"{where}{name}: Task has no Catch")
    return problems


def main() -> int:
    text = canonical_text()
    if text == load_template():
        print(f"{ASL_PATH}: up to date")
    else:
        ASL_PATH.write_text(text)
        print(f"wrote {ASL_PATH}")
    chosen = child_execution_type()
    for name, seconds in child_budgets().items():
        print(
            f"{name}: a child's worst case is {seconds:.0f} s; children run {chosen} "
            f"(cap {CHILD_CAPS_S[chosen]:,} s; an Express child is stopped at {EXPRESS_CHILD_CAP_S} s)"
        )
    transitions = len(happy_path())
    print(
        f"one image on the Stability happy path: {transitions} state transitions = "
        f"${transitions * STANDARD_USD_PER_TRANSITION * 1000:.3f} per 1,000 images as STANDARD children"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
