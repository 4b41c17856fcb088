"""Finalize's Rekognition checks and automatic re-rolls, step by step on moto (no state machine).

Rekognition is a real boto3 client behind botocore's Stubber: each test queues what Rekognition
answers, so the assertions are about Backdrop's comparison (labels and boxes against the kept
ones, text before and after) and what it does when Rekognition cannot read or does not answer.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from builders import BUCKET
from PIL import Image, ImageDraw

from backend.local.bedrock_standin import STABILITY_FILTERS, StandInBedrock
from chalicelib.core import contracts
from chalicelib.imaging import quality
from chalicelib.models import registry
from chalicelib.store.jobs import JobStore, NewImage
from chalicelib.workflow.steps import Steps, re_roll_seed

OWNER = "owner-1"
JOB_ID = "20261125T050000Z-0123456789ab"
BOX = (0.25, 0.2, 0.5, 0.7)  # around make_photo's subject (an ellipse over 0.3..0.7 x 0.25..0.85)
LABELS_CALL = {"Image": {"Bytes": ANY}, "MaxLabels": 100, "MinConfidence": 50}
TEXT_CALL = {"Image": {"Bytes": ANY}}


def _labels(*names: str, box: tuple[float, float, float, float] = BOX, confidence: float = 96.0) -> dict[str, Any]:
    left, top, width, height = box
    geometry = {"Left": left, "Top": top, "Width": width, "Height": height}
    return {
        "Labels": [
            {"Name": n, "Confidence": confidence, "Instances": [{"BoundingBox": geometry, "Confidence": confidence}]}
            for n in names
        ]
    }


def _text(*lines: str) -> dict[str, Any]:
    box = {"Left": 0.42, "Top": 0.5, "Width": 0.16, "Height": 0.05}  # on the subject
    return {
        "TextDetections": [
            {"Type": "LINE", "DetectedText": t, "Confidence": 99.0, "Geometry": {"BoundingBox": box}} for t in lines
        ]
    }


def _photo(width: int = 480, height: int = 320, fmt: str = "PNG") -> bytes:
    img = Image.new("RGB", (width, height), (235, 235, 230))
    ImageDraw.Draw(img).ellipse((width * 0.3, height * 0.25, width * 0.7, height * 0.85), fill=(200, 30, 40))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _event(store: JobStore, settings: dict[str, Any] | None = None, data: bytes | None = None) -> dict[str, Any]:
    """One image of a job whose user kept the label "Bottle" (its box stored at labelling)."""
    settings = {
        "model": "stability-inpaint",
        "prompt": "a beach",
        "mode": "PRECISE",
        "seed": 9,
        "variants": 1,
        "outputFormat": "png",
        "reRolls": 0,
        **(settings or {}),
    }
    image_id = contracts.new_opaque_id()
    ref = contracts.image_ref_of(contracts.new_opaque_id(), image_id, "png")
    key = contracts.upload_key(OWNER, ref)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=data or _photo())
    image = NewImage(image_id=image_id, image_ref=ref, key=key, name="bottle.png", labels=("Bottle",), boxes=(BOX,))
    store.put_job(job_id=JOB_ID, owner=OWNER, model=settings["model"], settings=settings, images=[image])
    assert store.mark_running(JOB_ID, "arn:aws:states:us-east-1:123456789012:execution:backdrop-test:x")
    item = {"imageId": image_id, "key": key, "name": "bottle.png", "labels": ["Bottle"], "boxes": [list(BOX)]}
    return {"jobId": JOB_ID, "owner": OWNER, "bucket": BUCKET, "settings": settings, "image": item}


def _answer(call: dict[str, Any], standin: StandInBedrock, *, repaint: bool = False) -> None:
    """Answer a model call with the stand-in; `repaint`: as a model that redraws the subject a
    little (its pixels shift by two levels), as generative models do outside PRECISE."""
    s3 = boto3.client("s3")
    body = json.loads(s3.get_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["requestUri"])[1])["Body"].read())
    answer = standin(call["modelId"], body)
    if repaint:
        img = Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))).convert("RGB")
        buf = io.BytesIO()
        img.point(lambda v: max(0, v - 2)).save(buf, "PNG")
        answer["images"][0] = base64.b64encode(buf.getvalue()).decode()
    s3.put_object(Bucket=BUCKET, Key=contracts.split_s3_uri(call["responseUri"])[1], Body=json.dumps(answer).encode())


@pytest.fixture
def rekognition() -> Any:
    client = boto3.client("rekognition")
    with Stubber(client) as stubber:
        client.stubber = stubber  # type: ignore[attr-defined]
        yield client
        stubber.assert_no_pending_responses()


def _prepared(
    store: JobStore,
    rekognition: Any,
    settings: dict[str, Any] | None = None,
    data: bytes | None = None,
    *,
    repaint: bool = False,
):
    """Steps, the event and the stand-in, with the model calls up to Finalize answered."""
    steps, standin = Steps(boto3.client("s3"), store, rekognition), StandInBedrock()
    event = _event(store, settings, data)
    _answer(steps.prepare(event)["call"], standin)
    if len(registry.adapter_for(registry.get_model(event["settings"]["model"])).steps) > 1:
        _answer(steps.build_mask(event)["call"], standin, repaint=repaint)
    return steps, event, standin


def _image(store: JobStore, event: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in store.images(JOB_ID) if i["imageId"] == event["image"]["imageId"])


def _checks(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in output["quality"]["checks"]}


# ------------------------------------------------------------------------------ the checks


def test_the_kept_subject_is_found_in_place_and_identical_text_needs_no_call(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition)
    rekognition.stubber.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)
    answer = steps.finalize(event)
    assert answer["reroll"] is None and answer["status"] == "SUCCEEDED"
    checks = _checks(_image(store, event)["outputs"][0])
    present = checks["subjectPresent"]
    assert present["outcome"] == "PASS" and "'Bottle'" in present["reason"]
    assert present["boxOverlap"] == 1.0
    # PRECISE: the product's pixels are the original's, so its text is too (no DetectText paid)
    assert checks["textIntegrity"]["outcome"] == "PASS"


def test_a_jpeg_result_whose_kept_subject_passes_needs_no_text_call(store, rekognition) -> None:
    """The card measures the delivered JPEG (not identical, PSNR measured); the subject was put
    back bit for bit before encoding, so its text needs no DetectText (issue 27, point 3)."""
    steps, event, _ = _prepared(store, rekognition, {"outputFormat": "jpeg"})
    rekognition.stubber.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)
    steps.finalize(event)  # the Stubber raises on any call not queued: no DetectText here
    checks = _checks(_image(store, event)["outputs"][0])
    assert checks["subjectFidelity"]["identical"] is False and checks["subjectFidelity"]["outcome"] == "PASS"
    assert checks["textIntegrity"]["outcome"] == "PASS"


def test_a_missing_or_moved_subject_is_flagged(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition)
    rekognition.stubber.add_response("detect_labels", _labels("Table", "Room"), LABELS_CALL)
    steps.finalize(event)
    present = _checks(_image(store, event)["outputs"][0])["subjectPresent"]
    assert present["outcome"] == "FAIL" and present["labelsMissing"] == ["Bottle"]
    assert _image(store, event)["outputs"][0]["quality"]["outcome"] == "FAIL"


def test_a_moved_subject_warns(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition)
    rekognition.stubber.add_response("detect_labels", _labels("Bottle", box=(0.0, 0.0, 0.2, 0.2)), LABELS_CALL)
    steps.finalize(event)
    present = _checks(_image(store, event)["outputs"][0])["subjectPresent"]
    assert present["outcome"] == "WARN" and "moved" in present["reason"] and present["boxOverlap"] == 0.0


def test_a_throttled_rekognition_never_fails_the_image_and_says_why(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition)
    rekognition.stubber.add_client_error("detect_labels", "ThrottlingException", "Rate exceeded", 400)
    steps.finalize(event)
    item = _image(store, event)
    assert item["status"] == "SUCCEEDED"
    present = _checks(item["outputs"][0])["subjectPresent"]
    assert present["outcome"] == "SKIPPED" and present["errorCode"] == "ThrottlingException"
    assert present["reason"].startswith("Could not run")


def test_changed_text_fails_and_the_originals_text_is_read_once(store, rekognition) -> None:
    # DEFAULT mode: the model's pixels are the result, so the product's text may have changed
    steps, event, standin = _prepared(store, rekognition, {"mode": "DEFAULT", "reRolls": 1}, repaint=True)
    stub = rekognition.stubber
    stub.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)
    stub.add_response("detect_text", _text("ORGANIC COFFEE", "500 g"), TEXT_CALL)  # the original
    stub.add_response("detect_text", _text("ORGANC COFEE", "500 g"), TEXT_CALL)  # the result
    first = steps.finalize(event)
    text = first["attempts"][0]["outputs"][0]["quality"]["checks"][-1]
    assert text["check"] == "textIntegrity" and text["outcome"] == "FAIL"
    assert "'ORGANIC COFFEE' now reads 'ORGANC COFEE'" in text["reason"]
    # re-rolled; the original's text is kept in the scratch space: one DetectText per attempt now
    assert first["reroll"] is not None
    _answer(first["reroll"]["call"], standin, repaint=True)
    stub.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)
    stub.add_response("detect_text", _text("ORGANIC COFFEE", "500 g"), TEXT_CALL)
    second = steps.finalize({**event, "finalized": first})
    assert second["reroll"] is None
    item = _image(store, event)
    assert [a["outcome"] for a in item["attempts"]] == ["FAIL", "PASS"]
    assert _checks(item["outputs"][0])["textIntegrity"]["outcome"] == "PASS"
    # attempt 1: DetectLabels and DetectText on the result, DetectText on the original; attempt 2: two
    price = contracts.REKOGNITION_USD_PER_IMAGE
    costs = [a["costUsd"] for a in item["attempts"]]
    assert costs == [pytest.approx(0.08 + 3 * price), pytest.approx(0.04 + 2 * price)]


def test_an_image_rekognition_cannot_take_is_not_available_not_passed(store, rekognition) -> None:
    # a 3000 x 70 banner fits the model but, scaled for Rekognition, is under its 80 px a side
    steps, event, _ = _prepared(store, rekognition, {"mode": "DEFAULT"}, _photo(1500, 70), repaint=True)
    steps.finalize(event)
    checks = _checks(_image(store, event)["outputs"][0])
    for name in ("subjectPresent", "textIntegrity"):
        assert checks[name]["outcome"] == "SKIPPED" and checks[name]["reason"].startswith("Not available"), name


def test_a_webp_result_is_checked_on_its_pixels(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition, {"outputFormat": "webp"})
    rekognition.stubber.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)
    steps.finalize(event)
    assert _checks(_image(store, event)["outputs"][0])["subjectPresent"]["outcome"] == "PASS"


def test_rekognition_refusing_the_image_says_not_available(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition)
    rekognition.stubber.add_client_error("detect_labels", "InvalidImageFormatException", "bad image", 400)
    steps.finalize(event)
    present = _checks(_image(store, event)["outputs"][0])["subjectPresent"]
    assert present["outcome"] == "SKIPPED" and present["reason"].startswith("Not available")


# ------------------------------------------------------------------------------ re-rolls


def _result_bytes(store: JobStore, event: dict[str, Any]) -> bytes:
    key = _image(store, event)["outputs"][0]["key"]
    return boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_a_failing_image_is_re_rolled_with_a_new_seed_and_the_better_attempt_kept(store, rekognition) -> None:
    steps, event, standin = _prepared(store, rekognition, {"reRolls": 2})
    stub = rekognition.stubber
    stub.add_response("detect_labels", _labels("Table"), LABELS_CALL)  # attempt 1: the bottle is gone
    first = steps.finalize(event)
    assert _image(store, event)["status"] == "RUNNING"  # not finished while it is being made again
    reroll = first["reroll"]
    assert reroll["attempt"] == 2 and reroll["seed"] == re_roll_seed(9, 2, 4_294_967_294) != 9
    request_key = contracts.split_s3_uri(reroll["call"]["requestUri"])[1]
    body = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=request_key)["Body"].read())
    assert body["seed"] == reroll["seed"] and "inpaint" in reroll["call"]["modelId"]  # the cut-out stays
    assert "outputs" not in _image(store, event)  # recorded when the image finishes
    _answer(reroll["call"], standin)
    stub.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)  # attempt 2: back in place
    second = steps.finalize({**event, "finalized": first})
    assert second["reroll"] is None  # it passes: no third attempt, though one was allowed
    item = _image(store, event)
    assert item["status"] == "SUCCEEDED"
    assert [(a["attempt"], a["outcome"], a["kept"]) for a in item["attempts"]] == [
        (1, "FAIL", False),
        (2, "PASS", True),
    ]
    assert [a["seed"] for a in item["attempts"]] == [9, reroll["seed"]]
    assert item["outputs"][0]["seed"] == reroll["seed"]
    assert item["attempts"][0]["quality"][0]["outcome"] == "FAIL"  # every attempt keeps its scorecard


def test_a_worse_re_roll_leaves_the_first_result_in_place(store, rekognition) -> None:
    steps, event, standin = _prepared(store, rekognition, {"reRolls": 1, "reRollOn": "WARN"})
    stub = rekognition.stubber
    stub.add_response("detect_labels", _labels("Bottle", confidence=60.0), LABELS_CALL)  # WARN: unsure
    first = steps.finalize(event)
    key = first["attempts"][0]["outputs"][0]["key"]
    kept_bytes = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    _answer(first["reroll"]["call"], standin)
    stub.add_response("detect_labels", _labels("Room"), LABELS_CALL)  # FAIL: gone
    second = steps.finalize({**event, "finalized": first})
    assert second["reroll"] is None  # the one re-roll is used up
    item = _image(store, event)
    assert [(a["outcome"], a["kept"]) for a in item["attempts"]] == [("WARN", True), ("FAIL", False)]
    assert _result_bytes(store, event) == kept_bytes  # the better result is the one delivered
    assert item["outputs"][0]["seed"] == 9


def test_a_content_filtered_re_roll_keeps_the_best_attempt_and_stops(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition, {"reRolls": 3})
    rekognition.stubber.add_response("detect_labels", _labels("Table"), LABELS_CALL)
    first = steps.finalize(event)
    # the re-roll's model call answered with the content filter
    key = contracts.split_s3_uri(first["reroll"]["call"]["responseUri"])[1]
    boto3.client("s3").put_object(
        Bucket=BUCKET, Key=key, Body=json.dumps({"finish_reasons": [STABILITY_FILTERS["output"]]}).encode()
    )
    second = steps.finalize({**event, "finalized": first})
    assert second["reroll"] is None  # three re-rolls were allowed; a content filter ends them
    item = _image(store, event)
    assert item["status"] == "SUCCEEDED"
    assert [(a["attempt"], a.get("errorCode"), a["kept"]) for a in item["attempts"]] == [
        (1, None, True),
        (2, "CONTENT_FILTERED", False),
    ]


def test_a_re_roll_whose_model_call_failed_keeps_the_best_attempt(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition, {"reRolls": 3})
    rekognition.stubber.add_response("detect_labels", _labels("Table"), LABELS_CALL)
    first = steps.finalize(event)
    # the state machine's Catch after the re-roll's call used up its retries
    failure = {"Error": "Bedrock.ServiceUnavailableException", "Cause": "Service unavailable"}
    answer = steps.finalize({**event, "finalized": first, "rerollFailure": failure})
    assert answer["reroll"] is None and answer["status"] == "SUCCEEDED"
    item = _image(store, event)
    assert [(a["attempt"], a.get("errorCode"), a["kept"]) for a in item["attempts"]] == [
        (1, None, True),
        (2, "MODEL_ERROR", False),
    ]
    assert item["outputs"][0]["quality"]["outcome"] == "FAIL"  # the best there is, and it says so


def test_no_re_roll_when_disabled_or_when_the_input_itself_fails(store, rekognition) -> None:
    steps, event, _ = _prepared(store, rekognition, {"reRolls": 0})
    rekognition.stubber.add_response("detect_labels", _labels("Table"), LABELS_CALL)
    assert steps.finalize(event)["reroll"] is None
    assert [a["outcome"] for a in _image(store, event)["attempts"]] == ["FAIL"]
    bad_input = {
        "attempt": 1,
        "outputs": [
            {
                "quality": quality.Scorecard(
                    (
                        quality.Check(
                            quality.CheckName.SUBJECT_FIDELITY, quality.Outcome.FAIL, "No product.", quality.BAD_INPUT
                        ),
                    )
                ).to_dict()
            }
        ],
    }
    assert not quality.needs_re_roll(bad_input)


def test_a_one_call_model_is_re_rolled_whole_and_its_text_is_read_inside_the_kept_boxes(store, rekognition) -> None:
    steps, event, standin = _prepared(store, rekognition, {"model": "titan-image-v2", "reRolls": 1})
    stub = rekognition.stubber
    exit_sign = _text("EXIT")["TextDetections"][0]
    exit_sign["Geometry"]["BoundingBox"] = {"Left": 0.02, "Top": 0.02, "Width": 0.1, "Height": 0.05}
    original_text = {"TextDetections": [exit_sign, *_text("ORGANIC")["TextDetections"]]}
    stub.add_response("detect_labels", _labels("Table"), LABELS_CALL)
    stub.add_response("detect_text", original_text, TEXT_CALL)
    stub.add_response("detect_text", _text("ORGANIC"), TEXT_CALL)  # the sign in the old background is gone
    first = steps.finalize(event)
    checks = _checks(first["attempts"][0]["outputs"][0])
    # no cut-out: the kept label's box says where the product is, so only its text is compared
    assert checks["textIntegrity"]["outcome"] == "PASS" and checks["textIntegrity"]["linesOnProduct"] == 1
    assert checks["subjectFidelity"]["outcome"] == "SKIPPED"
    reroll = first["reroll"]
    assert "titan" in reroll["call"]["modelId"]
    request_key = contracts.split_s3_uri(reroll["call"]["requestUri"])[1]
    body = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=request_key)["Body"].read())
    assert body["imageGenerationConfig"]["seed"] == reroll["seed"] == re_roll_seed(9, 2, 2_147_483_646)
    assert body["taskType"] == "OUTPAINTING"
    _answer(reroll["call"], standin)
    stub.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)
    stub.add_response("detect_text", _text("ORGANIC"), TEXT_CALL)
    steps.finalize({**event, "finalized": first})
    item = _image(store, event)
    assert [(a["outcome"], a["kept"]) for a in item["attempts"]] == [("FAIL", False), ("PASS", True)]
    spec = registry.get_model("titan-image-v2")
    assert item["attempts"][1]["costUsd"] == pytest.approx(
        spec.re_roll_price_usd + 2 * contracts.REKOGNITION_USD_PER_IMAGE
    )


def test_a_re_roll_is_reserved_against_the_budget_and_skipped_when_it_is_spent(store, rekognition) -> None:
    # the budget pays for the image's two calls (remove-background, inpaint) and no third
    steps, event, _ = _prepared(store, rekognition, {"reRolls": 2, "budgetUsd": 0.08, "maxModelCalls": 2})
    rekognition.stubber.add_response("detect_labels", _labels("Table"), LABELS_CALL)  # FAIL: re-roll due
    answer = steps.finalize(event)
    assert answer["reroll"] is None  # no call is written past the cap
    item = _image(store, event)
    assert item["status"] == "SUCCEEDED"  # the first attempt is delivered
    assert [(a["attempt"], a.get("errorCode"), a["kept"]) for a in item["attempts"]] == [
        (1, None, True),
        (2, "BUDGET_REACHED", False),
    ]
    assert "was not re-rolled" in item["attempts"][1]["cause"]
    assert store.get_job(JOB_ID)["modelCallsStarted"] == 2 and item["modelCalls"] == 2


def test_a_re_roll_within_the_budget_is_reserved_once(store, rekognition) -> None:
    steps, event, standin = _prepared(store, rekognition, {"reRolls": 1, "budgetUsd": 0.12, "maxModelCalls": 3})
    rekognition.stubber.add_response("detect_labels", _labels("Table"), LABELS_CALL)
    first = steps.finalize(event)
    assert first["reroll"] is not None
    rekognition.stubber.add_response("detect_labels", _labels("Table"), LABELS_CALL)
    assert steps.finalize(event)["reroll"] is not None  # a repeated finalize reserves nothing twice
    assert store.get_job(JOB_ID)["modelCallsStarted"] == 3
    _answer(first["reroll"]["call"], standin)
    rekognition.stubber.add_response("detect_labels", _labels("Bottle"), LABELS_CALL)
    steps.finalize({**event, "finalized": first})
    item = _image(store, event)
    assert [(a["attempt"], a["kept"]) for a in item["attempts"]] == [(1, False), (2, True)]
    assert item["modelCalls"] == 3  # both calls of the image and the re-roll answered
    # the job's actual cost is what its attempts cost, added once as the image finished
    job = store.get_job(JOB_ID)
    assert job["costUsd"] == pytest.approx(sum(a["costUsd"] for a in item["attempts"]))


def test_a_composed_background_gets_the_checks_in_one_attempt_and_is_never_re_rolled(store, rekognition) -> None:
    # a colour background: remove-background alone, reserved as one call against the budget
    settings = {"background": {"source": "color", "color": "#FFFFFF"}, "reRolls": 2, "maxModelCalls": 1}
    steps, standin = Steps(boto3.client("s3"), store, rekognition), StandInBedrock()
    event = _event(store, {**settings, "budgetUsd": 0.04})
    _answer(steps.prepare(event)["call"], standin)
    assert store.get_job(JOB_ID)["modelCallsStarted"] == 1
    rekognition.stubber.add_response("detect_labels", _labels("Table"), LABELS_CALL)  # the subject is missing
    answer = steps.finalize(event)
    # a FAIL, but the cut-out is deterministic: a re-roll would make the same image
    assert answer["reroll"] is None and answer["status"] == "SUCCEEDED"
    item = _image(store, event)
    assert _checks(item["outputs"][0])["subjectPresent"]["outcome"] == "FAIL"
    assert item["verdict"] == "FAIL" and item["modelCalls"] == 1
    (attempt,) = item["attempts"]
    assert attempt["kept"] and attempt["costUsd"] > 0
    # repeated after its scratch was discarded: the same answer, from the store
    again = steps.finalize(event)
    assert again["reroll"] is None and again["outputs"] == 1 and len(again["attempts"]) == 1


# ------------------------------------------------------------------------------ what a re-roll can fix


def test_a_cut_out_defect_is_never_re_rolled_and_the_card_says_why(store, rekognition, monkeypatch) -> None:
    """The kept label's box (Rekognition's, at labelling) reaches far above what the cut-out kept:
    the cut-out lost the top of the product. A re-roll redraws only the background, so none is
    paid for, though three are allowed and the result is also WARN (reRollOn WARN)."""
    import sys

    module = sys.modules[__name__]
    monkeypatch.setattr(module, "BOX", (0.3, 0.02, 0.4, 0.83))  # the subject spans 0.25..0.85 in height
    steps, event, _ = _prepared(store, rekognition, {"reRolls": 3, "reRollOn": "WARN"})
    # on the result, Rekognition is unsure of the bottle: a WARN a re-roll might change
    rekognition.stubber.add_response("detect_labels", _labels("Bottle", confidence=60.0), LABELS_CALL)
    answer = steps.finalize(event)
    assert answer["reroll"] is None and answer["status"] == "SUCCEEDED"
    item = _image(store, event)
    assert [a["attempt"] for a in item["attempts"]] == [1]  # zero re-rolls
    assert item["modelCalls"] == 2  # remove-background and inpaint, nothing more
    card = item["outputs"][0]["quality"]
    coverage = _checks(item["outputs"][0])["subjectCoverage"]
    assert coverage["outcome"] == "FAIL" and "Part of the product lost" in coverage["reason"]
    assert card["reRoll"]["helps"] is False and card["reRoll"]["review"] is True
    reason = card["reRoll"]["reason"]
    assert reason.startswith("Not re-rolled, sent to review: Part of the product lost")
    assert "redraws only the background" in reason and "the cut-out" in reason


def test_a_background_defect_alone_is_still_re_rolled(store, rekognition) -> None:
    """Only the kept label unsure on the result (it depends on the background too): re-rolled."""
    steps, event, _ = _prepared(store, rekognition, {"reRolls": 1, "reRollOn": "WARN"})
    rekognition.stubber.add_response("detect_labels", _labels("Bottle", confidence=60.0), LABELS_CALL)
    first = steps.finalize(event)
    assert first["reroll"] is not None and first["reroll"]["attempt"] == 2
