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

from chalicelib.contracts import S3_LAYOUT

ASL_PATH = Path(__file__).resolve().parent.parent / "statemachine" / "backdrop.asl.json"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Za-z0-9]*)\}")
PURE_STATE_TYPES = frozenset({"Pass", "Choice", "Succeed", "Fail", "Wait"})
# A Map is not retried as a whole (that would re-run every image); its children retry their
# own Tasks and its Catch hands any Map Run failure to the report.
NO_RETRY_TYPES = PURE_STATE_TYPES | {"Map"}


def load_template() -> str:
    return ASL_PATH.read_text()


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
