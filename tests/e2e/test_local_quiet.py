"""The local stack is quiet for normal jobs (#29.8): no ERROR line from the emulation."""

from __future__ import annotations

import logging

import pytest
from harness import upload

pytestmark = pytest.mark.slow
OWNER = "user-quiet"


def test_a_job_without_review_logs_no_error(run_job, photo, caplog) -> None:
    """Its workflow asks `IsPresent` of `$.settings.reviewSeconds`, which a job without review
    does not have: AWS answers false without a word; moto logged `ERROR ... NoSuchJsonPathError`
    for it, once per job, in every `make run`."""
    body = {
        "background": {"source": "transparent"},
        "outputFormat": "png",
        "images": [{"imageRef": upload(OWNER, "a.png", photo(200, 160), "png"), "name": "a.png", "labels": []}],
    }
    with caplog.at_level(logging.WARNING):
        _, view = run_job(OWNER, body)
    assert view["status"] == "COMPLETED" and view.get("review") in (None, {})
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [f"{r.name}: {r.getMessage()[:200]}" for r in errors]
