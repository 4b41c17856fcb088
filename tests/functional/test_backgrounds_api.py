"""POST /jobs with background sources and placement: what is refused at submit, and why."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from builders import BUCKET, SCENE_REGION
from chalice.test import Client
from PIL import Image

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.models.base import Lifecycle, LifecycleStatus

OWNER = "owner-1"


def _upload(data: bytes, ext: str = "png", owner: str = OWNER) -> str:
    ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), ext)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key(owner, ref), Body=data)
    return ref


def _jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 160)).save(buf, "JPEG")
    return buf.getvalue()


def _submit(client: Client, token: str, body: dict[str, Any]) -> Any:
    headers = {"Authorization": token, "Content-Type": "application/json"}
    return client.http.post("/jobs", headers=headers, body=json.dumps(body))


def _codes(response: Any) -> dict[str, str]:
    return {d["field"]: d.get("code") for d in response.json_body.get("details") or []}


def test_a_colour_job_needs_no_prompt_and_the_estimate_counts_one_call_per_image(client, token_for, photo) -> None:
    refs = [_upload(photo()) for _ in range(3)]
    body = {
        "background": {"source": "color", "color": "#fff"},
        "images": [
            {"imageRef": refs[0]},
            {"imageRef": refs[1]},
            {"imageRef": refs[2], "background": {"source": "prompt"}},
        ],
        "prompt": "a marble floor",
    }
    answer = _submit(client, token_for(OWNER), body)
    assert answer.status_code == 202, answer.body
    estimate = answer.json_body["estimate"]
    # two colour images: remove-background alone; one prompt image: remove-background + inpaint
    assert estimate["modelCalls"] == {"perImagePrompt": 2, "perImageCompose": 2, "scene": 0, "total": 4}
    assert estimate["modelUsd"] == pytest.approx(2 * 0.04 + 0.08)
    # every image gets Finalize's checks; only the prompt image may be re-rolled (its inpaint again)
    check = contracts.REKOGNITION_USD_PER_IMAGE
    assert estimate["usd"] == pytest.approx(2 * 0.04 + 0.08 + 3 * 3 * check)
    assert estimate["maxUsd"] == pytest.approx(estimate["usd"] + 0.04 + 2 * check)
    job = client.http.get(f"/jobs/{answer.json_body['jobId']}", headers={"Authorization": token_for(OWNER)}).json_body
    assert job["settings"]["background"] == {"source": "color", "color": "#FFFFFF"}
    no_prompt = {"background": {"source": "transparent"}, "images": [{"imageRef": refs[0]}]}
    assert _submit(client, token_for(OWNER), no_prompt).status_code == 202


def test_bad_backgrounds_are_refused_with_stable_codes_all_at_once(client, token_for, photo) -> None:
    ref = _upload(photo())
    body = {
        "background": {"source": "color", "color": "white"},
        "placement": {"fill": 120, "anchor": "middle"},
        "images": [
            {"imageRef": ref, "background": {"source": "scene"}},
            {"imageRef": _upload(photo()), "background": {"source": "wallpaper"}},
        ],
    }
    answer = _submit(client, token_for(OWNER), body)
    assert answer.status_code == 400 and answer.json_body["code"] == "VALIDATION_FAILED"
    assert _codes(answer) == {
        "background.color": "BACKGROUND_INVALID",
        "placement.fill": "PLACEMENT_INVALID",
        "placement.anchor": "PLACEMENT_INVALID",
        "images[0].background.source": "BACKGROUND_INVALID",
        "images[1].background.source": "BACKGROUND_INVALID",
    }
    assert "'white' is not a hex colour like #FFFFFF" in answer.json_body["message"]


def test_a_background_photo_must_exist_be_an_image_and_cover_the_canvas(client, token_for, photo) -> None:
    ref = _upload(photo())
    missing = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "jpg")
    not_an_image = _upload(b"<html>not a photo</html>", "png")
    small = _upload(_jpeg(500, 400), "jpg")
    other_owners = _upload(_jpeg(2000, 2000), "jpg", owner="owner-2")
    for background_ref, expected in (
        (missing, "never uploaded"),
        (not_an_image, "not a PNG, JPEG or WEBP image"),
        (small, "smaller than the 1000x1000 canvas"),
        (other_owners, "never uploaded"),  # another user's photo is as good as absent
    ):
        body = {
            "background": {"source": "image", "imageRef": background_ref},
            "placement": {"width": 1000, "height": 1000},
            "images": [{"imageRef": ref}],
        }
        answer = _submit(client, token_for(OWNER), body)
        assert answer.status_code == 400, (background_ref, answer.body)
        assert _codes(answer) == {"background.imageRef": "BACKGROUND_INVALID"}
        assert expected in answer.json_body["message"]
    big = _upload(_jpeg(1200, 1000), "jpg")
    body = {
        "background": {"source": "image", "imageRef": big},
        "placement": {"width": 1000, "height": 1000},
        "images": [{"imageRef": ref}],
    }
    assert _submit(client, token_for(OWNER), body).status_code == 202


def test_what_a_model_or_format_cannot_do_is_refused_before_anything_is_spent(
    client, token_for, photo, monkeypatch
) -> None:
    ref = _upload(photo())
    monkeypatch.setenv("BACKDROP_EXTENDED_ACCESS_MODELS", "titan-image-v2")
    titan = {"model": "titan-image-v2", "prompt": "beach", "background": {"source": "color", "color": "#FFFFFF"}}
    answer = _submit(client, token_for(OWNER), {**titan, "images": [{"imageRef": ref, "labels": ["Person"]}]})
    assert answer.status_code == 400 and "can only take a prompt background" in answer.json_body["message"]
    transparent_jpeg = {"background": {"source": "transparent"}, "outputFormat": "jpeg", "images": [{"imageRef": ref}]}
    answer = _submit(client, token_for(OWNER), transparent_jpeg)
    assert answer.status_code == 400 and "png or webp, not jpeg" in answer.json_body["message"]
    placed_prompt = {"prompt": "beach", "placement": {"aspect": "1:1"}, "images": [{"imageRef": ref}]}
    answer = _submit(client, token_for(OWNER), placed_prompt)
    assert answer.status_code == 400 and _codes(answer) == {"placement": "PLACEMENT_INVALID"}
    blended = {"background": {"source": "color", "color": "#FFF"}, "blend": 0.5, "images": [{"imageRef": ref}]}
    answer = _submit(client, token_for(OWNER), blended)
    assert answer.status_code == 400 and _codes(answer) == {"blend": "BACKGROUND_INVALID"}
    scene_job_model = {"model": "stability-image-core", "prompt": "x", "images": [{"imageRef": ref}]}
    assert _submit(client, token_for(OWNER), scene_job_model).status_code == 400


@pytest.mark.region(SCENE_REGION)
def test_a_retired_scene_model_is_refused_at_submit(client, token_for, photo, monkeypatch) -> None:
    ref = _upload(photo())
    body = {"background": {"source": "scene", "prompt": "a linen tablecloth"}, "images": [{"imageRef": ref}]}

    class SceneModelRetired:
        def lifecycle(self, spec: Any) -> tuple[Lifecycle, str]:
            if spec.key == "stability-image-core":
                return Lifecycle(LifecycleStatus.EOL, "2026-05-01", "2026-11-01", source="test"), "bedrock"
            return Lifecycle(LifecycleStatus.ACTIVE, source="test"), "bedrock"

    monkeypatch.setattr(backdrop_app, "_lifecycles", SceneModelRetired())
    answer = _submit(client, token_for(OWNER), body)
    assert answer.status_code == 400 and answer.json_body["code"] == "MODEL_UNAVAILABLE"
    assert "stability-image-core" in answer.json_body["message"] and "2026-11-01" in answer.json_body["message"]
    monkeypatch.setattr(backdrop_app, "_lifecycles", None)  # the registry's lifecycle again
    answer = _submit(client, token_for(OWNER), body)
    assert answer.status_code == 202, answer.body
    assert answer.json_body["estimate"]["modelCalls"] == {
        "perImagePrompt": 0,
        "perImageCompose": 1,
        "scene": 1,
        "total": 2,
    }


def test_a_scene_is_refused_where_its_model_is_not_offered_naming_the_region_that_works(
    client, token_for, photo
) -> None:
    """Stable Image Core is on demand in us-west-2 only (models.json): in us-east-1, the Region the
    tests and docs/deploy.md's examples use, a scene could never be generated, so POST /jobs
    refuses it before anything is written or spent, and GET /models says why."""
    ref = _upload(photo())
    body = {"background": {"source": "scene", "prompt": "a linen tablecloth"}, "images": [{"imageRef": ref}]}
    answer = _submit(client, token_for(OWNER), body)
    assert answer.status_code == 400 and answer.json_body["code"] == "MODEL_UNAVAILABLE", answer.body
    message = answer.json_body["message"]
    assert "scene" in message and "us-east-1" in message and SCENE_REGION in message
    assert answer.json_body["details"][0]["field"] == "background.model"
    assert answer.json_body["details"][0]["regions"] == [SCENE_REGION]
    catalogue = client.http.get("/models", headers={"Authorization": token_for(OWNER)}).json_body
    models = {m["key"]: m for m in catalogue["models"]}
    assert catalogue["region"] == "us-east-1"
    assert models["stability-image-core"]["selectable"] is False
    assert SCENE_REGION in models["stability-image-core"]["unavailableHere"]
    assert models["stability-inpaint"]["selectable"] is True and models["stability-inpaint"]["unavailableHere"] is None
    # the same job's other backgrounds are unaffected
    colour = {"background": {"source": "color", "color": "#FFFFFF"}, "images": [{"imageRef": ref}]}
    assert _submit(client, token_for(OWNER), colour).status_code == 202


def test_a_scene_refused_here_beside_a_field_the_schema_refuses_names_both(client, token_for, photo) -> None:
    """The schema's problems and the Region's refusal in one 400 (it was a 500: the refusal's
    detail had no message for the error's summary)."""
    ref = _upload(photo())
    body = {
        "background": {"source": "scene", "prompt": "a linen tablecloth"},
        "images": [{"imageRef": ref}],
        "surprise": 1,
    }
    answer = _submit(client, token_for(OWNER), body)
    assert answer.status_code == 400, answer.body
    fields = {d["field"] for d in answer.json_body["details"]}
    assert {"background.model", "surprise"} <= fields, fields
    assert all(d.get("message") for d in answer.json_body["details"])
    assert SCENE_REGION in answer.json_body["message"]


def test_models_say_which_is_the_scene_model_and_what_a_compose_image_costs(client, token_for) -> None:
    models = {
        m["key"]: m for m in client.http.get("/models", headers={"Authorization": token_for(OWNER)}).json_body["models"]
    }
    assert models["stability-image-core"]["role"] == "scene" and models["stability-inpaint"]["role"] == "job"
    assert models["stability-inpaint"]["composePricePerImageUsd"] == 0.04
    assert models["stability-inpaint"]["pricePerImageUsd"] == 0.08
