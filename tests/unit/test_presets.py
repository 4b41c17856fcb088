"""Marketplace presets: the rules are data with sources, and the compliance check can fail."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from chalicelib.catalogue import presets
from chalicelib.core.errors import ValidationError


def test_every_rule_names_its_public_source_and_date() -> None:
    assert set(presets.all_presets()) == {"amazon-main", "shopify", "etsy", "ebay", "google-merchant"}
    for key, preset in presets.all_presets().items():
        assert preset["apply"]["background"].startswith("#"), key
        for rule in preset["rules"]:
            assert rule["source"].startswith("https://") or rule["source"] == "Backdrop", (key, rule)
            assert rule["date"] == "2026-11-25" and isinstance(rule["confirmed"], bool)


def test_an_unknown_preset_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="unknown preset 'walmart'.*amazon-main"):
        presets.get_preset("walmart")


def _output(
    size=(2000, 2000), box=(130, 130, 1870, 1870), background=(255, 255, 255)
) -> tuple[Image.Image, Image.Image]:
    result = Image.new("RGB", size, background)
    ImageDraw.Draw(result).rectangle(box, fill=(200, 30, 40))
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).rectangle(box, fill=255)
    return result, alpha


def _outcomes(report: dict) -> dict[str, str]:
    return {c["rule"]: c["outcome"] for c in report["checks"]}


def test_a_compliant_amazon_main_image_passes_every_rule() -> None:
    report = presets.check("amazon-main", *_output(), "png")
    assert report["outcome"] == "PASS", report
    assert report["fill"] == pytest.approx(87.0, abs=0.1)


def test_off_white_small_edge_touching_and_underfilled_images_fail_with_reasons() -> None:
    result, alpha = _output(size=(900, 900), box=(0, 300, 400, 600), background=(250, 250, 250))
    report = presets.check("amazon-main", result, alpha, "webp")
    assert report["outcome"] == "FAIL"
    assert _outcomes(report) == {
        "background": "FAIL",
        "fill": "FAIL",
        "zoom": "FAIL",
        "max-size": "PASS",
        "whole-product": "FAIL",
        "format": "FAIL",
        "colour-space": "PASS",
    }
    reasons = {c["rule"]: c["reason"] for c in report["checks"]}
    assert "0.00% of the background is #FFFFFF" in reasons["background"] and "(250, 250, 250)" in reasons["background"]
    assert "fills 44.6%" in reasons["fill"]  # 401 of 900 px
    assert "touches the edge" in reasons["whole-product"]


def test_google_wants_the_product_between_75_and_90_percent() -> None:
    too_full = presets.check("google-merchant", *_output(size=(1500, 1500), box=(10, 10, 1490, 1490)), "jpeg")
    assert _outcomes(too_full)["framing"] == "FAIL"
    assert "75% to 90%" in next(c["reason"] for c in too_full["checks"] if c["rule"] == "framing")
