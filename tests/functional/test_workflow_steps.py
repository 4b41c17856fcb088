"""The workflow Lambdas and the stream starter, step by step (no state machine)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import boto3
import pytest
from builders import BUCKET, load_event
from PIL import Image, ImageDraw

from backend.local.bedrock_standin import StandInBedrock
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.core.errors import ImageInvalid, NoSubject, classify_step_failure
from chalicelib.delivery.report import Reporter
from chalicelib.imaging import images as imaging
from chalicelib.store.jobs import JobStore, NewImage
from chalicelib.workflow.starter import WorkflowStarter, job_inserts
from chalicelib.workflow.steps import Steps

OWNER = "owner-1"
JOB_ID = "20261124T120000Z-0123456789ab"


def _job(store: JobStore, photos: dict[str, bytes], settings: dict[str, Any] | None = None, *, start: bool = True):
    """A job of these photos, through the store as POST /jobs writes it (RUNNING unless not `start`)."""
    s3 = boto3.client("s3")
    settings = {
        "model": "stability-inpaint",
        "prompt": "a beach",
        "mode": "PRECISE",
        "seed": 9,
        "variants": 1,
        "outputFormat": "png",
        **(settings or {}),
    }
    images = []
    for name, data in photos.items():
        image_id = contracts.new_opaque_id()
        ref = contracts.image_ref_of(contracts.new_opaque_id(), image_id, "png")
        key = contracts.upload_key(OWNER, ref)
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        images.append(NewImage(image_id=image_id, image_ref=ref, key=key, name=name))
    store.put_job(
        job_id=JOB_ID,
        owner=OWNER,
        model=settings["model"],
        settings=settings,
        images=images,
        created_at="2026-11-24T12:00:00Z",
    )
    if start:
        assert store.mark_running(JOB_ID, "arn:aws:states:us-east-1:123456789012:execution:backdrop-test:x")
    manifest = [{"imageId": i.image_id, "key": i.key, "name": i.name} for i in images]
    return [{"jobId": JOB_ID, "owner": OWNER, "bucket": BUCKET, "settings": settings, "image": m} for m in manifest]


def _answer(event: dict[str, Any], call: dict[str, Any], standin: StandInBedrock) -> None:
    s3 = boto3.client("s3")
    body = json.loads(s3.get_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["requestUri"])[1])["Body"].read())
    response = standin(call["modelId"], body)
    s3.put_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["responseUri"])[1], Body=json.dumps(response).encode())


def _status(store: JobStore, event: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in store.images(JOB_ID) if i["imageId"] == event["image"]["imageId"])


def test_steps_are_idempotent_and_restore_the_original_size(store, photo) -> None:
    (event,) = _job(store, {"a.png": photo(640, 400)})
    steps = Steps(boto3.client("s3"), store)
    standin = StandInBedrock()
    prepared = steps.prepare(event)
    assert prepared["family"] == "stability"
    assert prepared["call"]["requestUri"].endswith(
        f"jobs/{JOB_ID}/requests/{event['image']['imageId']}.remove-background.json"
    )
    assert _status(store, event)["status"] == "RUNNING"
    _answer(event, prepared["call"], standin)
    masked = steps.build_mask(event)
    _answer(event, masked["call"], standin)
    first = steps.finalize(event)
    outputs_first = _status(store, event)["outputs"]
    # the image's scratch is gone once it SUCCEEDED (requests, responses, canvas, geometry, alpha)
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{JOB_ID}/").get("KeyCount") == 0
    # the model calls' times were read from the scratch before it went (for the metrics)
    assert set(first.pop("modelCallSeconds")) == {"remove-background", "inpaint"}
    again = steps.finalize(event)  # a re-run finds it SUCCEEDED: the same answer and status
    assert first == again and _status(store, event)["outputs"] == outputs_first
    assert _status(store, event)["status"] == "SUCCEEDED"
    result = boto3.client("s3").get_object(Bucket=BUCKET, Key=outputs_first[0]["key"])["Body"].read()
    assert imaging.decode_image(result).size == (640, 400)
    assert outputs_first[0]["key"] == contracts.result_key(OWNER, JOB_ID, event["image"]["imageId"], 1, "png")


def test_bad_image_fails_in_prepare_with_its_cause(store) -> None:
    (event,) = _job(store, {"notes.png": b"these are my notes, not a picture"})
    with pytest.raises(ImageInvalid, match="not a PNG, JPEG or WEBP"):
        Steps(boto3.client("s3"), store).prepare(event)


def test_no_subject_inside_the_kept_labels_boxes_is_a_clear_failure(store) -> None:
    img = Image.new("RGB", (400, 300), (235, 235, 230))
    ImageDraw.Draw(img).rectangle((20, 20, 120, 120), fill=(200, 30, 40))  # subject top-left
    (event,) = _job(store, {"a.png": imaging.encode_png(img)})
    event["image"]["labels"] = ["Dog"]
    event["image"]["boxes"] = [[0.7, 0.7, 0.25, 0.25]]  # the kept label sits bottom-right, on background
    steps = Steps(boto3.client("s3"), store)
    _answer(event, steps.prepare(event)["call"], StandInBedrock())
    with pytest.raises(NoSubject, match=r"kept labels \(Dog\)"):
        steps.build_mask(event)


@pytest.mark.parametrize(
    ("error", "cause", "code", "words"),
    [
        ("Bedrock.ThrottlingException", "Too many requests", "MODEL_THROTTLED", "Too many requests"),
        ("Bedrock.ValidationException", "Malformed input request", "MODEL_REJECTED_REQUEST", "Malformed"),
        (
            "ContentFiltered",
            json.dumps({"errorType": "ContentFiltered", "errorMessage": "blocked the prompt"}),
            "CONTENT_FILTERED",
            "blocked the prompt",
        ),
        (
            "ImageInvalid",
            json.dumps({"errorType": "ImageInvalid", "errorMessage": "truncated"}),
            "IMAGE_INVALID",
            "truncated",
        ),
        ("States.Timeout", None, "MODEL_TIMEOUT", "States.Timeout"),
        ("KeyError", json.dumps({"errorType": "KeyError", "errorMessage": "'x'"}), "INTERNAL_ERROR", "KeyError"),
    ],
)
def test_failures_are_classified_to_stable_codes(error, cause, code, words) -> None:
    got_code, message = classify_step_failure(error, cause)
    assert got_code.value == code and words in message


def test_record_failure_marks_the_image_failed_and_drops_outputs(store, photo) -> None:
    (event,) = _job(store, {"a.png": photo()})
    event["failure"] = {"Error": "Bedrock.AccessDeniedException", "Cause": "You don't have access to the model"}
    Steps(boto3.client("s3"), store).record_failure(event)
    item = _status(store, event)
    assert (item["status"], item["errorCode"]) == ("FAILED", "MODEL_ACCESS_DENIED")
    assert "access to the model" in item["cause"]


def test_report_closes_unfinished_images_and_tells_the_truth(store, photo) -> None:
    events = _job(store, {"a.png": photo(), "b.png": photo(), "c.png": photo()})
    store.set_image_status(JOB_ID, events[0]["image"]["imageId"], ImageStatus.SUCCEEDED, outputs=[])
    store.set_image_status(
        JOB_ID, events[1]["image"]["imageId"], ImageStatus.FAILED, error_code="CONTENT_FILTERED", cause="blocked"
    )
    result = Reporter(boto3.client("s3"), store).build(
        {"jobId": JOB_ID, "owner": OWNER, "bucket": BUCKET, "mapError": {"Error": "States.ItemReaderFailed"}}
    )
    assert result["status"] == "PARTIAL"
    assert result["counts"] == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 2, "CANCELLED": 0}
    assert _status(store, events[2])["cause"] == "the workflow stopped before this image finished"
    assert "c.png: INTERNAL_ERROR" in result["message"] and "workflow itself reported an error" in result["message"]
    assert len(result["subject"]) < 100 and result["subject"].isascii()
    job = store.get_job(JOB_ID)
    assert job["status"] == "PARTIAL" and job["reportKeys"]["csv"] == contracts.report_key(OWNER, JOB_ID, "csv")
    assert job["counts"] == result["counts"]  # the live counts agree with the report


def _record(name: str, sk: str) -> dict[str, Any]:
    record = load_event("ddb-stream-job-insert")["Records"][0]
    image = record["dynamodb"]["NewImage"]
    image.update(
        {"pk": {"S": contracts.job_pk(JOB_ID)}, "sk": {"S": sk}, "jobId": {"S": JOB_ID}, "owner": {"S": OWNER}}
    )
    return {**record, "eventName": name}


def test_starter_starts_only_on_job_inserts() -> None:
    records = [
        _record("INSERT", "JOB"),
        _record("MODIFY", "JOB"),
        _record("INSERT", "IMAGE#x"),
        {"eventName": "REMOVE", "dynamodb": {}},
    ]
    jobs = job_inserts(records)
    assert [j["jobId"] for j in jobs] == [JOB_ID]
    assert jobs[0]["settings"]["seed"] == 3 and isinstance(jobs[0]["settings"]["seed"], int)


def test_a_repeated_start_is_refused_by_the_execution_name(store, photo) -> None:
    _job(store, {"a.png": photo()}, start=False)
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="noop",
        roleArn="arn:aws:iam::123456789012:role/x",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 5, "End": True}}}),
    )["stateMachineArn"]
    starter = WorkflowStarter(boto3.client("s3"), store, sfn, BUCKET, machine)
    job = store.get_job(JOB_ID)
    first = starter.start(job)
    assert first is not None
    # Step Functions answers a repeated name with the same execution (same input, still running)
    # or ExecutionAlreadyExists; either way no second run, and no error for the stream
    assert starter.start(job) in (None, first)
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    manifest = json.loads(
        boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.manifest_key(JOB_ID))["Body"].read()
    )
    assert [m["name"] for m in manifest] == ["a.png"]
    assert store.get_job(JOB_ID)["status"] == "RUNNING"


def _run(store: JobStore, event: dict[str, Any]) -> dict[str, Any]:
    steps, standin = Steps(boto3.client("s3"), store), StandInBedrock()
    _answer(event, steps.prepare(event)["call"], standin)
    _answer(event, steps.build_mask(event)["call"], standin)
    steps.finalize(event)
    return _status(store, event)


def _result(item: dict[str, Any]) -> Image.Image:
    data = boto3.client("s3").get_object(Bucket=BUCKET, Key=item["outputs"][0]["key"])["Body"].read()
    return imaging.decode_image(data).convert("RGB")


def test_finalize_stores_a_scorecard_with_each_result(store, photo) -> None:
    (event,) = _job(store, {"a.png": photo(640, 400)})
    item = _run(store, event)
    card = item["outputs"][0]["quality"]
    checks = {c["check"]: c for c in card["checks"]}
    fidelity = checks["subjectFidelity"]
    # PRECISE: the product's pixels are the original's, and the scorecard says so, JSON-safe
    assert (fidelity["outcome"], fidelity["psnrDb"], fidelity["identical"]) == ("PASS", "Infinity", True)
    assert fidelity["deltaE"] == 0 and "∞" in fidelity["reason"]
    assert checks["edgeHalo"]["outcome"] in ("PASS", "WARN", "FAIL", "SKIPPED")
    assert card["outcome"] in ("PASS", "WARN", "FAIL")
    # the verdict the gallery filters on, and the two model calls the cost is counted from
    assert item["verdict"] == card["outcome"] and item["modelCalls"] == 2
    job = store.get_job(JOB_ID)
    assert job[contracts.verdict_count_attribute(card["outcome"])] == 1 and job["modelCalls"] == 2
    json.dumps(item["outputs"], allow_nan=False)
    original = Image.open(io.BytesIO(photo(640, 400))).convert("RGB")
    assert _result(item).getpixel((320, 240)) == original.getpixel((320, 240))


def test_finalize_draws_the_jobs_shadow_under_the_subject(store, photo) -> None:
    plain_event, shadow_event = _job(store, {"a.png": photo(640, 400), "b.png": photo(640, 400)})
    shadow_event["settings"] = {**shadow_event["settings"], "shadow": "contact", "shadowStrength": 1.0}
    plain, shadowed = _result(_run(store, plain_event)), _result(_run(store, shadow_event))
    # make_photo's subject is an ellipse from y = 100 to 340: the contact shadow sits at its base
    below = sum(plain.getpixel((320, 345))) - sum(shadowed.getpixel((320, 345)))
    assert below > 60
    assert plain.getpixel((320, 240)) == shadowed.getpixel((320, 240))  # the subject is untouched
    assert plain.getpixel((20, 20)) == shadowed.getpixel((20, 20))  # far from the subject: no shadow


def test_a_bad_quality_result_reaches_the_report_and_the_email(store, photo) -> None:
    (event,) = _job(store, {"a.png": photo(640, 400)})
    failing = {
        "check": "edgeHalo",
        "outcome": "FAIL",
        "reason": "Visible fringe of the old background.",
        "haloDeltaE": 7.5,
    }
    store.set_image_status(
        JOB_ID,
        event["image"]["imageId"],
        ImageStatus.SUCCEEDED,
        outputs=[{"key": "k.png", "variant": 1, "quality": {"outcome": "FAIL", "checks": [failing]}}],
    )
    result = Reporter(boto3.client("s3"), store).build({"jobId": JOB_ID, "owner": OWNER, "bucket": BUCKET})
    assert "Quality checks: FAIL: 1" in result["message"]
    assert "a.png: FAIL: Visible fringe of the old background." in result["message"]
    csv_text = boto3.client("s3").get_object(Bucket=BUCKET, Key=contracts.report_key(OWNER, JOB_ID, "csv"))["Body"]
    rows = list(csv.DictReader(csv_text.read().decode().splitlines()))
    assert (rows[0]["quality"], rows[0]["haloDeltaE"]) == ("FAIL", "7.5")


def test_a_budget_cap_stops_new_model_calls_and_says_so(store, photo) -> None:
    from chalicelib.core.errors import BudgetReached

    events = _job(store, {"a.png": photo(320, 240), "b.png": photo(320, 240)}, {"budgetUsd": 0.08, "maxModelCalls": 2})
    steps = Steps(boto3.client("s3"), store)
    first = steps.prepare(events[0])
    assert steps.prepare(events[0]) == first  # a repeated Prepare reserves nothing twice
    with pytest.raises(BudgetReached) as stopped:
        steps.prepare(events[1])  # the cap is 2 calls: photo a holds both
    assert "budget of $0.08 was spent (2 model calls)" in str(stopped.value)
    assert (
        not boto3.client("s3")
        .list_objects_v2(Bucket=BUCKET, Prefix=contracts.request_key(JOB_ID, events[1]["image"]["imageId"], "")[:-6])
        .get("Contents")
    )  # no request written for b: nothing was sent
    failure = {
        "Error": "BudgetReached",
        "Cause": json.dumps({"errorType": "BudgetReached", "errorMessage": str(stopped.value)}),
    }
    assert steps.record_failure({**events[1], "failure": failure})["errorCode"] == "BUDGET_REACHED"
    assert store.get_job(JOB_ID)["modelCallsStarted"] == 2


def test_a_failed_image_counts_the_model_calls_that_answered_before_it_failed(store, photo) -> None:
    (event,) = _job(store, {"a.png": photo(320, 240)})
    steps, standin = Steps(boto3.client("s3"), store), StandInBedrock()
    _answer(event, steps.prepare(event)["call"], standin)  # remove-background answered: billed
    failure = {"Error": "Bedrock.ValidationException", "Cause": "the inpaint request was refused"}
    steps.record_failure({**event, "failure": failure})
    assert _status(store, event)["modelCalls"] == 1 and store.get_job(JOB_ID)["modelCalls"] == 1
    # billed: the remove-background call's price is in the job's actual cost
    assert store.get_job(JOB_ID)["costUsd"] == pytest.approx(0.04)


def test_a_review_whose_deadline_passed_is_reported_as_expired_with_its_decisions(store, photo) -> None:
    from chalicelib.core.contracts import ReviewDecision

    (event,) = _job(store, {"a.png": photo(320, 240)}, {"reviewSeconds": 60})
    item = _run(store, event)
    store.open_review(JOB_ID, "token-1", "2026-11-24T13:00:00Z")
    assert store.set_review_decisions(JOB_ID, {item["imageId"]: ReviewDecision.REJECTED}) == []
    assert store.set_review_decisions(JOB_ID, {"f" * 32: ReviewDecision.APPROVED}) == ["f" * 32]  # not in the job
    result = Reporter(boto3.client("s3"), store).build({"jobId": JOB_ID, "owner": OWNER, "bucket": BUCKET})
    review = store.get_job(JOB_ID)["review"]
    assert review["status"] == "EXPIRED" and "token" not in review  # the token is forgotten
    assert "The review ended before approval" in result["message"]
    assert "Rejected in review, not delivered: 1 result(s)." in result["message"]


def test_an_approval_the_workflow_acts_on_at_once_is_reported_approved_not_expired(store, photo) -> None:
    """Step Functions resumes on SendTaskSuccess at once: the report step can run before the API's
    call returns. It must read APPROVED then (it read WAITING, and wrote EXPIRED, under load)."""
    from botocore.exceptions import ClientError

    from chalicelib.jobs.review import ReviewService

    (event,) = _job(store, {"a.png": photo(320, 240)}, {"reviewSeconds": 60})
    _run(store, event)
    store.open_review(JOB_ID, "token-1", "2030-01-01T00:00:00Z")
    reports: list[dict[str, Any]] = []

    class ResumingSfn:  # the workflow resumes inside the call, as the interpreter's thread may
        def send_task_success(self, **_: Any) -> dict[str, Any]:
            reporter = Reporter(boto3.client("s3"), store)
            reports.append(reporter.build({"jobId": JOB_ID, "owner": OWNER, "bucket": BUCKET}))
            return {}

    assert ReviewService(store, ResumingSfn()).approve(OWNER, JOB_ID)["review"] == "APPROVED"
    assert reports and "The review ended before approval" not in reports[0]["message"]
    assert store.get_job(JOB_ID)["review"]["status"] == "APPROVED"

    # a release Step Functions refused for a passing reason leaves the review open to approve again
    store.open_review(JOB_ID, "token-2", "2030-01-01T00:00:00Z")

    class ThrottledSfn:
        def send_task_success(self, **_: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendTaskSuccess")

    with pytest.raises(Exception, match="could not release"):
        ReviewService(store, ThrottledSfn()).approve(OWNER, JOB_ID)
    review = store.get_job(JOB_ID)["review"]
    assert review["status"] == "WAITING" and review["token"] == "token-2"
