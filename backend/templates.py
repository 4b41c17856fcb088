"""Load Backdrop's CloudFormation templates and build the workflow stack's final template.

The templates are YAML with CloudFormation's short intrinsic tags (!Ref, !Sub, ...); they are
read into the JSON form CloudFormation accepts. The state machine definition is not copied into
workflow.yaml: it is inserted from statemachine/backdrop.asl.json, the one source of truth, as a
`Definition` object (so cfn-lint's ASL checks run), with numbers filled in here and every ARN
left to `DefinitionSubstitutions`. What is declared once elsewhere is filled in on load: the S3
layout (`${ScratchPrefix}`, chalicelib/core/contracts.py) and, for the workflow stack, one parameter,
one substitution and one invoke permission per workflow function (chalicelib/core/functions.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from backend.statemachine import deploy_placeholders, fill_layout
from backend.statemachine import load_template as load_asl
from chalicelib.core.functions import WORKFLOW_FUNCTIONS

TEMPLATES = Path(__file__).resolve().parent / "templates"
STACKS = ("resources", "auth", "workflow", "webapp")
_SCALAR_TAGS = ("Ref", "Condition")
_FN_TAGS = (
    "Sub",
    "GetAtt",
    "If",
    "Not",
    "Equals",
    "Join",
    "Select",
    "Split",
    "FindInMap",
    "ImportValue",
    "Base64",
    "GetAZs",
    "And",
    "Or",
)


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct(tag: str) -> Any:
    def build(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {tag if tag in _SCALAR_TAGS else f"Fn::{tag}": value}

    return build


for _tag in _SCALAR_TAGS + _FN_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load(name: str) -> dict[str, Any]:
    text = fill_layout((TEMPLATES / f"{name}.yaml").read_text())
    template = yaml.load(text, Loader=_CfnLoader)  # a SafeLoader subclass
    if name == "workflow":
        _add_workflow_functions(template)
    return template


def _add_workflow_functions(template: dict[str, Any]) -> None:
    """Each workflow function's ARN: a parameter, a definition substitution, and the right to
    invoke it (any version or alias)."""
    resources = template["Resources"]
    statements = resources["WorkflowRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    invoke = next(s for s in statements if s["Sid"] == "InvokeBackdropFunctions")
    substitutions = resources["Workflow"]["Properties"]["DefinitionSubstitutions"]
    for function in WORKFLOW_FUNCTIONS:
        name = function.arn_placeholder
        template["Parameters"][name] = {"Type": "String"}
        substitutions[name] = {"Ref": name}
        invoke["Resource"] += [{"Ref": name}, {"Fn::Sub": f"${{{name}}}:*"}]


def workflow_template(max_concurrency: int) -> dict[str, Any]:
    """workflow.yaml with the ASL inserted; MaxConcurrency is filled here because
    DefinitionSubstitutions only substitute strings."""
    if not 0 <= max_concurrency <= 10_000:
        raise ValueError("MapMaxConcurrency must be between 0 and 10,000 (the Distributed Map limit)")
    template = load("workflow")
    machine = template["Resources"]["Workflow"]["Properties"]
    text = fill_layout(load_asl()).replace('"${MapMaxConcurrency}"', str(int(max_concurrency)))
    machine["Definition"] = json.loads(text)
    left = deploy_placeholders(text)
    if left != set(machine["DefinitionSubstitutions"]):
        raise ValueError(f"ASL placeholders {sorted(left)} do not match the template's DefinitionSubstitutions")
    return template


def to_json(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=1)
