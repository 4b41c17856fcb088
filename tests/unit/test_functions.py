"""The declared Lambda functions are the ones app.py registers, and what is derived from them agrees."""

from __future__ import annotations

import json

from backend import chalice_config, statemachine, templates
from chalicelib.core.functions import (
    API_HANDLER,
    BACKGROUND_WORKER,
    FUNCTIONS,
    WORKFLOW_FUNCTIONS,
    LambdaFunction,
    function,
)


def test_app_registers_exactly_the_declared_functions() -> None:
    import app as backdrop_app

    chalice_app = backdrop_app.app
    registered = {f.name for f in chalice_app.pure_lambda_functions} | {e.name for e in chalice_app.event_sources}
    if chalice_app.routes:
        registered.add(API_HANDLER)
    assert registered == {f.name for f in FUNCTIONS}
    # the plain Lambda functions are the state machine's and the background worker (started by the
    # API, the workflow and the sweep); the local stack and the tests find each handler in app.py under its name
    handlers = {f.name: f.handler_string for f in chalice_app.pure_lambda_functions}
    assert handlers == {f.name: f"app.{f.name}" for f in WORKFLOW_FUNCTIONS} | {
        BACKGROUND_WORKER: f"app.{BACKGROUND_WORKER}",
    }


def test_committed_chalice_config_carries_the_declared_memory_and_timeouts() -> None:
    assert chalice_config.CONFIG_PATH.read_text() == chalice_config.derived_config(), (
        "run `python -m backend.chalice_config` to rewrite .chalice/config.json from chalicelib/core/functions.py"
    )
    dev = json.loads(chalice_config.CONFIG_PATH.read_text())["stages"]["dev"]["lambda_functions"]
    assert dev["prepare"] == {"lambda_memory_size": 1769, "lambda_timeout": 120}


def test_a_deploy_of_a_new_stage_gets_the_same_settings() -> None:
    stage = chalice_config.apply_function_settings({"lambda_functions": {"report": {"iam_policy_file": "p.json"}}})
    assert stage["lambda_functions"]["report"] == {
        "iam_policy_file": "p.json",
        "lambda_memory_size": function("report").memory_mb,
        "lambda_timeout": function("report").timeout_s,
    }


def test_arn_placeholders_are_the_state_machines_and_the_templates() -> None:
    assert LambdaFunction("record_notification_failure").arn_placeholder == "RecordNotificationFailureFunctionArn"
    declared = {f.arn_placeholder for f in WORKFLOW_FUNCTIONS}
    function_placeholders = {p for p in statemachine.placeholders() if p.endswith("FunctionArn")}
    assert function_placeholders == declared
    workflow = templates.load("workflow")
    assert declared <= set(workflow["Parameters"])
    assert declared <= set(workflow["Resources"]["Workflow"]["Properties"]["DefinitionSubstitutions"])
