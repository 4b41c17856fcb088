"""Model registry, family adapters and the Bedrock stand-in's contract enforcement."""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json

import pytest
from PIL import Image, ImageDraw

from backend.local.bedrock_standin import StandInBedrock
from backend.local.sfn_hooks import BedrockError
from chalicelib.core.errors import (
    ContentFiltered,
    ModelResponseInvalid,
    ModelUnavailable,
    RequestInvalid,
    ValidationError,
)
from chalicelib.imaging import images as imaging
from chalicelib.models import registry
from chalicelib.models.base import Family, ImageTask, JobSettings, LifecycleStatus
from chalicelib.models.outpainting import OutpaintingAdapter
from chalicelib.models.stability import StabilityAdapter

STABILITY = registry.get_model("stability-inpaint")
TITAN = registry.get_model("titan-image-v2")
NOVA = registry.get_model("nova-canvas")
IMAGE = ImageTask(image_id="a" * 32, key="uploads/u/x.png", name="shoe.png", labels=("Shoe",))


def _settings(spec, **overrides) -> JobSettings:
    return dataclasses.replace(JobSettings(model=spec.key, prompt="a marble floor", seed=5), **overrides)


def _canvas(spec, size=(480, 320)) -> bytes:
    geometry = imaging.fit_canvas(*size, spec.image_limits)
    img = Image.new("RGB", size, (235, 235, 230))
    ImageDraw.Draw(img).ellipse((size[0] * 0.3, size[1] * 0.2, size[0] * 0.7, size[1] * 0.8), fill=(200, 30, 40))
    return imaging.encode_png(imaging.to_canvas(img, geometry))


# ------------------------------------------------------------------------------ registry


def test_every_model_is_complete_and_has_a_known_family() -> None:
    for spec in registry.all_models():
        assert spec.family in Family
        assert registry.adapter_for(spec).steps == tuple(spec.model_ids)
        assert spec.price_per_image_usd > 0 and spec.price_source
        assert spec.lifecycle.source
        assert spec.image_limits.max_pixels > 0 and spec.prompt_max > 0 and spec.seed_max > 0


def test_end_of_life_models_are_refused_by_name_with_the_alternatives() -> None:
    # the scene model is selectable too (as a scene background's model, not a job's)
    assert [m.key for m in registry.selectable_models()] == ["stability-inpaint", "stability-image-core"]
    with pytest.raises(ModelUnavailable, match="2026-09-30.*usable models: stability-inpaint"):
        registry.get_selectable_model("nova-canvas")
    with pytest.raises(ModelUnavailable, match="known models"):
        registry.get_model("dall-e")


def test_extended_access_and_model_id_overrides_are_configuration(monkeypatch) -> None:
    monkeypatch.setenv("BACKDROP_EXTENDED_ACCESS_MODELS", "titan-image-v2")
    assert registry.get_selectable_model("titan-image-v2").key == "titan-image-v2"
    monkeypatch.setenv(
        "BACKDROP_MODEL_IDS", json.dumps({"stability-inpaint": {"inpaint": "eu.stability.stable-image-inpaint-v1:0"}})
    )
    assert registry.get_model("stability-inpaint").model_ids["inpaint"] == "eu.stability.stable-image-inpaint-v1:0"
    monkeypatch.setenv("BACKDROP_MODEL_IDS", json.dumps({"stability-inpaint": {"upscale": "x"}}))
    with pytest.raises(ModelUnavailable, match="unknown calls"):
        registry.get_model("stability-inpaint")


def test_a_model_added_only_through_the_registry_file_is_usable(monkeypatch, tmp_path) -> None:
    data = json.loads(registry.REGISTRY_PATH.read_text())
    private = copy.deepcopy(next(m for m in data["models"] if m["key"] == "titan-image-v2"))
    private["key"] = "titan-private"
    private["lifecycle"]["status"] = LifecycleStatus.ACTIVE.value
    data["models"].append(private)
    path = tmp_path / "models.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelUnavailable, match="unknown model 'titan-private'"):
        registry.get_selectable_model("titan-private")
    monkeypatch.setenv("BACKDROP_MODEL_REGISTRY", str(path))
    assert registry.get_selectable_model("titan-private").family is Family.OUTPAINTING
    assert "titan-private" in [m.key for m in registry.selectable_models()]


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("spec", "overrides", "field"),
    [
        (STABILITY, {"prompt": ""}, "prompt"),
        (STABILITY, {"prompt": "x" * 10_001}, "prompt"),
        (STABILITY, {"negative_prompt": "x" * 10_001}, "negativePrompt"),
        (STABILITY, {"seed": 4_294_967_295}, "seed"),
        (STABILITY, {"variants": 5}, "variants"),
        (STABILITY, {"cfg_scale": 5.0}, "cfgScale"),
        (STABILITY, {"quality": "premium"}, "quality"),
        (STABILITY, {"style_preset": "watercolour"}, "stylePreset"),
        (STABILITY, {"mode": "FAST"}, "mode"),
        (STABILITY, {"output_format": "gif"}, "outputFormat"),
        (TITAN, {"prompt": "x" * 513}, "prompt"),
        (TITAN, {"negative_prompt": "x" * 513}, "negativePrompt"),
        (TITAN, {"seed": 2_147_483_647}, "seed"),
        (TITAN, {"variants": 6}, "variants"),
        (TITAN, {"variants": 0}, "variants"),
        (TITAN, {"cfg_scale": 1.0}, "cfgScale"),
        (TITAN, {"cfg_scale": 10.5}, "cfgScale"),
        (TITAN, {"quality": "ultra"}, "quality"),
        (TITAN, {"style_preset": "anime"}, "stylePreset"),
        (NOVA, {"prompt": "x" * 1025}, "prompt"),
        (NOVA, {"seed": 858_993_460}, "seed"),
    ],
)
def test_every_limit_is_refused_before_any_call(spec, overrides, field) -> None:
    adapter = registry.adapter_for(spec)
    with pytest.raises(ValidationError) as caught:
        adapter.validate(spec, _settings(spec, **overrides), [IMAGE])
    assert [d["field"] for d in caught.value.details] == [field]


def test_outpainting_needs_a_label_and_a_short_enough_mask_prompt() -> None:
    no_label = dataclasses.replace(IMAGE, labels=())
    many = dataclasses.replace(IMAGE, labels=tuple(f"label-{i:03d}-{'x' * 40}" for i in range(12)))
    with pytest.raises(ValidationError, match="keeps no label") as caught:
        OutpaintingAdapter().validate(TITAN, _settings(TITAN), [no_label, many])
    assert [d["field"] for d in caught.value.details] == ["images[0].labels", "images[1].labels"]
    StabilityAdapter().validate(STABILITY, _settings(STABILITY), [no_label])  # whole cut-out is the subject


def test_nova_prompt_is_optional_titan_is_not() -> None:
    OutpaintingAdapter().validate(NOVA, _settings(NOVA, prompt=""), [IMAGE])
    with pytest.raises(ValidationError):
        OutpaintingAdapter().validate(TITAN, _settings(TITAN, prompt=""), [IMAGE])


# ------------------------------------------------------------------------------ request bodies


def test_stability_bodies_follow_the_documented_contract() -> None:
    adapter = StabilityAdapter()
    canvas = _canvas(STABILITY)
    first = adapter.first_call(STABILITY, _settings(STABILITY), IMAGE, canvas)
    assert (first.step, first.model_id) == ("remove-background", "us.stability.stable-image-remove-background-v1:0")
    assert set(first.body) == {"image", "output_format"} and first.body["output_format"] == "png"
    mask = imaging.encode_png(Image.new("L", Image.open(io.BytesIO(canvas)).size, 255))
    second = adapter.mask_call(
        STABILITY, _settings(STABILITY, negative_prompt="people", style_preset="photographic"), IMAGE, canvas, mask
    )
    assert second.model_id == "us.stability.stable-image-inpaint-v1:0"
    assert set(second.body) == {
        "image",
        "mask",
        "prompt",
        "negative_prompt",
        "grow_mask",
        "seed",
        "output_format",
        "style_preset",
    }
    assert second.body["grow_mask"] == 3 and second.body["seed"] == 5
    with pytest.raises(RequestInvalid, match="mask"):
        adapter.mask_call(STABILITY, _settings(STABILITY), IMAGE, canvas, imaging.encode_png(Image.new("L", (64, 64))))


def test_outpainting_body_uses_kept_labels_as_mask_prompt() -> None:
    body = (
        OutpaintingAdapter().first_call(TITAN, _settings(TITAN, variants=3, mode="PRECISE"), IMAGE, _canvas(TITAN)).body
    )
    assert body["taskType"] == "OUTPAINTING"
    assert body["outPaintingParams"]["maskPrompt"] == "Shoe" and "maskImage" not in body["outPaintingParams"]
    assert body["outPaintingParams"]["outPaintingMode"] == "PRECISE"
    assert body["imageGenerationConfig"] == {"numberOfImages": 3, "quality": "standard", "seed": 5, "cfgScale": 8.0}


def test_a_canvas_the_model_would_refuse_is_never_sent() -> None:
    off_size = imaging.encode_png(Image.new("RGB", (1000, 1000)))
    with pytest.raises(RequestInvalid, match="not one of the sizes"):
        OutpaintingAdapter().first_call(TITAN, _settings(TITAN), IMAGE, off_size)
    with pytest.raises(RequestInvalid, match="aspect ratio"):
        StabilityAdapter().first_call(
            STABILITY, _settings(STABILITY), IMAGE, imaging.encode_png(Image.new("RGB", (1000, 100)))
        )


# ------------------------------------------------------------------------------ responses


def _b64png(size=(8, 8)) -> str:
    return base64.b64encode(imaging.encode_png(Image.new("RGB", size))).decode()


@pytest.mark.parametrize(
    ("reason", "error", "words"),
    [
        ("Filter reason: prompt", ContentFiltered, "blocked the prompt"),
        ("Filter reason: input image", ContentFiltered, "blocked the input image"),
        ("Filter reason: output image", ContentFiltered, "blocked the generated image"),
        ("Inference error", ModelResponseInvalid, "Inference error"),
    ],
)
def test_stability_finish_reasons_become_failures(reason, error, words) -> None:
    with pytest.raises(error, match=words):
        StabilityAdapter().parse_response(STABILITY, "inpaint", {"finish_reasons": [reason]})


def test_responses_without_images_are_never_success() -> None:
    with pytest.raises(ModelResponseInvalid):
        StabilityAdapter().parse_response(STABILITY, "inpaint", {"finish_reasons": [None], "images": []})
    with pytest.raises(ModelResponseInvalid):
        StabilityAdapter().parse_response(
            STABILITY, "inpaint", {"finish_reasons": [None], "images": ["@@not base64@@"]}
        )
    with pytest.raises(ContentFiltered):
        OutpaintingAdapter().parse_response(
            TITAN, "outpaint", {"images": [], "error": "blocked by our content filters"}
        )
    with pytest.raises(ModelResponseInvalid):
        OutpaintingAdapter().parse_response(TITAN, "outpaint", {"images": None, "error": None})
    ok = StabilityAdapter().parse_response(
        STABILITY, "inpaint", {"finish_reasons": [None], "images": [_b64png()], "seeds": [77]}
    )
    assert ok.seeds == (77,) and len(ok.images) == 1


def test_nova_partial_result_keeps_the_images_that_came_back() -> None:
    result = OutpaintingAdapter().parse_response(
        NOVA,
        "outpaint",
        {"images": [_b64png()], "error": "Some of the generated images have been blocked by our content filters."},
    )
    assert len(result.images) == 1


# ------------------------------------------------------------------------------ stand-in


@pytest.mark.parametrize("spec", [STABILITY, TITAN, NOVA], ids=lambda s: s.key)
def test_standin_accepts_what_the_adapters_build_and_keeps_the_subject(spec) -> None:
    standin = StandInBedrock()
    adapter = registry.adapter_for(spec)
    settings = _settings(spec)
    canvas = _canvas(spec)
    call = adapter.first_call(spec, settings, IMAGE, canvas)
    response = standin(call.model_id, call.body)
    result = adapter.parse_response(spec, call.step, response)
    if spec.family is Family.STABILITY:
        cutout = imaging.decode_image(result.images[0])
        keep = imaging.keep_mask(imaging.subject_alpha(cutout, []), 0)
        assert not imaging.mask_is_empty(keep)
        call = adapter.mask_call(spec, settings, IMAGE, canvas, imaging.encode_png(imaging.invert_mask(keep)))
        result = adapter.parse_response(spec, call.step, standin(call.model_id, call.body))
    out = imaging.decode_image(result.images[0])
    # it says what made it, in the text that Finalize carries into results and reports
    assert "stand-in" in imaging.provenance(out) and "not generated art" in imaging.provenance(out)
    original = Image.open(io.BytesIO(canvas)).convert("RGB")
    centre = (original.width // 2, original.height // 2)
    assert out.convert("RGB").getpixel(centre) == original.getpixel(centre)  # subject kept
    assert out.convert("RGB").getpixel((2, 2)) != original.getpixel((2, 2))  # background replaced


@pytest.mark.parametrize(
    ("model_id", "body", "words"),
    [
        ("us.stability.stable-image-remove-background-v1:0", {"image": "", "output_format": "png"}, "base64"),
        ("us.stability.stable-image-remove-background-v1:0", {"image": _b64png((40, 40))}, "at least 64"),
        (
            "us.stability.stable-image-inpaint-v1:0",
            {"image": _b64png((100, 100)), "prompt": "x", "mask": _b64png((100, 100)), "grow_mask": 30},
            "grow_mask",
        ),
        (
            "us.stability.stable-image-inpaint-v1:0",
            {"image": _b64png((100, 100)), "prompt": "x", "colour": 1},
            "extraneous",
        ),
        (
            "amazon.titan-image-generator-v2:0",
            {"taskType": "OUTPAINTING", "outPaintingParams": {"image": _b64png((1024, 1024)), "text": "x"}},
            "exactly one",
        ),
        (
            "amazon.titan-image-generator-v2:0",
            {
                "taskType": "OUTPAINTING",
                "outPaintingParams": {"image": _b64png((1000, 1000)), "text": "x", "maskPrompt": "a"},
            },
            "not a supported size",
        ),
        (
            "amazon.nova-canvas-v1:0",
            {
                "taskType": "OUTPAINTING",
                "outPaintingParams": {"image": _b64png((320, 320)), "maskPrompt": "a"},
                "imageGenerationConfig": {"seed": 900_000_000},
            },
            "seed",
        ),
    ],
)
def test_standin_refuses_what_bedrock_refuses(model_id, body, words) -> None:
    with pytest.raises(BedrockError) as caught:
        StandInBedrock()(model_id, body)
    assert caught.value.code == "ValidationException" and words in caught.value.message


def test_standin_fault_triggers_and_quota() -> None:
    standin = StandInBedrock()
    call = StabilityAdapter().mask_call(
        STABILITY,
        _settings(STABILITY, prompt="beach [throttle:2]"),
        IMAGE,
        _canvas(STABILITY),
        imaging.encode_png(Image.new("L", (480, 320), 255)),
    )
    for _ in range(2):
        with pytest.raises(BedrockError, match="ThrottlingException"):
            standin(call.model_id, call.body)
    assert standin(call.model_id, call.body)["finish_reasons"] == [None]
    now = [0.0]
    limited = StandInBedrock(images_per_minute=2, clock=lambda: now[0])
    body = {"image": _b64png((64, 64))}
    limited("us.stability.stable-image-remove-background-v1:0", body)
    limited("us.stability.stable-image-remove-background-v1:0", body)
    with pytest.raises(BedrockError, match="ThrottlingException"):
        limited("us.stability.stable-image-remove-background-v1:0", body)
    now[0] = 30.0  # one token back after half a minute at 2/min
    limited("us.stability.stable-image-remove-background-v1:0", body)
