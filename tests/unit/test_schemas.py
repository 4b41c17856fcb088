"""The request models (chalicelib/catalogue/schemas.py): the API's field names, every problem at once, and
the thresholds declared once (pure: no AWS)."""

from __future__ import annotations

from chalicelib.catalogue import schemas
from chalicelib.core import contracts
from chalicelib.imaging import quality

REF = contracts.image_ref_of("a" * 32, "b" * 32, "png")


def _fields(body: object) -> dict[str, str]:
    return {p["field"]: p["message"] for p in schemas.problems_of(schemas.JobRequest, body)}


def test_problems_are_named_as_the_api_names_fields_all_at_once() -> None:
    found = _fields(
        {
            "images": [{"imageRef": REF, "labels": ["ok", " "]}, {"imageRef": "nope"}],
            "background": {"source": "color", "color": "#ffffff", "prompt": "x"},
            "placement": {"aspect": "1:1\n"},
            "reRolls": True,
            "surprise": 1,
        }
    )
    assert found == {
        "images[0].labels[1]": "labels[1] must not be empty or blank",
        "images[1].imageRef": "imageRef must be an imageRef returned by POST /uploads",
        # the union member pydantic chose (`color`) is not part of the field's name
        "background.prompt": "a color background takes no 'prompt'",
        "placement.aspect": 'aspect must be a ratio such as "1:1" or "4:5"',
        "reRolls": "reRolls must be a whole number",
        "surprise": "unknown field 'surprise'",
    }


def test_a_background_source_that_does_not_exist_is_named_with_the_sources() -> None:
    problems = schemas.problems_of(schemas.JobRequest, {"images": [{"imageRef": REF}], "background": {"source": "x"}})
    assert problems == [
        {
            "field": "background.source",
            "message": "source must be one of prompt, color, image, transparent, scene, not 'x'",
            "code": "BACKGROUND_INVALID",
        }
    ]


def test_json_numbers_are_read_as_json_has_them() -> None:
    # one number type: 1024.0 is a whole number; a boolean or a numeral in a string is not a number
    assert _fields({"images": [{"imageRef": REF}], "placement": {"width": 1024.0, "height": 1024}}) == {}
    assert set(_fields({"images": [{"imageRef": REF}], "seed": True, "blend": "0.5"})) == {"seed", "blend"}


def test_the_thresholds_are_declared_once() -> None:
    component = schemas.request_components()["QualityThresholds"]
    assert component["properties"].keys() == quality.DEFAULT_THRESHOLDS.to_dict().keys()
    assert component["additionalProperties"] is False
    assert component["properties"]["boxMinOverlap"]["maximum"] == 1.0


def test_null_is_not_given_and_the_document_says_so() -> None:
    assert _fields({"images": [{"imageRef": REF, "prompt": None}], "stylePreset": None, "seed": None}) == {}
    seed = schemas.request_components()["JobRequest"]["properties"]["seed"]
    assert seed["type"] == ["integer", "null"] and "default" not in seed


def test_a_service_error_and_the_schema_problems_are_answered_together() -> None:
    from chalicelib.core.errors import ModelUnavailable

    found = schemas.problems_of(schemas.JobRequest, {"images": [{"imageRef": REF}], "reRolls": 9})
    error = schemas.merged(found, ModelUnavailable("unknown model 'x'"), "the job request is not valid")
    assert [(d["field"], d.get("code")) for d in error.details] == [("body", "MODEL_UNAVAILABLE"), ("reRolls", None)]
    assert "unknown model 'x'" in error.message and "reRolls must be at most 3" in error.message
