"""Background schema, estimate and placement (pure: no AWS)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from chalicelib.core import backgrounds
from chalicelib.core.contracts import BackgroundSource
from chalicelib.core.validation import Problems
from chalicelib.imaging import compose


@pytest.mark.parametrize(
    ("text", "rgb"), [("#FFFFFF", (255, 255, 255)), ("#fff", (255, 255, 255)), ("#1a2B3c", (26, 43, 60))]
)
def test_hex_colours_parse(text, rgb) -> None:
    assert backgrounds.parse_color(text) == rgb


@pytest.mark.parametrize("text", ["white", "#ffff", "FFFFFF", "#GGGGGG", "", "#ffffff00"])
def test_anything_but_a_hex_colour_is_refused(text) -> None:
    with pytest.raises(ValueError, match="not a hex colour"):
        backgrounds.parse_color(text)


def test_a_job_background_round_trips_and_an_image_override_wins() -> None:
    problems = Problems("x")
    job = backgrounds.parse_background("background", {"source": "scene", "prompt": "oak table"}, problems)
    assert job is not None and not problems
    assert backgrounds.Background.from_dict(job.to_dict()) == job
    override = backgrounds.parse_background(
        "images[0].background", {"source": "color", "color": "#000"}, problems, job_scene=job, is_override=True
    )
    assert override is not None
    assert backgrounds.effective(override.to_dict(), job.to_dict()).color == (0, 0, 0)
    # an image's "scene" is the job's scene, prompt and all
    assert backgrounds.effective({"source": "scene"}, job.to_dict()).prompt == "oak table"
    assert backgrounds.effective(None, None).source is BackgroundSource.PROMPT


def test_the_estimate_counts_one_call_for_every_composed_image_and_one_scene() -> None:
    from chalicelib.core import contracts, estimate

    found = estimate.job_estimate(
        12, 1, 0.08, 0.04, 1, steps_per_prompt_image=2, compose_images=10, compose_price_usd=0.04, scene_price_usd=0.04
    )
    assert found.model_calls == {"perImagePrompt": 4, "perImageCompose": 10, "scene": 1, "total": 15}
    assert found.model_usd == pytest.approx(10 * 0.04 + 2 * 0.08 + 0.04)
    # every image is checked (3 Rekognition images on its first attempt); only the 2 prompt images re-roll
    assert found.checks_usd == pytest.approx(12 * 3 * contracts.REKOGNITION_USD_PER_IMAGE)
    assert found.re_roll_max_usd == pytest.approx(2 * (0.04 + 2 * contracts.REKOGNITION_USD_PER_IMAGE))
    answer = found.to_dict()
    assert answer["promptImages"] == 2 and answer["composeImages"] == 10 and answer["modelCalls"]["total"] == 15


def _subject(size=(400, 300), box=(150, 100, 250, 250)) -> tuple[Image.Image, Image.Image]:
    original = Image.new("RGB", size, (230, 230, 225))
    ImageDraw.Draw(original).rectangle(box, fill=(200, 30, 40))
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).rectangle(box, fill=255)
    return original, alpha


def test_fill_anchor_and_margin_place_the_subject() -> None:
    original, alpha = _subject(size=(2000, 1500), box=(800, 500, 1199, 1299))  # 400 x 800 subject
    placed = compose.place(original, alpha, (1000, 1000), fill=85, anchor="bottom", margin=5)
    x0, y0, x1, y1 = placed.subject_box
    # 85% of the 900 px between the margins, along the subject's limiting side (its height)
    assert abs((y1 - y0) - 765) <= 2
    assert abs(y1 - 950) <= 1  # on the bottom margin
    assert abs((x0 + x1) / 2 - 500) <= 1  # centred across
    assert not placed.notes


def test_the_subject_is_never_enlarged_past_its_own_pixels_without_a_note() -> None:
    original, alpha = _subject()  # 101 x 151 subject
    placed = compose.place(original, alpha, (1000, 1000), fill=90)
    x0, y0, x1, y1 = placed.subject_box
    assert (x1 - x0, y1 - y0) == (101, 151) and placed.scale == 1.0
    assert "past its own resolution" in placed.notes[0] and "allowUpscale" in placed.notes[0]
    enlarged = compose.place(original, alpha, (1000, 1000), fill=90, allow_upscale=True)
    assert enlarged.scale > 5 and "enlarged" in enlarged.notes[0]


def test_without_fill_the_original_framing_is_kept_on_a_new_aspect() -> None:
    original, alpha = _subject()
    placed = compose.place(original, alpha, (300, 300))
    assert placed.scale == pytest.approx(0.75)  # 400 px wide into 300
    assert placed.original.size == (300, 300) and placed.alpha.size == (300, 300)


def test_cover_fills_the_canvas_and_reports_enlargement() -> None:
    layer, scale = compose.cover(Image.new("RGB", (100, 50), (1, 2, 3)), (300, 300))
    assert layer.size == (300, 300) and scale == 6.0


def test_a_placement_canvas_keeps_inside_the_original_for_an_aspect() -> None:
    placement = backgrounds.Placement(aspect=(4, 5))
    assert placement.canvas_size((1200, 800)) == (640, 800)
    assert backgrounds.Placement(width=500, aspect=(1, 2)).canvas_size((1200, 800)) == (500, 1000)
