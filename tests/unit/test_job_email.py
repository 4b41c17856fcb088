"""The job email points people at the job page, not at API routes or s3:// paths."""

from __future__ import annotations

import pytest

from chalicelib.core import contracts
from chalicelib.delivery.report import Reporter

JOB_ID = "20261124T120000Z-0123456789ab"
REPORT = {
    "jobId": JOB_ID,
    "status": "PARTIAL",
    "model": "stability-inpaint",
    "counts": {"total": 2, "SUCCEEDED": 1, "FAILED": 1},
    "images": [
        {"name": "a.png", "status": "SUCCEEDED"},
        {"name": "b.png", "status": "FAILED", "errorCode": "MODEL_TIMEOUT", "cause": "no answer in 60 s"},
    ],
}


def test_the_email_links_to_the_job_page_when_the_app_url_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKDROP_APP_URL", "https://backdrop.example.com/")
    _, message = Reporter.summary(REPORT, "bucket", "owner-1")
    assert f"https://backdrop.example.com/job?job={JOB_ID}" in message
    assert "s3://" not in message and "GET /jobs" not in message
    assert contracts.job_page_url("https://x.example", JOB_ID) == f"https://x.example/job?job={JOB_ID}"


def test_without_an_app_url_the_email_says_where_the_files_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKDROP_APP_URL", raising=False)
    _, message = Reporter.summary(REPORT, "bucket", "owner-1")
    assert f"s3://bucket/{contracts.report_key('owner-1', JOB_ID, 'json')}" in message


def test_the_email_says_what_the_job_cost_and_what_the_budget_stopped() -> None:
    report = {
        **REPORT,
        "cost": {"modelCalls": 3, "actualUsd": 0.12, "estimateUsd": 0.16, "budgetUsd": 0.12},
        "images": [
            *REPORT["images"],
            {"name": "c.png", "status": "FAILED", "errorCode": "BUDGET_REACHED", "cause": "x"},
        ],
    }
    _, message = Reporter.summary(report, "bucket", "owner-1")
    # the same words as the job page and the CLI: what it cost, and the one figure for the whole job
    assert "Cost: about $0.12 (3 model calls) of a $0.12 budget · about $0.16 for the whole job" in message
    assert "The budget was spent before 1 image(s) could be sent to the model." in message
