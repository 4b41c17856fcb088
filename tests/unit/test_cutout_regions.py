"""The local cut-out engine's region corrections (backend/local/cutout_regions.py, issue #27 point 7).

Every case is a composite with a TRUE alpha (drawn by bench/scorecard_set.py or bench/cutout.py,
never the engine's own output), and each improvement is shown on a case the engine got wrong
before it: the "before" is the same model with the corrections off (`regions=False`), which
answers exactly as the engine did before they existed.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from backend.local import cutout, cutout_regions
from bench import cutout as bench_cutout
from bench import scorecard_set

MODEL_EXPECTED = sys.version_info < (3, 13)  # as tests/unit/test_cutout.py


def _iou(alpha: Image.Image, truth: Image.Image) -> float:
    got, true = np.asarray(alpha) >= 128, np.asarray(truth) >= 128
    union = (got | true).sum()
    return float((got & true).sum() / union) if union else 1.0


@pytest.fixture(scope="module")
def engines() -> tuple[cutout.SalientObjectModel, cutout.SalientObjectModel]:
    """(before, after): the same model without and with the region corrections."""
    try:
        path = cutout.model_path()
        return cutout.SalientObjectModel(path, regions=False), cutout.SalientObjectModel(path)
    except Exception as exc:
        if MODEL_EXPECTED:
            raise AssertionError(f"the local cut-out model is not installed (run `make install`): {exc}") from exc
        pytest.skip(f"{cutout.MODEL_DISTRIBUTION} does not support Python {sys.version_info[:2]}")


# ------------------------------------------------------------------ with the model


@pytest.mark.parametrize(
    ("category", "index", "floor"),
    # on a busy background what is left is the photo's own salient part inside the subject's box
    [("white on white", 0, 0.95), ("busy background", 1, 0.75), ("at the frame", 3, 0.95)],
)
def test_the_kept_boxes_drop_the_background_objects_the_model_keeps(
    engines, category: str, index: int, floor: float
) -> None:
    before, after = engines
    case = scorecard_set.make_case(category, index)
    assert case.distractor is not None  # a background object that is not kept
    old = _iou(before.alpha(case.original), case.alpha)
    new = _iou(after.alpha(case.original, case.boxes), case.alpha)
    assert old < 0.85, old  # the model kept the background object as the subject
    assert new >= floor and new > old + 0.1, (old, new)


def test_without_boxes_the_answer_is_the_models(engines) -> None:
    # the local stack gives Bedrock's stand-in no boxes: nothing is dropped on a guess
    before, after = engines
    case = scorecard_set.make_case("white on white", 0)
    assert _iou(after.alpha(case.original), before.alpha(case.original)) > 0.99


def test_a_close_up_cut_by_the_frame_is_kept_whole(engines) -> None:
    before, after = engines
    case = bench_cutout.close_up(9)  # touches the top, the right and the bottom
    old = _iou(before.alpha(case.image), case.truth)
    new = _iou(after.alpha(case.image, case.boxes), case.truth)
    assert old < 0.8, old  # the model dropped the part along the frame
    assert new >= 0.95, (old, new)


def test_the_framed_look_is_not_taken_when_it_agrees_less_with_the_boxes(engines) -> None:
    # grey on grey shown inside a frame of its own colour: the whole photo becomes the object.
    # A kept box at the frame asks for the framed look; the boxes reject it.
    before, after = engines
    case = scorecard_set.make_case("grey on grey", 5)
    framed = after.probability(case.original, framed=True)
    plain = after.probability(case.original)
    left, top, width, height = case.boxes[0]
    at_frame = ((0.0, top, left + width, height),)  # the same box, stretched to the left edge
    assert cutout_regions.box_agreement(framed, at_frame) < cutout_regions.box_agreement(plain, at_frame)
    assert _iou(after.alpha(case.original, at_frame), case.alpha) >= 0.9


def test_a_label_the_model_leaves_out_of_the_product_is_filled(engines) -> None:
    before, after = engines
    case = bench_cutout.label_product(2)
    old = _iou(before.alpha(case.image), case.truth)
    new = _iou(after.alpha(case.image), case.truth)  # no boxes needed: holes are the engine's own
    assert old < 0.9, old
    assert new >= 0.97, (old, new)


def test_a_thin_cable_within_its_kept_box_is_kept(engines) -> None:
    before, after = engines
    case = scorecard_set.make_case("transparent/thin", 5)  # a 3-5 px cable on a plain background
    old = _iou(before.alpha(case.original), case.alpha)
    new = _iou(after.alpha(case.original, case.boxes), case.alpha)
    assert new >= old + 0.05, (old, new)


# ------------------------------------------------------------------ the region logic alone


def _disc(draw: ImageDraw.ImageDraw, cx: int, cy: int, r: int, fill: int) -> None:
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)


def test_components_separate_regions_and_join_a_winding_one() -> None:
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:35, 5:10] = mask[30:35, 5:50] = mask[5:35, 45:50] = True  # a U: one region
    mask[10:20, 20:30] = True  # a square inside the U, apart
    labels = cutout_regions.components(mask)
    assert len(np.unique(labels[mask])) == 2
    assert labels[5, 5] == labels[5, 45]  # the U's two arms, joined only through its bottom
    assert (labels[~mask] == -1).all()


def _ring(hole_colour: tuple[int, int, int]) -> tuple[Image.Image, Image.Image, Image.Image]:
    """(photo, alpha with an enclosed hole, the true alpha of the product) on a plain background."""
    size = (200, 160)
    rgb = Image.new("RGB", size, (200, 205, 210))
    draw = ImageDraw.Draw(rgb)
    _disc(draw, 100, 80, 60, (40, 30, 120))
    _disc(draw, 100, 80, 25, hole_colour)
    answer = Image.new("L", size, 0)
    draw_a = ImageDraw.Draw(answer)
    _disc(draw_a, 100, 80, 60, 255)
    _disc(draw_a, 100, 80, 25, 0)  # the model's answer: a hole where the middle is
    solid = Image.new("L", size, 0)
    _disc(ImageDraw.Draw(solid), 100, 80, 60, 255)
    return rgb, answer, solid


def test_a_hole_in_the_products_colour_is_filled() -> None:
    rgb, answer, solid = _ring((45, 35, 115))  # the middle is the product: a hole only in the answer
    assert _iou(answer, solid) < 0.85
    assert _iou(cutout_regions.fill_holes(rgb, answer), solid) > 0.98


def test_a_hole_that_shows_the_background_stays_open() -> None:
    rgb, answer, _ = _ring((198, 206, 212))  # a mug's handle: the background shows through
    assert _iou(cutout_regions.fill_holes(rgb, answer), answer) > 0.99


def test_keep_boxes_drops_a_region_outside_every_box_and_keeps_a_touching_one() -> None:
    size = (200, 100)
    answer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(answer)
    draw.rectangle([20, 20, 80, 80], fill=255)  # the product
    draw.rectangle([150, 30, 180, 60], fill=255)  # a background object
    truth = Image.new("L", size, 0)
    ImageDraw.Draw(truth).rectangle([20, 20, 80, 80], fill=255)
    box = (0.11, 0.21, 0.29, 0.59)  # a detector's box, a little short of the product on each side
    kept = cutout_regions.keep_boxes(answer, [box])
    assert _iou(answer, truth) < 0.8
    assert _iou(kept, truth) > 0.97
    assert cutout_regions.keep_boxes(answer, []) is answer
