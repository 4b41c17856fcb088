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


def test_the_local_emails_link_to_the_local_web_app() -> None:
    """With the web UI started (as `make run` does), a job's email links to its page there, not to
    `GET /jobs/ID` and `s3://` paths nobody can open."""
    from pathlib import Path

    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from frontend.api_client import BackdropClient, CognitoLogin

    stack = LocalStack(api_port=0, stage="links", retry_time_scale=0).start()
    try:
        ui = stack.start_ui(0)
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(DEMO_USER, DEMO_PASSWORD)
        client = BackdropClient(stack.api_url, login.id_token)
        photo = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.jpg"))[:1]
        refs = client.upload_files(photo).uploaded
        job = client.submit({"background": {"source": "transparent"}, "images": [{**refs[0], "labels": []}]})
        client.wait(job["jobId"], poll_s=0.3, timeout_s=90)
        (email,) = stack.wait_for_email(job["jobId"])
        assert f"See the results: {ui}/job?job={job['jobId']}" in email["Message"]
        assert "s3://" not in email["Message"] and "GET /jobs" not in email["Message"]
    finally:
        stack.stop()
