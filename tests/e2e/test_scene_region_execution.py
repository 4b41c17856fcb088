"""A model called from a Region that does not offer it fails as Bedrock fails it, in the whole
workflow: here a scene job that reached us-east-1's workflow anyway (accepted before POST /jobs
refused scenes there), whose one Stable Image Core call the stand-in refuses."""

from __future__ import annotations

import pytest
from harness import upload

from chalicelib.models import registry

pytestmark = pytest.mark.slow
OWNER = "user-a"


def test_a_scene_job_run_where_its_model_is_not_offered_fails_with_bedrocks_answer(
    stack, run_job, photo, monkeypatch
) -> None:
    monkeypatch.setattr(registry, "region_refusal", lambda spec, region=None: None)  # as before the fix
    body = {
        "background": {"source": "scene", "prompt": "a pale oak table"},
        "images": [{"imageRef": upload(OWNER, "a.png", photo(480, 320, "PNG"), "png"), "name": "a.png"}],
    }
    _, view = run_job(OWNER, body)
    assert view["status"] == "FAILED"
    assert [model_id for model_id, _ in stack["bedrock"].calls] == ["stability.stable-image-core-v1:1"]
    (image,) = view["images"]
    assert "the batch's scene could not be generated" in image["cause"]
    assert "The provided model identifier is invalid." in image["cause"], image
