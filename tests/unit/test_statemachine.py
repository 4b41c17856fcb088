"""Static checks of the state machine definition (what cfn-lint and moto's parser miss)."""

from __future__ import annotations

import copy
import json

import pytest

from backend import statemachine
from backend.statemachine import check_graph, deploy_placeholders, load_template, render_definition
from chalicelib.core import contracts
from chalicelib.core.functions import WORKFLOW_FUNCTIONS

SUBSTITUTIONS = {
    **{
        f.arn_placeholder: f"arn:aws:lambda:us-east-1:123456789012:function:backdrop-dev-{f.name}"
        for f in WORKFLOW_FUNCTIONS
    },
    "UserTopicArnPrefix": "arn:aws:sns:us-east-1:123456789012:backdrop-dev_user-",
    "BucketName": "backdrop-dev-bucket",
    "MapExecutionType": "EXPRESS",
    "MapMaxConcurrency": 20,
}


MAP = "Process every image"


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
    assert definition["States"][MAP]["MaxConcurrency"] == 20
    assert definition["States"][MAP]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "EXPRESS"
    # JSONPath and intrinsic functions are untouched
    assert definition["States"][MAP]["ItemReader"]["Parameters"]["Bucket.$"] == "$.bucket"


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
    assert definition["States"][MAP]["ResultWriter"]["Parameters"]["Prefix"] == contracts.MAP_RESULTS_PREFIX


def test_no_account_specific_literals_in_the_template() -> None:
    text = load_template()
    for literal in ("arn:aws:lambda", "arn:aws:sns", "stability.", "titan", "nova", "123456789012"):
        assert literal not in text


def test_graph_of_the_real_file_is_sound() -> None:
    assert check_graph(_definition()) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d["States"]["Write the report"].update(Next="Nowhere"), "missing state 'Nowhere'"),
        (
            lambda d: d["States"][MAP]["ItemProcessor"]["States"]["Build the inpaint mask"].update(Next="Gone"),
            "missing state 'Gone'",
        ),
        (lambda d: d["States"]["Email the summary"].pop("Retry"), "Email the summary: Task state has no Retry"),
        (
            lambda d: d["States"][MAP]["ItemProcessor"]["States"]["Finalize the image"].pop("Catch"),
            "Finalize the image: Task has no Catch",
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
    # the batch's scene (before the Map), the first call (remove-background or outpaint), inpaint,
    # and the re-roll of the last call
    assert len(bedrock_tasks) == 4
    for task in bedrock_tasks:
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert "Bedrock.ThrottlingException" in retried
        assert "Bedrock.ValidationException" not in retried and "States.ALL" not in retried
        assert all(rule["JitterStrategy"] == "FULL" for rule in task["Retry"])
        assert set(task["Parameters"]) == {"ModelId.$", "Input", "Output"}  # never an inline image body
        # an image's call fails that image; the scene's fails every image, with its cause; a failed
        # re-roll goes back to Finalize, which keeps the best attempt: never a failed image
        re_roll = task["Parameters"]["ModelId.$"].startswith("$.finalized.reroll")
        scene = task["Parameters"]["ModelId.$"].startswith("$.scene")
        handler = "Finalize the image" if re_roll else "Finish the scene" if scene else "Record the image failure"
        assert task["Catch"][0]["Next"] == handler


def test_map_tolerates_every_item_failure_and_always_reports() -> None:
    process = _definition()["States"][MAP]
    assert process["ToleratedFailurePercentage"] == 100
    assert process["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert process["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert process["Catch"][0]["Next"] == "Write the report" and process["Next"] == "Is a review wanted"
    # without a review the report follows at once; with one, after the wait, however it ends
    states = _definition()["States"]
    assert states["Is a review wanted"]["Default"] == "Write the report"
    wait = states[states["Is a review wanted"]["Choices"][0]["Next"]]
    assert wait["Next"] == "Write the report" and wait["Catch"][0]["Next"] == "Write the report"


def test_the_review_wait_lasts_the_owners_deadline_and_is_never_retried_after_it() -> None:
    states = _definition()["States"]
    wait = states["Wait for the owner's review"]
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["TimeoutSecondsPath"] == "$.settings.reviewSeconds" and "TimeoutSeconds" not in wait
    assert wait["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"
    retried = {error for rule in wait["Retry"] for error in rule["ErrorEquals"]}
    assert "States.Timeout" not in retried and "States.ALL" not in retried


def test_moto_parser_accepts_the_rendered_definition(aws_mock) -> None:
    import boto3

    sfn = boto3.client("stepfunctions")
    rendered = render_definition({**SUBSTITUTIONS, "MapExecutionType": "STANDARD"})
    arn = sfn.create_state_machine(name="parse-check", definition=rendered, roleArn="arn:aws:iam::123456789012:role/x")
    assert arn["stateMachineArn"].endswith(":parse-check")
    assert statemachine.ASL_PATH.name == "backdrop.asl.json"


# ------------------------------------------------------------------------------ retry policies


def test_the_file_carries_the_named_retry_policies() -> None:
    assert load_template() == statemachine.canonical_text(), (
        "run `python -m backend.statemachine` to write the retry policies of backend/statemachine.py into the ASL"
    )


def test_a_hand_edited_retry_is_caught() -> None:
    from backend import jsonfmt

    definition = _definition()
    definition["States"]["Email the summary"]["Retry"][0]["MaxAttempts"] = 9
    edited = jsonfmt.dumps(definition)
    assert statemachine.canonical_text(edited) != edited


def _child_tasks() -> list[tuple[str, dict]]:
    child = _definition()["States"][MAP]["ItemProcessor"]["States"]
    return [(name, state) for name, state in child.items() if state["Type"] == "Task"]


def test_image_steps_never_retry_their_own_errors() -> None:
    """chalicelib/core/errors.py: a StepError describes the image; retrying it only delays the FAILED.
    The one exception is StorageBusy, S3 failing for a while under the step: luck, not the image."""
    from chalicelib.core.errors import STEP_ERROR_CODES, StorageBusy

    own = set(STEP_ERROR_CODES) - {StorageBusy.__name__}
    for name, state in _child_tasks():
        retried = {error for rule in state["Retry"] for error in rule["ErrorEquals"]}
        assert not retried & own, (name, retried & own)
        assert not retried & {"States.ALL", "States.TaskFailed"}, name


def test_every_lambda_step_of_an_image_retries_s3_failing_for_a_while() -> None:
    """A transient S3 failure under Prepare, BuildMask or Finalize is retried on the image with
    STORAGE_RETRY's numbers (issue #26: a 30 s S3 write failure failed every image for good)."""
    from chalicelib.core.errors import STORAGE_RETRY, StorageBusy

    lambda_steps = [(n, s) for n, s in _child_tasks() if s["Resource"] == statemachine.LAMBDA_INVOKE]
    assert {"Prepare the image", "Build the inpaint mask", "Finalize the image"} <= {n for n, _ in lambda_steps}
    for name, state in lambda_steps:
        (rule,) = [r for r in state["Retry"] if StorageBusy.__name__ in r["ErrorEquals"]]
        assert (rule["IntervalSeconds"], rule["MaxAttempts"], rule["MaxDelaySeconds"], rule["JitterStrategy"]) == (
            STORAGE_RETRY.interval_s,
            STORAGE_RETRY.max_attempts,
            STORAGE_RETRY.max_delay_s,
            "FULL",
        ), name


def test_bedrock_retries_exactly_the_errors_that_errors_py_calls_luck() -> None:
    from chalicelib.core.errors import RETRIED_MODEL_CODES, SERVICE_ERROR_CODES

    luck = {
        name
        for name, code in SERVICE_ERROR_CODES.items()
        if name.startswith("Bedrock.") and code in RETRIED_MODEL_CODES
    }
    assert "Bedrock.ThrottlingException" in luck and "Bedrock.ValidationException" not in luck
    for name, state in _child_tasks():
        if state["Resource"] == statemachine.BEDROCK_INVOKE_MODEL:
            assert {error for rule in state["Retry"] for error in rule["ErrorEquals"]} == luck, name


def test_every_image_step_hands_its_errors_to_the_one_failure_recorder() -> None:
    catches = {name: state.get("Catch") for name, state in _child_tasks()}
    recorder = "Record the image failure"
    assert catches.pop(recorder) is None  # its own failure fails the child, which the Map tolerates
    # ... but a failed re-roll is not the image's failure: Finalize records it and keeps the best attempt
    assert catches.pop("Re-roll the image") == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.rerollFailure", "Next": "Finalize the image"}
    ]
    expected = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": recorder}]
    assert all(catch == expected for catch in catches.values()), catches


# ------------------------------------------------------------------------------ time budget


def test_every_task_has_a_time_limit_beyond_its_functions_own() -> None:
    from chalicelib.core.functions import function

    assert not [p for p in check_graph(_definition()) if "TimeoutSeconds" in p]
    prepare = _definition()["States"][MAP]["ItemProcessor"]["States"]["Prepare the image"]
    assert prepare["TimeoutSeconds"] > function("prepare").timeout_s


def test_worst_case_counts_time_limits_retries_and_waits_on_the_longest_path() -> None:
    throttled = {"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 2, "MaxAttempts": 3}
    slow = {
        "ErrorEquals": ["Bedrock.ModelTimeoutException"],
        "IntervalSeconds": 10,
        "MaxAttempts": 2,
        "MaxDelaySeconds": 15,
    }
    level = {
        "StartAt": "A",
        "States": {
            # 10 s once (throttling refuses the call up front) + waits 2 + 4 + 8
            "A": {"Type": "Task", "TimeoutSeconds": 10, "Retry": [throttled], "Next": "B"},
            # 20 s three times (two slow retries) + waits 10 + 15 (capped); its Catch leads to C
            "B": {
                "Type": "Task",
                "TimeoutSeconds": 20,
                "Retry": [slow],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}],
                "Next": "D",
            },
            "C": {"Type": "Task", "TimeoutSeconds": 5, "Retry": [], "Next": "D"},
            "D": {"Type": "Succeed"},
        },
    }
    assert statemachine.worst_case_s(level) == (10 + 14) + (60 + 25) + 5


def test_a_bounded_loop_counts_each_allowed_pass_and_an_unbounded_one_is_refused() -> None:
    level = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "TimeoutSeconds": 10, "Retry": [], "Next": "Again?"},
            "Again?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.again", "BooleanEquals": True, "Next": "Redo"}],
                "Default": "Done",
            },
            "Redo": {"Type": "Task", "TimeoutSeconds": 5, "Retry": [], "Next": "Work"},
            "Done": {"Type": "Succeed"},
        },
    }
    # Work once, then (Redo + Work) as often as Redo may be entered
    assert statemachine.worst_case_s(level, {"Redo": 0}) == 10
    assert statemachine.worst_case_s(level, {"Redo": 3}) == 10 + 3 * (5 + 10)
    with pytest.raises(ValueError, match="a loop with no bound"):
        statemachine.worst_case_s(level, {})


def test_the_re_roll_loop_is_in_the_childs_budget_as_often_as_a_job_may_ask() -> None:
    from chalicelib.core import contracts

    child = _definition()["States"][MAP]["ItemProcessor"]
    with_re_rolls = statemachine.worst_case_s(child)
    without = statemachine.worst_case_s(child, {"Re-roll the image": 0})
    re_roll = statemachine.task_worst_case_s(child["States"]["Re-roll the image"])
    finalize = statemachine.task_worst_case_s(child["States"]["Finalize the image"])
    # the loop makes each further variant (one call each) and each re-roll
    most = contracts.MAX_RE_ROLLS + contracts.MAX_VARIANTS - 1
    assert {"Re-roll the image": most} == statemachine.LOOP_BOUNDS
    assert with_re_rolls == pytest.approx(without + most * (re_roll + finalize))


def test_an_image_child_fits_the_cap_of_the_type_it_runs_as() -> None:
    budgets = statemachine.child_budgets()
    chosen = statemachine.child_execution_type()
    assert budgets and all(seconds < statemachine.CHILD_CAPS_S[chosen] for seconds in budgets.values()), budgets
    # two Bedrock calls, each up to 8 throttled retries: far past Express's 5 minutes
    assert max(budgets.values()) > statemachine.EXPRESS_CHILD_CAP_S and chosen == "STANDARD"


@pytest.mark.parametrize(
    ("budget_s", "chosen"), [(120, "EXPRESS"), (299, "EXPRESS"), (300, "STANDARD"), (2090, "STANDARD")]
)
def test_express_is_never_chosen_for_a_budget_over_its_cap(budget_s: float, chosen: str) -> None:
    assert statemachine.execution_type_for(budget_s) == chosen
    assert budget_s < statemachine.CHILD_CAPS_S[chosen]


def test_a_child_with_a_small_retry_budget_would_run_express() -> None:
    """The choice follows the ASL: the same child with one quick throttling retry and one pass of
    its loop (a single re-roll, no further variants) fits Express."""
    definition = _definition()
    child = definition["States"][MAP]["ItemProcessor"]
    for state in child["States"].values():
        for rule in state.get("Retry", []):
            rule.update(MaxAttempts=1, IntervalSeconds=1)
            rule.pop("MaxDelaySeconds", None)
        if state.get("Resource") == statemachine.BEDROCK_INVOKE_MODEL:
            state["TimeoutSeconds"] = 20
        elif "TimeoutSeconds" in state:
            state["TimeoutSeconds"] = 10
    one_pass = {"Re-roll the image": 1}
    assert statemachine.execution_type_for(statemachine.worst_case_s(child, one_pass)) == "EXPRESS"


def test_the_throttling_cause_says_the_retries_the_rendered_asl_makes() -> None:
    """N and M in "retried N times over about M s" come from the retrier the ASL carries."""
    from chalicelib.core.errors import classify_step_failure

    call = _definition()["States"][MAP]["ItemProcessor"]["States"]["Call the model"]
    rule = next(r for r in call["Retry"] if "Bedrock.ThrottlingException" in r["ErrorEquals"])
    expected_wait = statemachine.retry_waits_s(rule) / 2  # full jitter: half the longest wait on average
    code, cause = classify_step_failure("Bedrock.ThrottlingException", "Too many requests, please wait")
    assert code == "MODEL_THROTTLED"
    assert f"retried {rule['MaxAttempts']} times over about {expected_wait:.0f} s" in cause
    assert "Too many requests" in cause and "[Bedrock.ThrottlingException]" in cause
    # an error the state machine does not retry claims no retries
    assert "retried" not in classify_step_failure("Bedrock.ValidationException", "bad input")[1]


def test_a_standard_child_is_billed_eight_transitions_on_the_stability_happy_path() -> None:
    assert statemachine.happy_path("stability") == [
        "Prepare the image",
        "Call the model",
        "Which background",
        "Which model family",
        "Build the inpaint mask",
        "Inpaint the background",
        "Finalize the image",
        "Is a re-roll due",
        "Image succeeded",
    ]
    assert len(statemachine.happy_path("titan")) == 7  # one model call, no mask
    # a colour / photo / transparent / scene background: remove-background, then straight to Finalize
    for recipe in ("color", "image", "transparent", "scene"):
        assert statemachine.happy_path("stability", recipe=recipe) == [
            "Prepare the image",
            "Call the model",
            "Which background",
            "Finalize the image",
            "Is a re-roll due",  # reroll is always null for a composed background
            "Image succeeded",
        ]


def test_a_scene_is_generated_once_before_the_map_and_its_failure_skips_the_map() -> None:
    states = _definition()["States"]
    assert _definition()["StartAt"] == "Is a scene needed"
    needed = states["Is a scene needed"]
    assert needed["Default"] == MAP and needed["Choices"][0]["Next"] == "Prepare the scene"
    assert states["Prepare the scene"]["Next"] == "Generate the scene"
    generate = states["Generate the scene"]
    assert generate["Resource"] == "arn:aws:states:::bedrock:invokeModel"
    # the model id comes from the registry through the Lambda, never a literal; the answer goes to S3
    assert generate["Parameters"]["ModelId.$"] == "$.scene.call.modelId"
    assert generate["Parameters"]["Output"] == {"S3Uri.$": "$.scene.call.responseUri"}
    # any failure (the Lambda's or the model's) reaches the one step that fails every image with its cause
    for name in ("Prepare the scene", "Generate the scene"):
        assert states[name]["Catch"][0]["Next"] == "Finish the scene"
    ready = states["Is the scene ready"]
    assert ready["Choices"][0]["Next"] == MAP and ready["Default"] == "Write the report"


def test_job_emails_go_to_the_owners_own_topic_and_honour_opt_out() -> None:
    from chalicelib.core import contracts

    states = _definition()["States"]
    # the owner's own topic: the stage's user-topic prefix and their sub, what contracts.user_topic_arn makes
    parameters = states["Email the summary"]["Parameters"]
    assert parameters["TopicArn.$"] == "States.Format('${UserTopicArnPrefix}{}', $.owner)"
    assert "TopicArn" not in parameters
    rendered = json.loads(render_definition(SUBSTITUTIONS))["States"]["Email the summary"]["Parameters"]
    template = rendered["TopicArn.$"].removeprefix("States.Format('").removesuffix("', $.owner)")
    sub = "0b7e4f2a-91c3-4d5e-8f6a-1b2c3d4e5f60"
    assert template.replace("{}", sub) == contracts.user_topic_arn(SUBSTITUTIONS["UserTopicArnPrefix"], sub)
    attributes = parameters["MessageAttributes"]
    assert list(attributes) == [contracts.NOTIFY_OWNER_ATTRIBUTE]
    assert attributes[contracts.NOTIFY_OWNER_ATTRIBUTE] == {"DataType": "String", "StringValue.$": "$.owner"}
    assert states["Write the report"]["Next"] == "Is an email wanted"
    opt_out = states["Is an email wanted"]["Choices"][0]
    # no email, but the job's webhook (if any) is still sent
    assert opt_out["Next"] == "Send the webhook" and {"Variable": "$.notify", "BooleanEquals": False} in opt_out["And"]
    # a report that could not be built ends the execution (the reconciler reports and emails), no email here
    assert states["Report could not be written"]["Type"] == "Fail"


def test_the_report_fail_state_raises_the_error_the_reconciler_reads() -> None:
    from chalicelib.workflow.reconciler import REPORT_FAILED_ERROR

    asl = json.loads(statemachine.ASL_PATH.read_text())
    assert asl["States"]["Report could not be written"]["Error"] == REPORT_FAILED_ERROR
