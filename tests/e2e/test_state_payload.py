"""The execution's state stays within Step Functions' 256 KiB at its largest: the four longest
prompts a job may have (10,000 characters each, the model's limit, in 4-byte UTF-8), an image's
own prompt as long, and the largest email the report may write, run under the emulated limit
(backend/local/sfn_hooks.py)."""

from __future__ import annotations

from typing import Any

import pytest
from builders import SCENE_REGION
from harness import inbox, upload

from chalicelib.core import contracts
from chalicelib.models import registry

pytestmark = pytest.mark.slow
OWNER = "user-a"
WIDE = "\U0001f5bc"  # 🖼: four bytes of UTF-8, one character to the model's limit


@pytest.mark.region(SCENE_REGION)
def test_the_largest_prompts_and_email_fit_the_workflows_state_to_the_end(stack, run_job, photo, monkeypatch) -> None:
    from chalicelib.delivery import report

    spec = registry.get_model(registry.default_model_key())
    scene = registry.get_model(registry.default_scene_model_key())
    longest = WIDE * spec.prompt_max
    summary = report.Reporter.summary

    def largest_email(*args: Any) -> tuple[str, str]:
        subject, message = summary(*args)
        # as long as the report lets an email be: a failure list of long names and causes
        return subject, report.fit_message(message + ('\n- "a"\\b.png: FAILED - ' + "é" * 60) * 4000)

    monkeypatch.setattr(report.Reporter, "summary", staticmethod(largest_email))
    body = {
        "prompt": longest,
        "negativePrompt": WIDE * spec.negative_prompt_max,
        "background": {"source": "scene", "prompt": WIDE * scene.prompt_max, "negativePrompt": longest},
        "images": [
            {"imageRef": upload(OWNER, "a.png", photo(480, 320, "PNG"), "png"), "name": "a.png"},
            {
                "imageRef": upload(OWNER, "b.png", photo(480, 320, "PNG"), "png"),
                "name": "b.png",
                "background": {"source": "prompt"},
                "prompt": longest,  # a fifth: this child's own input carries it beside the settings
            },
        ],
    }
    _, view = run_job(OWNER, body)  # the execution must succeed
    assert view["status"] == "COMPLETED", view
    assert {i["status"] for i in view["images"]} == {contracts.ImageStatus.SUCCEEDED.value}
    emails = [m for m in inbox(stack["queue_url"]) if view["jobId"] in m.get("Subject", "")]
    assert len(emails) == 1 and emails[0]["Message"].endswith(report.TRUNCATED)
    assert 190_000 < len(emails[0]["Message"].encode()) <= contracts.SNS_MESSAGE_MAX_BYTES
