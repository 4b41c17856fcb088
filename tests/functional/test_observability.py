"""Operable on day one: every workflow step logs JSON with its job and image ids, and the image
outcomes become CloudWatch metrics (EMF lines the Lambda's log stream carries to CloudWatch)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from builders import BUCKET

from chalicelib.core import contracts
from chalicelib.workflow import observability

JOB = "20261125T000000Z-0123456789ab"
IMAGE = "a" * 32
EVENT = {
    "jobId": JOB,
    "owner": "user-1",
    "bucket": BUCKET,
    "settings": {"model": "stability-inpaint", "prompt": "p"},
    "image": {"imageId": IMAGE, "key": "uploads/user-1/x.png"},
}


@pytest.fixture
def output(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What the Lambda would write to its log stream: the logger's lines and the EMF lines."""
    logs = io.StringIO()
    handler = observability.logger.registered_handler
    previous = handler.setStream(logs)

    def read() -> str:
        captured = capsys.readouterr()  # EMF lines: stdout on Lambda, stderr elsewhere
        text = logs.getvalue() + captured.out + captured.err
        logs.seek(0)
        logs.truncate()
        return text

    yield read
    handler.setStream(previous)


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _value(line: dict[str, Any], name: str) -> float:
    value = line[name]
    return float(value[0] if isinstance(value, list) else value)


def _metrics(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """metric name → the EMF documents that carry it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == "Backdrop"
            for metric in directive["Metrics"]:
                found.setdefault(metric["Name"], []).append(line)
    return found


def test_a_failed_image_is_counted_by_code_and_logged_with_its_ids(
    output: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKDROP_STAGE", "prod")

    @observability.workflow_step("record_failure", record=observability.record_failure)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        observability.logger.info("marking the image failed")
        return {"status": "FAILED", "errorCode": "MODEL_THROTTLED"}

    handler(EVENT, None)
    lines = _lines(output())
    logs = [line for line in lines if line.get("message") == "marking the image failed"]
    assert logs and logs[0]["jobId"] == JOB and logs[0]["imageId"] == IMAGE and logs[0]["step"] == "record_failure"
    assert logs[0]["service"] == "backdrop" and logs[0]["level"] == "INFO"
    metrics = _metrics(lines)
    failed = metrics["ImagesFailed"][0]
    assert (failed["ErrorCode"], failed["stage"], _value(failed, "ImagesFailed")) == ("MODEL_THROTTLED", "prod", 1.0)
    assert sorted(failed["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["ErrorCode", "service", "stage"]
    assert "ImagesThrottled" in metrics


def test_a_step_that_raises_is_logged_as_an_error_with_its_ids_and_still_raises(
    output: Any,
) -> None:
    @observability.workflow_step("prepare")
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        handler(EVENT, None)
    errors = [line for line in _lines(output()) if line.get("level") == "ERROR"]
    assert errors and errors[0]["jobId"] == JOB and "disk on fire" in errors[0]["exception"]
    # the ids do not leak into the next invocation's lines
    observability.logger.info("later")
    later = [line for line in _lines(output()) if line.get("message") == "later"]
    assert "jobId" not in later[0]


def test_a_succeeded_image_reports_cost_and_each_model_calls_seconds(resources: dict[str, Any], output: Any) -> None:
    s3 = boto3.client("s3")
    for step in ("remove-background", "inpaint"):
        s3.put_object(Bucket=EVENT["bucket"], Key=contracts.request_key(JOB, IMAGE, step), Body=b"{}")
        s3.put_object(Bucket=EVENT["bucket"], Key=contracts.response_key(JOB, IMAGE, step), Body=b"{}")
    written = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

    class Clocked:
        """moto's LastModified is 'now' for both objects; the real ones are seconds apart."""

        def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
            s3.head_object(Bucket=Bucket, Key=Key)  # the objects must exist
            delay = {"remove-background": 3, "inpaint": 7}[Key.rsplit(".", 2)[-2]]
            return {"LastModified": written + timedelta(seconds=delay if "/responses/" in Key else 0)}

    @observability.workflow_step(
        "finalize", record=lambda event, result: observability.record_success(Clocked(), event, result)
    )
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"status": "SUCCEEDED", "outputs": 1}

    handler(EVENT, None)
    metrics = _metrics(_lines(output()))
    assert _value(metrics["ImagesSucceeded"][0], "ImagesSucceeded") == 1.0
    assert _value(metrics["EstimatedCostUSD"][0], "EstimatedCostUSD") == pytest.approx(0.08)
    seconds = {line["Step"]: _value(line, "ModelCallSeconds") for line in metrics["ModelCallSeconds"]}
    assert seconds == {"remove-background": 3.0, "inpaint": 7.0}


def test_a_metric_that_cannot_be_recorded_never_fails_the_image(output: Any) -> None:
    def broken(event: Any, result: Any) -> None:
        raise KeyError("settings")

    @observability.workflow_step("finalize", record=broken)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"status": "SUCCEEDED", "outputs": 1}

    assert handler(EVENT, None) == {"status": "SUCCEEDED", "outputs": 1}
    assert any(line.get("message") == "could not record metrics" for line in _lines(output()))


def test_the_dashboard_plots_exactly_the_metrics_backdrop_emits() -> None:
    import re

    from backend import templates

    resources = templates.workflow_template(8)["Resources"]
    body = json.loads(resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    plotted: dict[str, str | None] = {}
    for widget in body["widgets"]:
        for metric in widget["properties"]["metrics"]:
            if metric[0] == "Backdrop":
                assert metric[2:6] == ["service", "backdrop", "stage", "${Stage}"], metric
                plotted[metric[1]] = None
            elif isinstance(metric[0], dict) and "{Backdrop," in metric[0]["expression"]:
                schema, name = re.search(r"\{Backdrop,([^}]*)\} MetricName=\"(\w+)\"", metric[0]["expression"]).groups()
                extra = [d for d in schema.split(",") if d not in ("service", "stage")]
                plotted[name] = extra[0] if extra else None
    assert plotted == observability.METRICS
    workflow_arn = [m for w in body["widgets"] for m in w["properties"]["metrics"] if m[0] == "AWS/States"]
    assert workflow_arn[0][2:] == ["StateMachineArn", "${Workflow}"]


def test_an_undeclared_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="not declared"):
        observability.emit("ImagesFailed", 1)  # needs its ErrorCode


def test_off_lambda_logs_and_metrics_leave_stdout_to_the_program(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    observability.emit("ImagesSucceeded", 1)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "backdrop-dev-finalize")
    observability.emit("ImagesSucceeded", 1)
    assert '"ImagesSucceeded"' in capsys.readouterr().out  # on Lambda: the log stream
