"""The web app's words for people (frontend/words.py) and the ETA arithmetic (chalicelib/core/eta.py)."""

from __future__ import annotations

import pytest

from chalicelib.core import eta
from frontend import words


def _counts(**n: int) -> dict[str, int]:
    return {s: n.get(s.lower(), 0) for s in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")}


def test_a_cancelled_job_is_never_read_as_finished() -> None:
    view = {"status": "CANCELLED", "imageCount": 200, "counts": _counts(succeeded=58, failed=3, cancelled=139)}
    bar = words.progress(view)
    assert bar.fraction == pytest.approx(61 / 200)
    assert bar.text == "58 of 200 done · 3 failed · 139 cancelled before they were made"
    assert "200/200" not in bar.text and "finished" not in bar.text


def test_a_failed_job_does_not_show_a_full_bar() -> None:
    view = {"status": "FAILED", "imageCount": 8, "counts": _counts(failed=8)}
    assert words.progress(view).fraction == 0.0
    assert words.progress(view).text == "0 of 8 done · 8 failed"


def test_a_running_job_says_what_is_left() -> None:
    view = {"status": "RUNNING", "imageCount": 10, "counts": _counts(succeeded=4, running=2, pending=4)}
    assert words.progress(view).text == "4 of 10 done · 6 to go"


def test_status_words_for_a_job_waiting_for_review_and_a_closing_cancel() -> None:
    assert words.status_words({"status": "RUNNING", "review": {"status": "WAITING"}}) == "Waiting for your review"
    assert words.status_words({"status": "CANCELLED", "closing": True}).startswith("Cancelled · closing")
    assert words.status_words({"status": "PARTIAL"}) == "Done, some photos failed"


def test_the_cost_sentence_says_each_figure_once_with_what_it_is() -> None:
    cost = {"modelCalls": 19, "actualUsd": 0.77, "estimateUsd": 0.66, "budgetUsd": 5.0}
    assert words.cost_sentence(cost, finished=True) == (
        "Cost: about $0.77 (19 model calls); estimated $0.66 before the run (re-rolls and retries add calls) "
        "· budget $5.00"
    )
    assert words.cost_sentence({**cost, "actualUsd": 0.12, "modelCalls": 3}, finished=False) == (
        "Spent so far: about $0.12 (3 model calls) of an estimated $0.66 for the whole batch · budget $5.00"
    )
    assert words.cost_sentence({"modelCalls": 0}, finished=False) is None
    nothing = {"modelCalls": 0, "actualUsd": 0.0, "estimateUsd": 0.33}  # cancelled before any call
    assert words.cost_sentence(nothing, finished=True) == (
        "Nothing was spent: no model call was made (estimated $0.33 before the run)"
    )


def test_causes_name_the_web_apps_controls_not_api_fields() -> None:
    cause = (
        "preset amazon-main: fill 87% would enlarge the subject 3.10x past its own resolution; upload a larger "
        "original of this product, or submit with placement.allowUpscale true to accept an enlarged subject"
    )
    said = words.cause_words(cause, {"amazon-main": "Amazon main image"})
    assert "allowUpscale" not in said and "amazon-main" not in said
    assert 'the box "Allow enlarging a small subject" ticked' in said and "the Amazon main image preset" in said
    assert words.cause_title("BUDGET_REACHED") == "Not sent: the budget was spent"


def test_which_verdict_decides_when_the_preset_and_the_quality_disagree() -> None:
    passes = {"compliance": {"preset": "amazon-main", "checks": [{"outcome": "PASS"}]}, "quality": {"outcome": "FAIL"}}
    note = words.verdict_note(passes, "Amazon main image")
    assert note is not None and note.startswith("Meets the Amazon main image rules, so the marketplace will accept it")
    fails = {"compliance": {"preset": "amazon-main", "checks": [{"outcome": "FAIL"}]}, "quality": {"outcome": "PASS"}}
    assert "The rules decide." in (words.verdict_note(fails, "Amazon main image") or "")
    agree = {"compliance": {"preset": "amazon-main", "checks": [{"outcome": "PASS"}]}, "quality": {"outcome": "PASS"}}
    assert words.verdict_note(agree, "Amazon main image") is None


@pytest.mark.parametrize(
    ("background", "offered"),
    [(None, True), ({"source": "color", "color": "#FFFFFF"}, False), ({"source": "transparent"}, False)],
)
def test_regenerate_only_where_a_new_seed_makes_a_new_picture(background: dict | None, offered: bool) -> None:
    image = {"status": "SUCCEEDED", "outputs": [{"variant": 1}]}
    assert words.can_regenerate(image, {"background": background}) is offered


def test_the_planned_eta_is_the_quota_pace_and_the_measured_one_replaces_it() -> None:
    # 2 calls of 6 s and 3 s of Lambda per photo, 8 in flight set 25 % above the quota's pace:
    # 8 / 1.25 × 60 / 15 = 25.6 photos a minute
    planned = eta.job_eta(200, 2.0, 8)
    assert planned.basis == "planned" and planned.images_per_minute == pytest.approx(25.6)
    assert planned.seconds == 469 and planned.words().startswith("About 8 min left")
    # one photo still takes one photo's time, not a fraction of it
    assert eta.job_eta(1, 2.0, 8).seconds == 15
    measured = eta.job_eta(100, 2.0, 8, finished=100, running_seconds=600.0)  # 10 a minute, slower than planned
    assert measured.basis == "measured" and measured.seconds == 600
    early = eta.job_eta(199, 2.0, 8, finished=1, running_seconds=5.0)  # too little to measure yet
    assert early.basis == "planned"
    assert eta.map_concurrency({"BACKDROP_MAP_CONCURRENCY": "40"}) == 40
    assert eta.map_concurrency({"BACKDROP_MAP_CONCURRENCY": "lots"}) == eta.DEFAULT_MAP_CONCURRENCY
