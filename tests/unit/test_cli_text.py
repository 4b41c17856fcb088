"""What `backdrop status` prints for a re-rolled image: its scorecard and every attempt."""

from __future__ import annotations

from frontend import cli


def test_status_shows_the_kept_result_and_each_attempt_of_a_re_rolled_image() -> None:
    card = {
        "outcome": "PASS",
        "checks": [{"check": "subjectPresent", "outcome": "PASS", "reason": "Product still there."}],
    }
    view = {
        "jobId": "20261125T050000Z-0123456789ab",
        "status": "COMPLETED",
        "model": "stability-inpaint",
        "counts": {"SUCCEEDED": 1, "FAILED": 0},
        "images": [
            {
                "name": "bottle.png",
                "status": "SUCCEEDED",
                "outputs": [{"key": "k", "variant": 1, "quality": card}],
                "attempts": [
                    {"attempt": 1, "seed": 42, "outcome": "FAIL", "costUsd": 0.083, "kept": False},
                    {"attempt": 2, "seed": 104771, "outcome": "PASS", "costUsd": 0.042, "kept": True},
                ],
            }
        ],
    }
    text = cli._status_text(view)
    assert "bottle.png" in text and "quality PASS: all checks passed" in text
    assert "Re-rolled: attempt 1 FAIL (seed 42), attempt 2 PASS (seed 104771); kept attempt 2; $0.12 in all" in text
    view["images"][0]["attempts"] = view["images"][0]["attempts"][1:]  # made once: nothing more to say
    assert "Re-rolled" not in cli._status_text(view)
    # the regenerations of its images, billed to their own jobs, said on the status apart
    view["cost"] = {"modelCalls": 2, "actualUsd": 0.126, "regenerations": 1, "regeneratedUsd": 0.04}
    assert "Cost: about $0.13 (2 model calls) · plus $0.04 in 1 regeneration" in cli._status_text(view)
    assert "report is being updated" not in cli._status_text(view)
    view["reportRewrite"] = {"status": "STARTED", "requestedAt": "2026-11-25T08:00:00.000000Z"}
    assert "the report is being updated with your picks" in cli._status_text(view)
