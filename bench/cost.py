"""What 1,000 images cost, computed from what an executed run did, priced with public prices.

A job of photo-like 12 MP JPEGs (PRECISE, Stability path) runs through the local stack, one image
at a time so each Lambda's measured duration is its work on one vCPU, not a share of this
machine. The run is counted as AWS bills it:
- state transitions: the parent execution's history (GetExecutionHistory) and the Distributed Map
  children's events (counted by backend/local/moto_bounds.py); every state entered is one
  transition, and every retry of a task another;
- Lambda: invocations, and GB-seconds = billed milliseconds (rounded up per invocation) x the
  memory each function declares in chalicelib/core/functions.py (backend/local/meter.py);
- S3 requests by price class, counted where they arrive (uploads, Lambdas, Bedrock's reads of the
  request and writes of the answer, the map's reader and writer);
- model calls answered by the stand-in, at the model registry's price per call;
- Rekognition images analysed (DetectLabels when an upload lands, Finalize's DetectLabels and
  DetectText checks), counted where moto's server receives them, at the product's own price
  (contracts.REKOGNITION_USD_PER_IMAGE).
Transitions are priced apart: the parent's once per job (a 1,000-image job has as many as this
one), the children's per image. Lambda is priced from billed duration, but the CPU-bound steps
(CPU_BOUND) from their CPU time: on this shared machine their wall time is mostly waiting for a
core, which a Lambda's own vCPU does not do. The figures are compared with the product's own
estimate for the same job (what POST /jobs answered).
DynamoDB requests and the API's own Lambda are left out (each well under 1 % of the total here).

Prices, us-east-1, on-demand, read 2026-11: docs/aws-notes.md#n12-step-functions-prices and
#n53-lambda-and-s3-request-prices; the model price is the registry's (chalicelib/models/models.json:
third-party, UNCONFIRMED).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

IMAGES = 6
STANDARD_PER_TRANSITION = 0.025 / 1000
EXPRESS_PER_REQUEST = 1.0 / 1_000_000
EXPRESS_PER_GB_SECOND = 0.00001667
EXPRESS_BILLED_MEMORY_GB = 64 / 1024  # the smallest memory step Express bills
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000166667  # x86
S3_PUT_CLASS_PER_REQUEST = 0.005 / 1000
S3_GET_CLASS_PER_REQUEST = 0.0004 / 1000
CHALICE_DEFAULT_MEMORY_MB = 128
MODEL_SECONDS_PER_CALL = 6.0  # Bedrock image latency for an Express child's duration (UNCONFIRMED)
# The figures docs/performance.md carried before a run fed them (constants only, orchestration only)
SEED_ESTIMATE_EXPRESS = 0.0145
SAMPLE_STANDARD = 0.1250  # the original sample: 5 Standard states per image
PLATFORM_SHARE_TARGET = 0.05  # everything but the model <= 5 % of the model's price
# Steps whose work is CPU (decode, resize, compose, encode): priced from CPU time
CPU_BOUND = frozenset({"prepare", "build_mask", "finalize"})
ESTIMATE_TOLERANCE = 0.10  # model calls and checks measured within 10 % of what POST /jobs estimated


def transitions(events: Mapping[str, int]) -> int:
    """Billed Standard transitions from history events by type: states entered plus task retries."""
    entered = sum(n for kind, n in events.items() if kind.endswith("StateEntered"))
    retries = max(0, events.get("TaskScheduled", 0) - events.get("TaskStateEntered", 0))
    return entered + retries


def _history(sfn: Any, execution_arn: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        for event in page["events"]:
            counts[event["type"]] = counts.get(event["type"], 0) + 1
        if not page.get("nextToken"):
            return counts
        kwargs["nextToken"] = page["nextToken"]


def executed_run() -> dict[str, Any]:
    from backend.local import moto_bounds
    from backend.local.cutout import ForegroundEstimate
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from bench.pages import AwsCalls
    from bench.photos import photo_like
    from chalicelib.core import contracts
    from frontend.api_client import BackdropClient, CognitoLogin

    photo = photo_like(4000, 3000)
    calls = AwsCalls()
    # the classical cut-out: the stand-in's work is Bedrock's, not billed to the Lambdas
    with (
        LocalStack(api_port=0, stage="cost", max_concurrency=1, cutout=ForegroundEstimate()) as stack,
        calls.installed(),
    ):
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(DEMO_USER, DEMO_PASSWORD)
        client = BackdropClient(stack.api_url, login.id_token, timeout_s=120)
        stack.meter.reset()
        calls.by_operation.clear()
        moto_bounds.reset_child_event_counts()
        answered_before = stack.bedrock.answered
        uploads = client.upload_bytes((f"photo{i}.jpg", photo, "image/jpeg") for i in range(IMAGES))
        if uploads.rejected:
            raise RuntimeError(f"uploads refused: {uploads.rejected}")
        refs = uploads.uploaded
        # as a user does: the labels (DetectLabels per photo, billed), the subject's label kept
        # (so Finalize checks it is still there: DetectLabels and DetectText, billed too)
        found = client.labels(uploads.refs)
        images = [{**ref, "labels": [label["name"] for label in found.get(ref["imageRef"], [])[:1]]} for ref in refs]
        job = client.submit({"prompt": "a sunlit marble studio", "mode": "PRECISE", "images": images})
        terminal = {s.value for s in contracts.TERMINAL_JOB_STATUSES}
        while True:
            summary = next(j for j in client.jobs(limit=5)["jobs"] if j["jobId"] == job["jobId"])
            if summary["status"] in terminal:
                break
            time.sleep(1.0)
        sfn = stack.client("stepfunctions")
        deadline = time.monotonic() + 120  # the email and the execution's last states after the report
        while (
            sfn.list_executions(stateMachineArn=stack.outputs["state_machine_arn"], statusFilter="RUNNING")[
                "executions"
            ]
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        execution = sfn.list_executions(stateMachineArn=stack.outputs["state_machine_arn"])["executions"][0]
        return {
            "status": summary["status"],
            "succeeded": (summary.get("counts") or {}).get("SUCCEEDED", 0),
            "parent_events": _history(sfn, execution["executionArn"]),
            "child_events": moto_bounds.child_event_counts(),
            "lambda_invocations": dict(stack.meter.lambda_invocations),
            "lambda_billed_ms": dict(stack.meter.lambda_billed_ms),
            "lambda_cpu_ms": dict(stack.meter.lambda_cpu_ms),
            "s3_requests": dict(stack.meter.s3_requests),
            "model_calls": stack.bedrock.answered - answered_before,
            "rekognition_images": calls.by_operation["DetectLabels"] + calls.by_operation["DetectText"],
            "rekognition_calls": {op: calls.by_operation[op] for op in ("DetectLabels", "DetectText")},
            "estimate_usd": float(job["estimate"]["usd"]),
            "input_mb": len(photo) / 2**20,
        }


def lambda_ms(run: Mapping[str, Any], cpu_bound: frozenset[str] = CPU_BOUND) -> dict[str, int]:
    """Each function's billed milliseconds: the CPU-bound steps' CPU time, the others' wall time."""
    return {
        name: run["lambda_cpu_ms"].get(name, ms) if name in cpu_bound else ms
        for name, ms in run["lambda_billed_ms"].items()
    }


def price(run: Mapping[str, Any], images: int = IMAGES, durations: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Dollars per 1,000-image job, by line, from one executed run of `images` images: what is
    paid per image scaled to 1,000, what is paid per job (the parent's transitions) once. Lambda
    durations from `durations` (default lambda_ms: billed, CPU time for the CPU-bound steps)."""
    from backend import templates
    from backend.local.meter import S3_GET_CLASS, S3_PUT_CLASS
    from chalicelib.core import contracts
    from chalicelib.core.functions import function
    from chalicelib.models import registry

    per_image = 1000 / images
    durations = lambda_ms(run) if durations is None else durations
    parent, children = transitions(run["parent_events"]), transitions(run["child_events"])
    gb_seconds = {
        name: ms / 1000 * (function(name).memory_mb or CHALICE_DEFAULT_MEMORY_MB) / 1024
        for name, ms in durations.items()
    }
    workflow_seconds = (
        sum(ms for name, ms in durations.items() if function(name).workflow_task and name != "report") / 1000
    )
    express_child_s = workflow_seconds / images + run["model_calls"] / images * MODEL_SECONDS_PER_CALL
    spec = registry.get_model("stability-inpaint")
    calls_per_image = len(registry.adapter_for(spec).steps)
    deployed = templates.load("workflow")["Parameters"]["MapExecutionType"]["Default"]
    # the parent's transitions are the job's (as many for 1,000 images as for six); the children's
    # are per image
    standard = (parent + children * per_image) * STANDARD_PER_TRANSITION
    express = (
        parent * STANDARD_PER_TRANSITION
        + 1000 * EXPRESS_PER_REQUEST
        + 1000 * math.ceil(express_child_s * 10) / 10 * EXPRESS_BILLED_MEMORY_GB * EXPRESS_PER_GB_SECOND
    )
    return {
        "deployed": deployed,
        "transitions_parent": parent,
        "transitions_children": children,
        "orchestration_standard": standard,
        "orchestration_express": express,
        "orchestration": express if deployed == "EXPRESS" else standard,
        "lambda": (
            sum(gb_seconds.values()) * LAMBDA_PER_GB_SECOND
            + sum(run["lambda_invocations"].values()) * LAMBDA_PER_REQUEST
        )
        * per_image,
        "gb_seconds": sum(gb_seconds.values()),
        "s3": (
            run["s3_requests"].get(S3_PUT_CLASS, 0) * S3_PUT_CLASS_PER_REQUEST
            + run["s3_requests"].get(S3_GET_CLASS, 0) * S3_GET_CLASS_PER_REQUEST
        )
        * per_image,
        "model": run["model_calls"] * spec.price_per_image_usd / calls_per_image * per_image,
        "rekognition": run["rekognition_images"] * contracts.REKOGNITION_USD_PER_IMAGE * per_image,
        "estimate": run["estimate_usd"] * per_image,
    }


def run(row: Callable[[str, str, str, bool | None], None]) -> None:
    from backend.local.meter import S3_GET_CLASS, S3_PUT_CLASS

    measured = executed_run()
    cost = price(measured)
    wall = price(measured, durations=measured["lambda_billed_ms"])
    s3 = measured["s3_requests"]
    row(
        "cost run",
        f"{IMAGES} x 12 MP JPEG ({measured['input_mb']:.1f} MB), PRECISE: {measured['succeeded']} SUCCEEDED; "
        f"{cost['transitions_parent']} + {cost['transitions_children']} transitions (parent + children), "
        f"{sum(measured['lambda_invocations'].values())} Lambda calls, {cost['gb_seconds']:.1f} GB-s, "
        f"S3 {s3.get(S3_PUT_CLASS, 0)} PUT-class (DeleteObjects included) + {s3.get(S3_GET_CLASS, 0)} GET, "
        f"{measured['model_calls']} model calls, Rekognition {measured['rekognition_calls']}",
        "-",
        None,
    )
    other = cost["orchestration"] + cost["lambda"] + cost["s3"] + cost["rekognition"]
    row(
        "orchestration per 1,000 images",
        f"${cost['orchestration']:.4f} ({cost['deployed']} children; "
        f"Standard ${cost['orchestration_standard']:.4f}, Express ${cost['orchestration_express']:.4f}) "
        f"vs seed estimate ${SEED_ESTIMATE_EXPRESS:.4f}, sample ${SAMPLE_STANDARD:.4f}",
        # a figure: the sample's constant was another design's (5 states per image, no
        # re-rolls, variants or checks); the share of the model price below is the target
        "-",
        None,
    )
    row(
        "Lambda per 1,000 images",
        f"${cost['lambda']:.4f} (billed GB-s x declared memory, CPU time for {', '.join(sorted(CPU_BOUND))}; "
        f"all at wall time here ${wall['lambda']:.4f})",
        "-",
        None,
    )
    row("S3 requests per 1,000 images", f"${cost['s3']:.4f}", "-", None)
    row(
        "Rekognition per 1,000 images",
        f"${cost['rekognition']:.4f} ({measured['rekognition_images'] / IMAGES:.1f} images analysed per photo)",
        "-",
        None,
    )
    row("model calls per 1,000 images", f"${cost['model']:.2f} (registry price, UNCONFIRMED)", "-", None)
    row(
        "all but the model per 1,000 images",
        f"${other:.4f} = {other / cost['model']:.1%} of the model's ${cost['model']:.2f}",
        f"<= {PLATFORM_SHARE_TARGET:.0%} of the model",
        other <= PLATFORM_SHARE_TARGET * cost["model"],
    )
    measured_usd = cost["model"] + cost["rekognition"]
    off = measured_usd / cost["estimate"] - 1 if cost["estimate"] else float("inf")
    row(
        "model + checks vs the product's estimate",
        f"${measured_usd:.2f} measured vs ${cost['estimate']:.2f} estimated per 1,000 images ({off:+.1%})",
        f"within {ESTIMATE_TOLERANCE:.0%}",
        abs(off) <= ESTIMATE_TOLERANCE,
    )
