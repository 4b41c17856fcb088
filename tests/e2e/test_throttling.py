"""An image that Bedrock throttles past every retry ends FAILED with MODEL_THROTTLED, saying how
many retries over how long, on the executed state machine (moto's interpreter, the real ASL and
Lambdas, the Bedrock stand-in). Never INTERNAL_ERROR, and the other image is unharmed.

moto really sleeps between retries; the e2e `stack` records the waits instead of sleeping them
(tests/e2e/conftest.py; the same numbers: the interpreter computes each from the ASL's retrier,
with full jitter)."""

from __future__ import annotations

import pytest
from harness import upload

from chalicelib.core.errors import MODEL_THROTTLING_RETRY

pytestmark = pytest.mark.slow


def test_an_image_throttled_past_every_retry_fails_as_model_throttled(stack, run_job, photo) -> None:
    owner = "user-t"
    refs = {name: upload(owner, name, photo(320, 240, "PNG"), "png") for name in ("fine.png", "throttled.png")}
    body = {
        "prompt": "a quiet studio",
        "seed": 7,
        "images": [
            {
                "imageRef": ref,
                "name": name,
                "labels": ["Product"],
                # the inpaint request carries the prompt: Bedrock throttles it every time
                **({"prompt": "a quiet studio [throttle:1000]"} if name == "throttled.png" else {}),
            }
            for name, ref in refs.items()
        ],
    }
    _, view = run_job(owner, body)

    by_name = {image["name"]: image for image in view["images"]}
    assert view["status"] == "PARTIAL" and by_name["fine.png"]["status"] == "SUCCEEDED"
    throttled = by_name["throttled.png"]
    assert (throttled["status"], throttled["errorCode"]) == ("FAILED", "MODEL_THROTTLED")
    policy = MODEL_THROTTLING_RETRY
    assert f"retried {policy.max_attempts} times over about {policy.expected_wait_s():.0f} s" in throttled["cause"]
    assert "[Bedrock.ThrottlingException]" in throttled["cause"]

    # what really happened matches the cause: the first try and 8 retries, each wait within the
    # policy's computed delay (full jitter waits 0..delay)
    calls = [c for c in stack["bedrock"].calls if "throttle:1000" in c[1]]
    assert len(calls) == 1 + policy.max_attempts
    waits = stack["retry_waits"].waits_for("Bedrock.ThrottlingException")
    assert len(waits) == policy.max_attempts
    assert all(0 <= wait <= delay for wait, delay in zip(waits, policy.delays_s(), strict=True)), waits
