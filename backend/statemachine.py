"""Load, fill and check the state machine definition in statemachine/.

The ASL file holds `${PascalCase}` placeholders for every ARN, name and tunable; nothing
account-specific is a literal. Two kinds: the S3 layout (`${MapResultsPrefix}`, from
chalicelib.contracts.S3_LAYOUT) is filled here for every caller, and the deploy-time values
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
from chalicelib.contracts import S3_LAYOUT, ErrorCode
from chalicelib.errors import service_errors_with

ASL_PATH = Path(__file__).resolve().parent.parent / "statemachine" / "backdrop.asl.json"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Za-z0-9]*)\}")
PURE_STATE_TYPES = frozenset({"Pass", "Choice", "Succeed", "Fail", "Wait"})
# A Map is not retried as a whole (that would re-run every image); its children retry their
# own Tasks and its Catch hands any Map Run failure to the report.
NO_RETRY_TYPES = PURE_STATE_TYPES | {"Map"}


LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
BEDROCK_INVOKE_MODEL = "arn:aws:states:::bedrock:invokeModel"


def _retrier(errors: list[str], interval_s: int, attempts: int, max_delay_s: int | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "ErrorEquals": errors,
        "IntervalSeconds": interval_s,
        "BackoffRate": 2,
        "MaxAttempts": attempts,
    }
    if max_delay_s is not None:
        rule["MaxDelaySeconds"] = max_delay_s
    rule["JitterStrategy"] = "FULL"
    return rule


_LAMBDA_THROTTLED = _retrier(["Lambda.TooManyRequestsException"], 2, 6, 30)
# Every Task's Retry is one of these, chosen by `retry_policy`. The ASL file carries them in full
# (so it stays plain ASL for cfn-lint, moto and the console); `python -m backend.statemachine`
# writes them into it and a test fails while the file and this table disagree.
RETRY_POLICIES: dict[str, list[dict[str, Any]]] = {
    # Lambda could not run the step (throttled, or a fault of the Lambda service). The step's own
    # errors are never retried: they describe the image (chalicelib/errors.py).
    "lambda-service-errors": [
        _LAMBDA_THROTTLED,
        _retrier(["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"], 1, 3),
    ],
    # Bedrock: what chalicelib/errors.py calls luck. Throttling waits longer; validation, access
    # and content-filter errors are never retried.
    "bedrock-transient-errors": [
        _retrier(service_errors_with("Bedrock", ErrorCode.MODEL_THROTTLED), 2, 8, 60),
        _retrier(service_errors_with("Bedrock", ErrorCode.MODEL_TIMEOUT, ErrorCode.MODEL_ERROR), 2, 3),
    ],
    # The report runs once per job and is idempotent: any failure is worth a few retries before
    # the fallback summary.
    "lambda-any-error": [_LAMBDA_THROTTLED, _retrier(["States.ALL"], 1, 3)],
    "any-error": [_retrier(["States.ALL"], 1, 3)],
}
RETRY_ANY_ERROR_STATES = frozenset({"Write the report"})


def retry_policy(name: str, state: Mapping[str, Any]) -> str:
    """The named retry policy of a Task, from what it calls."""
    resource = state.get("Resource")
    if resource == BEDROCK_INVOKE_MODEL:
        return "bedrock-transient-errors"
    if resource == LAMBDA_INVOKE:
        return "lambda-any-error" if name in RETRY_ANY_ERROR_STATES else "lambda-service-errors"
    return "any-error"


def load_template() -> str:
    return ASL_PATH.read_text()


def with_policies(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with every Task's Retry set from RETRY_POLICIES (key order kept)."""
    for _, level in _levels(definition):
        for name, state in level.get("States", {}).items():
            if state.get("Type") == "Task":
                state["Retry"] = RETRY_POLICIES[retry_policy(name, state)]
    return definition


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
        for name, state in states.items():
            nexts = [state.get("Next"), state.get("Default")]
            nexts += [choice.get("Next") for choice in state.get("Choices", [])]
            catches = [catch.get("Next") for catch in state.get("Catch", [])]
            handlers.update(c for c in catches if c)
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
        for name in set(states) - targets:
            problems.append(f"{where}{name}: unreachable")
        # every Task that is not itself a failure handler must hand its errors to one
        for name, state in states.items():
            if state.get("Type") == "Task" and not state.get("Catch") and name not in handlers:
                problems.append(f"{where}{name}: Task has no Catch")
    return problems


def main() -> int:
    text = canonical_text()
    if text == load_template():
        print(f"{ASL_PATH}: up to date")
    else:
        ASL_PATH.write_text(text)
        print(f"wrote {ASL_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
