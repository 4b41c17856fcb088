"""S3 failing for a while under the workflow, on the executed state machine (moto's interpreter,
the real ASL and Lambdas): the step is retried per image and the job succeeds; an outage longer
than every retry fails the image with a cause that names the step (issue #26: a 30 s S3 write
failure failed every image of a job for good).

moto really sleeps between retries; the e2e `stack` records the waits instead of sleeping them
(tests/e2e/conftest.py), and the outage is measured on that clock: it ends once the state machine
has asked to wait its length."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from harness import upload

from backend.local import iam
from backend.local.sfn_hooks import RetryWaits
from chalicelib.core.errors import STORAGE_RETRY
from chalicelib.store import clients as aws

pytestmark = pytest.mark.slow


class S3WriteOutage:
    """PutObject by one workflow step answers S3's 503 SlowDown until the state machine has
    waited `seconds` in its retries (the SDK's own retries are long spent when this reaches the
    step)."""

    def __init__(self, step: str, seconds: float, retries: RetryWaits) -> None:
        self.step = step
        self.seconds = seconds
        self.retries = retries
        self.refused = 0

    @property
    def waits(self) -> list[float]:
        return self.retries.waits_for("StorageBusy")

    @property
    def waited(self) -> float:
        return sum(self.waits)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        if iam.current_principal() == self.step and self.waited < self.seconds:
            self.refused += 1
            raise ClientError(
                {
                    "Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                    "ResponseMetadata": {"HTTPStatusCode": 503},
                },
                "PutObject",
            )


@pytest.fixture
def outage(stack: dict[str, Any]) -> Any:
    def start(step: str, seconds: float) -> S3WriteOutage:
        failing = S3WriteOutage(step, seconds, stack["retry_waits"])
        aws.client("s3").meta.events.register("before-call.s3.PutObject", failing, unique_id="s3-write-outage")
        return failing

    yield start
    aws.client("s3").meta.events.unregister("before-call.s3.PutObject", unique_id="s3-write-outage")


def _body(refs: dict[str, str]) -> dict[str, Any]:
    return {
        "prompt": "a quiet studio",
        "seed": 7,
        "images": [{"imageRef": ref, "name": name, "labels": ["Product"]} for name, ref in refs.items()],
    }


def test_a_30_s_s3_write_outage_under_prepare_is_retried_and_every_image_succeeds(run_job, photo, outage) -> None:
    owner = "user-s3"
    refs = {name: upload(owner, name, photo(320, 240, "PNG"), "png") for name in ("a.png", "b.png")}
    failing = outage("prepare", 30)
    _, view = run_job(owner, _body(refs))
    assert failing.refused >= 2, "every image's Prepare met the outage"
    assert view["status"] == "COMPLETED", view
    assert {image["status"] for image in view["images"]} == {"SUCCEEDED"}
    assert failing.waited >= 30
    assert all(0 <= wait <= max(STORAGE_RETRY.delays_s()) for wait in failing.waits)


def test_an_s3_outage_past_every_retry_fails_the_image_naming_the_step_and_the_retries(run_job, photo, outage) -> None:
    owner = "user-s3"
    refs = {"a.png": upload(owner, "a.png", photo(320, 240, "PNG"), "png")}
    failing = outage("prepare", float("inf"))
    _, view = run_job(owner, _body(refs))
    (image,) = view["images"]
    assert (image["status"], image["errorCode"]) == ("FAILED", "STORAGE_ERROR"), image
    assert image["cause"].startswith("prepare: could not write s3://"), image["cause"]
    assert "SlowDown" in image["cause"]
    assert f"retried {STORAGE_RETRY.max_attempts} times" in image["cause"], image["cause"]
    assert failing.refused == 1 + STORAGE_RETRY.max_attempts  # the first try and every retry
    assert "status report" not in image["cause"]
