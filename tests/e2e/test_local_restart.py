"""The local stack's app side (API, stream delivery, Lambda invocations) killed mid-batch and
restarted. Its own module: it starts a stack of its own, and a start resets moto's state in the
process, so it cannot share a module with tests on a shared stack (tests/e2e/e2e_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from e2e_support import Gate

from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
from frontend.api_client import BackdropClient, CognitoLogin

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _sign_in(stack: LocalStack) -> CognitoLogin:
    login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
    login.sign_in(DEMO_USER, DEMO_PASSWORD)
    return login


def test_app_side_killed_mid_batch_and_restarted_loses_nothing() -> None:
    """The API, the stream delivery and the Lambda invocations die mid-batch and come back; the
    AWS side (moto: table, bucket, executions) keeps its state, as on AWS. Every image ends
    SUCCEEDED, exactly once, in one execution."""
    from backend.local.cutout import ForegroundEstimate

    samples = sorted((ROOT / "samples").glob("*.jpg"))
    # about orchestration: the quick classical cut-out keeps the timing about the restart
    stack = LocalStack(
        api_port=0, stage="restart", latency_s=0.4, max_concurrency=2, cutout=ForegroundEstimate(), retry_time_scale=0
    ).start()
    gate = stack.bedrock.sleep = Gate()  # model calls wait until the app side is down
    try:
        client = BackdropClient(stack.api_url, _sign_in(stack).id_token)
        refs = client.upload_files(samples).uploaded
        job = client.submit({"prompt": "a studio", "images": [{**r, "labels": []} for r in refs]})
        gate.wait_for_arrivals(1)  # mid-batch
        stack.stop_app()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{stack.api_url}/health", timeout=2)
        # Step Functions meets throttled Lambdas meanwhile, and retries: each Retry wait is held
        # (not slept) until the app side is back, so the outage outlasts no retry budget
        retried = stack.retry_waits.count
        stack.retry_waits.hold()
        gate.open()
        stack.retry_waits.wait_for(retried + 1, 60, "Step Functions to retry a throttled Lambda")
        stack.start_app()
        stack.retry_waits.release()
        view = client.wait(job["jobId"], poll_s=0.3, timeout_s=120)
        assert view["status"] == "COMPLETED", view
        assert view["counts"]["SUCCEEDED"] == len(samples)
        executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.outputs["state_machine_arn"])
        assert [e["name"] for e in executions["executions"]] == [job["jobId"]]  # redelivered records: no second run
    finally:
        stack.stop()
