"""Where a model can be called from: the registry's refusal (POST /jobs) and the Bedrock
stand-in's (the local stack and the tests), both from models.json's `regions`."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from backend.local.bedrock_standin import StandInBedrock
from backend.local.sfn_hooks import BedrockError
from chalicelib.core.errors import ModelUnavailable
from chalicelib.models import registry

SCENE = "stability-image-core"
SCENE_ID = "stability.stable-image-core-v1:1"
REMOVE_BG = "us.stability.stable-image-remove-background-v1:0"


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (200, 40, 40)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_the_scene_model_is_refused_outside_its_regions_naming_those_that_work() -> None:
    spec = registry.get_model(SCENE)
    assert spec.regions == ("us-west-2",)
    refusal = registry.region_refusal(spec, "us-east-1")
    assert refusal is not None and "us-west-2" in refusal and "us-east-1" in refusal
    assert registry.region_refusal(spec, "us-west-2") is None
    with pytest.raises(ModelUnavailable) as raised:
        registry.get_usable_model(SCENE, region="us-east-1")
    [detail] = raised.value.details
    assert detail == {"field": "model", "message": refusal, "code": "MODEL_UNAVAILABLE", "regions": ["us-west-2"]}
    assert registry.get_usable_model(SCENE, region="us-west-2").key == SCENE
    # the job's default model runs from all three of its profile's source Regions
    inpaint = registry.get_model("stability-inpaint")
    assert all(registry.region_refusal(inpaint, r) is None for r in ("us-east-1", "us-east-2", "us-west-2"))


def test_other_model_ids_and_the_deploys_own_lookups_decide_over_models_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # an inference profile the deployer names: models.json's Regions do not describe it
    monkeypatch.setenv("BACKDROP_MODEL_IDS", '{"stability-image-core": {"text-to-image": "us.stability.core-x"}}')
    assert registry.region_refusal(registry.get_model(SCENE), "us-east-1") is None
    # ... but the deploy found it unreachable here (GetInferenceProfile): refused whatever the ids
    monkeypatch.setenv(registry.UNREACHABLE_MODELS_ENV, SCENE)
    assert "cannot be called" in (registry.region_refusal(registry.get_model(SCENE), "us-east-1") or "")


def test_the_standin_refuses_a_model_its_region_does_not_offer_as_bedrock_does() -> None:
    body = {"prompt": "a pale oak table", "aspect_ratio": "1:1", "seed": 1, "output_format": "png"}
    with pytest.raises(BedrockError) as raised:
        StandInBedrock(region="us-east-1")(SCENE_ID, body)
    assert (raised.value.code, raised.value.message) == (
        "ValidationException",
        "The provided model identifier is invalid.",
    )
    assert StandInBedrock(region="us-west-2")(SCENE_ID, body)["finish_reasons"] == [None]
    # a us. profile is called from its source Regions only
    with pytest.raises(BedrockError):
        StandInBedrock(region="eu-west-1")(REMOVE_BG, {"image": _png()})
    assert StandInBedrock(region="us-east-2")(REMOVE_BG, {"image": _png()})["images"]
    # no Region given (a step's unit test): answers from anywhere
    assert StandInBedrock()(SCENE_ID, body)["images"]
