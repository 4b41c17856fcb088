"""Structured logs and CloudWatch metrics, through Powertools for AWS Lambda.

Logs are JSON lines with the job and image ids of the step that wrote them (CloudWatch Logs
Insights can filter on `jobId`). Metrics go out as CloudWatch embedded metric format (EMF)
lines in the same log stream: no PutMetricData call, no extra permission. In namespace
`Backdrop`, with dimensions `service` and `stage` (plus the one named):

- ImagesSucceeded, ImagesFailed (by ErrorCode), ImagesThrottled (failed after every retry on
  Bedrock throttling), ModelCallSeconds (by Step: request written → response written, as the
  workflow saw the call), EstimatedCostUSD (the registry's price per image produced).

The dashboard in backend/templates/workflow.yaml plots them beside Bedrock's own metrics.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TextIO

from aws_lambda_powertools import Logger

from chalicelib.core import backgrounds, contracts
from chalicelib.core.contracts import ErrorCode
from chalicelib.models import registry

SERVICE = "backdrop"
NAMESPACE = "Backdrop"


def _stream() -> TextIO:
    """On Lambda, stdout is the log stream; elsewhere (the local stack, tests, a CLI sharing the
    process) stderr, so a program's own stdout stays its own."""
    return sys.stdout if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else sys.stderr


logger = Logger(service=SERVICE, stream=_stream())  # level from POWERTOOLS_LOG_LEVEL (INFO by default)
# Every metric Backdrop emits, with the dimension it carries besides service and stage (the
# dashboard's queries are checked against this).
METRICS: dict[str, str | None] = {
    "ImagesSucceeded": None,
    "ImagesFailed": "ErrorCode",
    "ImagesThrottled": None,
    "ImagesReRolled": None,
    "ModelCallSeconds": "Step",
    "EstimatedCostUSD": None,
}

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Recorder = Callable[[Mapping[str, Any], Mapping[str, Any]], None]


def stage() -> str:
    return os.environ.get("BACKDROP_STAGE", "local")


def ids_of(event: Mapping[str, Any]) -> dict[str, str]:
    """The job and image a workflow event is about (what every log line of the step carries)."""
    image = event.get("image") if isinstance(event.get("image"), Mapping) else {}
    found = {"jobId": event.get("jobId"), "imageId": (image or {}).get("imageId")}
    return {k: str(v) for k, v in found.items() if v}


def emit(name: str, value: float, unit: str = "Count", dimension: tuple[str, str] | None = None) -> None:
    """One metric as one EMF line, with the service and stage dimensions (and `dimension`)."""
    if METRICS.get(name, "?") != (dimension[0] if dimension else None):
        raise ValueError(f"metric {name} with dimension {dimension} is not declared in METRICS")
    # imported here: the API handler logs but emits no metric, and its cold start counts
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.metrics.base import SingleMetric

    metric = SingleMetric(namespace=NAMESPACE)
    metric.add_metric(name=name, unit=MetricUnit(unit), value=value)
    for key, dimension_value in {
        "service": SERVICE,
        "stage": stage(),
        **dict([dimension] if dimension else []),
    }.items():
        metric.add_dimension(name=key, value=dimension_value)
    # written here rather than by Powertools' single_metric, which always prints to stdout
    print(json.dumps(metric.serialize_metric_set(), separators=(",", ":")), file=_stream(), flush=True)


def _name_the_step(exc: BaseException, step: str) -> None:
    """A storage failure names the step it stopped, in the message the image's cause is made
    from (Lambda reports str(exc)): "finalize: could not write s3://..." (issue #26)."""
    from chalicelib.core.errors import StorageError

    if isinstance(exc, StorageError) and not getattr(exc, "step", None):
        exc.step = step  # type: ignore[attr-defined]
        exc.message = f"{step}: {exc.message}"
        exc.args = (exc.message,)


def workflow_step(step: str, record: Recorder | None = None) -> Callable[[Handler], Handler]:
    """Wrap a workflow Lambda: its log lines carry the step, job and image ids; `record` turns
    its result into metrics (written as it goes: EMF lines need no flush)."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
            keys = {"step": step, **ids_of(event)}
            logger.append_keys(**keys)
            started = time.perf_counter()
            try:
                result = handler(event, context)
                if record is not None:
                    try:
                        record(event, result)
                    except Exception:  # a metric must never fail the image
                        logger.exception("could not record metrics")
                logger.info("step finished", durationMs=round((time.perf_counter() - started) * 1000))
                return result
            except Exception as exc:
                _name_the_step(exc, step)
                logger.exception("step failed", durationMs=round((time.perf_counter() - started) * 1000))
                raise
            finally:
                logger.remove_keys(list(keys))

        return wrapped

    return decorate


# ---- what the workflow's steps report


def model_call_seconds(s3: Any, bucket: str, job_id: str, image_id: str, steps: tuple[str, ...]) -> dict[str, float]:
    """Per model call, seconds from its request object being written to its response object
    being written (S3 LastModified, 1 s resolution): the call as the workflow waited for it."""
    seconds: dict[str, float] = {}
    for step in steps:
        request = s3.head_object(Bucket=bucket, Key=contracts.request_key(job_id, image_id, step))
        response = s3.head_object(Bucket=bucket, Key=contracts.response_key(job_id, image_id, step))
        seconds[step] = max(0.0, (response["LastModified"] - request["LastModified"]).total_seconds())
    return seconds


def record_success(s3: Any, event: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    spec = registry.get_model(str(event["settings"]["model"]))
    if result.get("reroll"):  # the image is being made again: it has not succeeded yet
        emit("ImagesReRolled", 1)
        return
    emit("ImagesSucceeded", 1)
    steps = registry.adapter_for(spec).steps
    background = backgrounds.effective(event["image"].get("background"), event["settings"].get("background"))
    if not background.needs_inpaint:  # a colour / photo / transparent / scene background: the first call alone
        steps = steps[:1]
    # every attempt's model calls and checks (automatic re-rolls), or the recipe's price
    attempts = result.get("attempts") or []
    cost = sum(float(a.get("costUsd") or 0) for a in attempts)
    if not cost:
        cost = (
            spec.price_per_image_usd * int(result.get("outputs") or 1)
            if background.needs_inpaint
            else spec.compose_price_usd
        )
    emit("EstimatedCostUSD", cost, "None")
    image_id = str(event["image"]["imageId"])
    # finalize measures them before it discards the image's scratch (chalicelib/workflow/steps.py)
    seconds_by_step = result.get("modelCallSeconds")
    if seconds_by_step is None:
        seconds_by_step = model_call_seconds(s3, str(event["bucket"]), str(event["jobId"]), image_id, steps)
    for step, seconds in seconds_by_step.items():
        emit("ModelCallSeconds", seconds, "Seconds", ("Step", step))


def record_failure(event: Mapping[str, Any], result: Mapping[str, Any]) -> None:
    code = str(result.get("errorCode") or "UNKNOWN")
    emit("ImagesFailed", 1, dimension=("ErrorCode", code))
    if code == ErrorCode.MODEL_THROTTLED.value:
        emit("ImagesThrottled", 1)
