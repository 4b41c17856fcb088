"""The scorecard's checks against independent references (quality.reference_checks), what a
re-roll is paid for (quality.re_roll_decision), and the local stand-ins' checks saying SKIPPED.

The composites come from the calibration set (bench/scorecard_set.py: a true alpha by construction)."""

from __future__ import annotations

import io
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from backend.local import rekognition_standin
from backend.local.cutout import ForegroundEstimate
from bench import scorecard_set
from chalicelib.imaging import quality
from chalicelib.imaging.quality import Check, CheckName, Outcome, Scorecard


def _outcomes(case: scorecard_set.Case, **kwargs: Any) -> dict[str, str]:
    checks = quality.reference_checks(
        case.original, case.result, case.alpha, kept_boxes=case.boxes, background=case.new, **kwargs
    )
    return {c.name.value: c.outcome.value for c in checks}


@pytest.fixture(scope="module")
def case() -> scorecard_set.Case:
    return scorecard_set.make_case("busy background", 0)


def test_a_perfect_result_passes_every_reference_check(case) -> None:
    assert set(_outcomes(case).values()) == {"PASS"}


@pytest.mark.parametrize(
    ("defect", "check"),
    [
        ("lost part", "subjectCoverage"),
        ("extra object", "subjectCoverage"),
        ("background unchanged", "backgroundReplaced"),
        ("see-through interior", "solidInterior"),
        ("old-background ring", "edgeRing"),
        ("shift", "subjectDetail"),
    ],
)
def test_each_injected_defect_fails_its_check(case, defect: str, check: str) -> None:
    bad = scorecard_set.inject(case, defect, np.random.default_rng(1))
    assert bad is not None
    assert _outcomes(bad)[check] == "FAIL"


def test_the_box_check_says_skipped_when_the_boxes_are_the_cut_outs_own(case) -> None:
    bad = scorecard_set.inject(case, "lost part", np.random.default_rng(1))
    assert bad is not None
    checks = quality.reference_checks(
        bad.original, bad.result, bad.alpha, kept_boxes=bad.boxes, boxes_from=quality.LOCAL_BOXES
    )
    coverage = next(c for c in checks if c.name is CheckName.SUBJECT_COVERAGE)
    assert coverage.outcome is Outcome.SKIPPED and "cannot fail" in coverage.reason


def test_a_loose_box_is_not_a_lost_part(case) -> None:
    left, top, width, height = case.boxes[0]
    loose = ((left - 0.05, top - 0.05, width + 0.1, height + 0.1),)
    checks = quality.reference_checks(case.original, case.result, case.alpha, kept_boxes=loose)
    assert next(c for c in checks if c.name is CheckName.SUBJECT_COVERAGE).outcome is Outcome.PASS


# ------------------------------------------------------------------------------ re-rolls


def _attempt(*checks: tuple[CheckName, Outcome]) -> dict[str, Any]:
    card = Scorecard(tuple(Check(name, outcome, f"{name.value} is {outcome.value}.") for name, outcome in checks))
    return {"attempt": 1, "outputs": [{"quality": card.to_dict()}]}


def test_a_re_roll_is_paid_only_when_every_failing_check_is_about_the_background() -> None:
    background = _attempt((CheckName.BACKGROUND_REPLACED, Outcome.FAIL), (CheckName.SUBJECT_FIDELITY, Outcome.PASS))
    helps, reason = quality.re_roll_decision(background)
    assert helps and reason.startswith("Re-rolled")
    both = _attempt((CheckName.BACKGROUND_REPLACED, Outcome.FAIL), (CheckName.SUBJECT_COVERAGE, Outcome.FAIL))
    helps, reason = quality.re_roll_decision(both)
    assert not helps and "keeps the cut-out" in reason and reason.startswith("Not re-rolled, sent to review")
    # the old-background fringe is the cut-out's edge: a new background does not remove it
    assert not quality.needs_re_roll(_attempt((CheckName.EDGE_HALO, Outcome.FAIL)))
    # the product's pixels are the original's in PRECISE; a model that re-lights them may change them
    fidelity = _attempt((CheckName.SUBJECT_FIDELITY, Outcome.FAIL))
    assert not quality.needs_re_roll(fidelity) and quality.needs_re_roll(fidelity, relit=True)
    assert quality.re_roll_decision(_attempt((CheckName.SUBJECT_FIDELITY, Outcome.PASS))) == (False, "")


# ------------------------------------------------------------------------------ the local stand-ins


def test_the_local_stand_ins_checks_say_skipped_never_pass() -> None:
    """On the local stack the labels are the cut-out engine's own and there is no OCR: the subject
    check and the text check cannot fail, so they say SKIPPED, and why."""
    photo = Image.new("RGB", (200, 160), (230, 230, 225))
    photo.paste((200, 30, 40), (60, 40, 140, 130))
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    image = {"Bytes": buffer.getvalue()}
    with mock_aws():
        uninstall = rekognition_standin.install(lambda bucket, key: b"", ForegroundEstimate())
        try:
            client = boto3.client("rekognition", region_name="us-east-1")
            present = quality.check_subject_present(client, image, ["Subject"])
            text = quality.check_text_integrity(client, image, image, subject_alpha=None)
        finally:
            uninstall()
    assert present.outcome is Outcome.SKIPPED and present.reason == quality.LOCAL_LABELS_REASON
    assert text.outcome is Outcome.SKIPPED and text.reason == quality.LOCAL_TEXT_REASON
    assert "no OCR" in text.reason and "cannot fail" in present.reason


# ------------------------------------------------------------------------------ solid stays solid


def test_a_nearly_solid_interior_is_delivered_solid_and_a_glass_stays_see_through() -> None:
    """A cut-out engine's 0.92 deep inside a product is a solid product shown faintly
    see-through; a glass's 0.3 is a glass (imaging.solid_interior, in subject_alpha_and_kept_band)."""
    from PIL import ImageDraw

    from chalicelib.imaging import images as imaging
    from chalicelib.models.base import Geometry

    canvas = Image.new("L", (128, 64), 0)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((20, 10, 60, 50), fill=235)  # the product, answered at 0.92
    draw.rectangle((80, 10, 120, 50), fill=80)  # a glass: mostly see-through
    alpha, _ = imaging.subject_alpha_and_kept_band(canvas, Geometry(128, 64, 128, 64, 128, 64, 0, 0), (128, 64), 0)
    assert alpha.getpixel((40, 30)) == 255  # deep inside: solid
    assert alpha.getpixel((20, 30)) == 235  # the edge is the engine's own
    assert alpha.getpixel((100, 30)) == 80  # the glass is left alone


def test_the_local_skips_are_said_in_the_summary_and_the_email() -> None:
    from chalicelib.delivery import report

    card = Scorecard(
        (
            Check(CheckName.SUBJECT_FIDELITY, Outcome.PASS, "Product untouched."),
            Check(CheckName.SUBJECT_PRESENT, Outcome.SKIPPED, quality.LOCAL_LABELS_REASON, {"standIn": True}),
            Check(CheckName.TEXT_INTEGRITY, Outcome.SKIPPED, quality.LOCAL_TEXT_REASON, {"standIn": True}),
        )
    )
    summary = card.summary()
    assert summary.startswith("PASS: the checks that ran passed.") and "all checks passed" not in summary
    assert quality.LOCAL_LABELS_REASON in summary and quality.LOCAL_TEXT_REASON in summary
    images = [{"name": f"p{i}.png", "outputs": [{"quality": card.to_dict()}]} for i in range(3)]
    email = "\n".join(report._quality_lines(images))
    assert email.count("no OCR") == 1 and email.count("same cut-out engine") == 1  # said once per job
