"""Static checks of the state machine definition (what cfn-lint and moto's parser miss)."""

from __future__ import annotations

import copy
import json

import pytest

from backend import statemachine
from backend.statemachine import check_graph, deploy_placeholders, load_template, render_definition
from chalicelib import contracts
from chalicelib.functions import WORKFLOW_FUNCTIONS

SUBSTITUTIONS = {
    **{
        f.arn_placeholder: f"arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-{f.name}"
        for f in WORKFLOW_FUNCTIONS
    },
    "NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:backdrop-dev",
    "BucketName": "backdrop-dev-bucket",
    "MapExecutionType": "EXPRESS",
    "MapMaxConcurrency": 20,
}


def _definition() -> dict:
    return json.loads(load_template())


def _tasks(definition: dict):
    for name, state in definition["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from _tasks(state["ItemProcessor"])


def test_render_fills_every_placeholder_and_keeps_numbers_numeric() -> None:
    rendered = render_definition(SUBSTITUTIONS)
    assert "${" not in rendered
    definition = json.loads(rendered)
    assert definition["States"]["ProcessImages"]["MaxConcurrency"] == 20
    assert definition["States"]["ProcessImages"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "EXPRESS"
    # JSONPath and intrinsic functions are untouched
    assert definition["States"]["ProcessImages"]["ItemReader"]["Parameters"]["Bucket.$"] == "$.bucket"


def test_render_refuses_missing_and_unknown_substitutions() -> None:
    partial = dict(SUBSTITUTIONS)
    del partial["ReportFunctionArn"]
    with pytest.raises(ValueError, match="ReportFunctionArn"):
        render_definition(partial)
    with pytest.raises(ValueError, match="Typo"):
        render_definition({**SUBSTITUTIONS, "Typo": "x"})


def test_placeholders_are_exactly_what_the_deploy_fills() -> None:
    assert deploy_placeholders() == set(SUBSTITUTIONS)


def test_the_s3_layout_comes_from_the_contracts() -> None:
    definition = json.loads(render_definition(SUBSTITUTIONS))
    assert definition["States"]["ProcessImages"]["ResultWriter"]["Parameters"]["Prefix"] == contracts.MAP_RESULTS_PREFIX


def test_no_account_specific_literals_in_the_template() -> None:
    text = load_template()
    for literal in ("arn:aws:lambda", "arn:aws:sns", "stability.", "titan", "nova", "123456789012"):
        assert literal not in text


def test_graph_of_the_real_file_is_sound() -> None:
    assert check_graph(_definition()) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d["States"]["Report"].update(Next="Nowhere"), "missing state 'Nowhere'"),
        (
            lambda d: d["States"]["ProcessImages"]["ItemProcessor"]["States"]["BuildMask"].update(Next="Gone"),
            "missing state 'Gone'",
        ),
        (lambda d: d["States"]["Notify"].pop("Retry"), "Notify: Task state has no Retry"),
        (
            lambda d: d["States"]["ProcessImages"]["ItemProcessor"]["States"]["Finalize"].pop("Catch"),
            "Finalize: Task has no Catch",
        ),
        (lambda d: d.update(StartAt="Nope"), "StartAt 'Nope'"),
    ],
)
def test_graph_check_finds_breakage(breakage, expected) -> None:
    definition = copy.deepcopy(_definition())
    breakage(definition)
    assert any(expected in problem for problem in check_graph(definition)), check_graph(definition)


def test_bedrock_tasks_retry_throttling_with_full_jitter_but_not_validation() -> None:
    bedrock_tasks = [s for _, s in _tasks(_definition()) if s.get("Resource") == "arn:aws:states:::bedrock:invokeModel"]
    assert len(bedrock_tasks) == 3  # remove-background, inpaint, outpaint
    for task in bedrock_tasks:
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert "Bedrock.ThrottlingException" in retried
        assert "Bedrock.ValidationException" not in retried and "States.ALL" not in retried
        assert all(rule["JitterStrategy"] == "FULL" for rule in task["Retry"])
        assert set(task["Parameters"]) == {"ModelId.$", "Input", "Output"}  # never an inline image body
        assert task["Catch"][0]["Next"] == "RecordFailure"


def test_map_tolerates_every_item_failure_and_always_reports() -> None:
    process = _definition()["States"]["ProcessImages"]
    assert process["ToleratedFailurePercentage"] == 100
    assert process["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert process["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert process["Catch"][0]["Next"] == "Report" and process["Next"] == "Report"


def test_moto_parser_accepts_the_rendered_definition(aws_mock) -> None:
    import boto3

    sfn = boto3.client("stepfunctions")
    rendered = render_definition({**SUBSTITUTIONS, "MapExecutionType": "STANDARD"})
    arn = sfn.create_state_machine(name="parse-check", definition=rendered, roleArn="arn:aws:iam::123456789012:role/x")
    assert arn["stateMachineArn"].endswith(":parse-check")
    assert statemachine.ASL_PATH.name == "backdrop.asl.json"
