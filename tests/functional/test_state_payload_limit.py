"""Step Functions' 256 KiB payload limit, as the local hooks make moto's interpreter apply it
(backend/local/sfn_hooks.py install_data_limit): inputs on entering a state, a task's
parameters when scheduled, outputs counted in UTF-8, and States.ALL that does not catch it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from harness import wait_for

from backend.local.sfn_hooks import STATE_PAYLOAD_MAX_BYTES, hooks, payload_bytes

ROLE = "arn:aws:iam::123456789012:role/backdrop-test-states"


def _run(definition: dict[str, Any], execution_input: Any, model_calls: list[Any] | None = None) -> dict[str, Any]:
    def model(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        (model_calls if model_calls is not None else []).append(model_id)
        return {"t": "x" * 300_000} if model_id == "large" else {"ok": True}  # an answer too large for state

    sfn = boto3.client("stepfunctions")
    name = f"limits-{uuid.uuid4().hex}"
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    with hooks({}, model):
        started = sfn.start_execution(
            stateMachineArn=arn, name=name, input=json.dumps(execution_input, ensure_ascii=False, separators=(",", ":"))
        )
        return wait_for(sfn, started["executionArn"], timeout_s=60)


def _error(finished: dict[str, Any]) -> str | None:
    return finished.get("error")


def test_the_size_is_the_utf8_json_text() -> None:
    assert payload_bytes({"a": "é"}) == len('{"a":"é"}'.encode()) == 10
    assert payload_bytes("x" * STATE_PAYLOAD_MAX_BYTES) == STATE_PAYLOAD_MAX_BYTES


def test_non_ascii_text_counts_its_utf8_bytes_not_its_json_escapes(aws_mock: None) -> None:
    """100,000 "é" are 200,000 bytes of UTF-8, within the limit; moto counted 600,000 (each an
    escaped \\u00e9) and failed the state."""
    finished = _run({"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": True}}}, {"text": "é" * 100_000})
    assert finished["status"] == "SUCCEEDED", finished


def test_a_task_scheduled_with_parameters_over_the_limit_fails_before_the_call(aws_mock: None) -> None:
    """The state's input (100 KB) is within the limit; the parameters it builds (three copies of
    it) are not: Step Functions refuses to schedule the task. moto made the call."""
    calls: list[Any] = []
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::bedrock:invokeModel",
                "Parameters": {"ModelId": "m", "Body": {"a.$": "$.t", "b.$": "$.t", "c.$": "$.t"}},
                "ResultPath": None,
                "End": True,
            }
        },
    }
    finished = _run(definition, {"t": "x" * 100_000}, calls)
    assert finished["status"] == "FAILED" and _error(finished) == "States.DataLimitExceeded", finished
    assert calls == []


def test_states_all_neither_retries_nor_catches_an_output_over_the_limit(aws_mock: None) -> None:
    definition = {
        "StartAt": "Grow",
        "States": {
            "Grow": {
                "Type": "Pass",
                "Parameters": {"a.$": "$.t", "b.$": "$.t", "c.$": "$.t"},
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    as_task = {
        "StartAt": "Grow",
        "States": {
            "Grow": {
                "Type": "Task",
                "Resource": "arn:aws:states:::bedrock:invokeModel",
                "Parameters": {"ModelId": "large", "Body": {}},
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 1}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
    }
    big = {"t": "x" * 100_000}
    assert _error(_run(definition, big)) == "States.DataLimitExceeded"
    calls: list[Any] = []
    finished = _run(as_task, {}, calls)
    assert finished["status"] == "FAILED" and _error(finished) == "States.DataLimitExceeded", finished
    assert calls == ["large"]  # called once: not retried


def test_an_execution_input_of_exactly_the_limit_runs(aws_mock: None) -> None:
    # {"t":"..."} is 8 bytes around the text; moto refused it (it counted "< 262,144" with spaces)
    text = "x" * (STATE_PAYLOAD_MAX_BYTES - 8)
    finished = _run({"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": True}}}, {"t": text})
    assert finished["status"] == "SUCCEEDED", finished


def test_start_execution_refuses_an_input_over_the_limit_as_sent(aws_mock: None) -> None:
    """The input string as sent counts: 50,000 emoji are 200,000 bytes of UTF-8 JSON, but 600,000
    as json.dumps' default ASCII escapes (12 bytes each): that input never starts."""
    from botocore.exceptions import ClientError

    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(name="start", definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]
    text = {"t": "\U0001f600" * 50_000}
    over = {"t": "x" * (STATE_PAYLOAD_MAX_BYTES - 7)}  # one byte over, compact
    with hooks({}, lambda model_id, body: {}):
        with pytest.raises(ClientError) as refused:
            sfn.start_execution(stateMachineArn=arn, name="escaped", input=json.dumps(text))
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        with pytest.raises(ClientError):
            sfn.start_execution(stateMachineArn=arn, name="over", input=json.dumps(over, separators=(",", ":")))
        started = sfn.start_execution(stateMachineArn=arn, name="utf8", input=json.dumps(text, ensure_ascii=False))
        assert wait_for(sfn, started["executionArn"])["status"] == "SUCCEEDED"
