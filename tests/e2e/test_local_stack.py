"""The local stack: the demo end to end over real HTTP, and token verification at the gateway."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from e2e_support import on_shared_stack, shared_local_stack, wait_until_executions_ended

from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
from frontend.api_client import ApiError, BackdropClient, CognitoLogin

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shared_stack() -> Iterator[LocalStack]:
    """One stack for the tests that only read it or add their own users and jobs."""
    with shared_local_stack("test") as local:
        yield local


@pytest.fixture
def stack(shared_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    with on_shared_stack(shared_stack, monkeypatch) as local:
        yield local


def test_demo_prints_its_story_and_nothing_else() -> None:
    # as a user runs it (`make demo`): its own process, its own logging
    done = subprocess.run(
        [sys.executable, "-m", "backend.local", "demo", "--latency", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    engine = "U²-Net-p salient-object model" if sys.version_info < (3, 13) else "classical foreground estimate"
    assert f"cut-outs and subject boxes by the {engine}" in out
    assert "4 succeeded, 0 failed" in out
    assert f"email sent to {DEMO_USER}: Backdrop job" in out and "(COMPLETED)" in out
    assert re.search(r"^demo took \d+\.\d s$", out, re.MULTILINE)
    assert len(out.splitlines()) <= 15
    # stderr holds the progress bar only (and, without the model, the one line saying so): no
    # tracebacks, warnings or server logs
    updates = [u for u in done.stderr.replace("\r", "\n").splitlines() if u.strip()]
    if sys.version_info >= (3, 13):
        assert updates.pop(0).startswith("WARNING backdrop.local: local cut-out engine: ")
    assert updates and all(re.match(r"^\[[#.]{30}\] \d/4 images ", u) for u in updates), done.stderr[-3000:]


def _sign_in(stack: LocalStack) -> CognitoLogin:
    login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
    login.sign_in(DEMO_USER, DEMO_PASSWORD)
    return login


def test_gateway_verifies_tokens_like_api_gateway(stack: LocalStack) -> None:
    url = f"{stack.api_url}/jobs"
    assert requests.get(f"{stack.api_url}/health", timeout=5).status_code == 200
    assert requests.get(url, timeout=5).status_code == 401
    token = _sign_in(stack).id_token()
    assert requests.get(url, headers={"Authorization": token}, timeout=5).status_code == 200
    header, payload, signature = token.split(".")
    forged = json.loads(__import__("base64").urlsafe_b64decode(payload + "=="))
    forged["sub"] = "someone-else"
    forged_payload = __import__("base64").urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    for bad in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.AAAA", "garbage", "a.b.c"):
        assert requests.get(url, headers={"Authorization": bad}, timeout=5).status_code == 401, bad


def test_expired_and_wrong_audience_tokens_are_refused(stack: LocalStack) -> None:
    from backend.local.gateway import CognitoTokenVerifier

    token = _sign_in(stack).id_token()
    pool = stack.outputs["user_pool_id"]
    jwks = f"{stack.endpoint}/{pool}/.well-known/jwks.json"
    issuer = f"https://cognito-idp.us-east-1.amazonaws.com/{pool}"
    assert CognitoTokenVerifier(jwks, issuer, stack.outputs["client_id"]).claims(token)["token_use"] == "id"
    with pytest.raises(ValueError, match="aud"):
        CognitoTokenVerifier(jwks, issuer, "another-client").claims(token)
    with pytest.raises(ValueError, match="exp|expired"):
        CognitoTokenVerifier(jwks, issuer, stack.outputs["client_id"], clock=lambda: time.time() + 86_400 * 2).claims(
            token
        )


def test_client_reports_server_errors_with_their_code(stack: LocalStack) -> None:
    client = BackdropClient(stack.api_url, _sign_in(stack).id_token)
    with pytest.raises(ApiError) as caught:
        client.submit({"prompt": "", "images": []})
    assert caught.value.status == 400 and caught.value.code == "VALIDATION_FAILED"
    with pytest.raises(ApiError) as caught:
        client.job("20260101T000000Z-0123456789ab")
    assert caught.value.code == "NOT_FOUND"
    wrong = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
    with pytest.raises(ApiError, match="SIGN_IN_FAILED"):
        wrong.sign_in(DEMO_USER, "not-the-password")


def test_each_user_gets_their_own_job_emails_and_can_opt_out(stack: LocalStack) -> None:
    """Two users, one job each, and a job with notify false: every email reaches only the inbox of
    the user who ran the job (SNS filter policy on the owner), and the opted-out job sends none."""
    from pathlib import Path

    other, other_password = "zoe@example.com", "Zoe-local-2026!"
    stack.create_user(other, other_password)
    earlier = len(stack.emails)  # the stack is the module's: what other tests' jobs sent is not this test's
    photo = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.jpg"))[:1]
    jobs = {}
    for user, password, notify in ((DEMO_USER, DEMO_PASSWORD, True), (other, other_password, True)):
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(user, password)
        client = BackdropClient(stack.api_url, login.id_token)
        refs = client.upload_files(photo).uploaded
        jobs[user] = client.submit({"prompt": "a studio", "notify": notify, "images": [{**refs[0], "labels": []}]})
        client.wait(jobs[user]["jobId"], poll_s=0.3, timeout_s=60)
    silent = client.submit({"prompt": "a studio", "notify": False, "images": [{**refs[0], "labels": []}]})
    view = client.wait(silent["jobId"], poll_s=0.3, timeout_s=60)
    assert view["notify"] is False
    for job in jobs.values():
        stack.wait_for_email(job["jobId"])
    wait_until_executions_ended(stack)
    stack.settle()  # the reconciler has seen every execution end by now: no late email either
    received = sorted((e["To"], e["Subject"].split(":")[0]) for e in stack.emails[earlier:])
    assert received == sorted((user, f"Backdrop job {job['jobId']}") for user, job in jobs.items())
    assert not [e for e in stack.emails[earlier:] if silent["jobId"] in e["Subject"]]
    assert client.job(silent["jobId"])["notification"]["status"] == "SKIPPED"
    with pytest.raises(ApiError) as caught:
        client.submit({"prompt": "a studio", "notify": "no", "images": [{**refs[0], "labels": []}]})
    assert caught.value.status == 400 and "notify" in caught.value.message
