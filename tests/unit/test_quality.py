"""The per-image scorecard: every check can FAIL on a crafted bad result, PRECISE says ∞, bad
input never crashes and never passes, Rekognition checks work with any client."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image, ImageDraw
from scenes import make_scene, plain

from chalicelib.imaging import compose, quality
from chalicelib.imaging.quality import CheckName, Outcome, Scorecard, Thresholds

WHITE = (255, 255, 255)


@pytest.fixture(scope="module")
def scene():
    return make_scene()


@pytest.fixture(scope="module")
def clean(scene):
    background = plain(scene.original.size, WHITE)
    return background, compose.compose(scene.original, scene.alpha, background)


def _check(card: Scorecard, name: CheckName) -> quality.Check:
    check = card.get(name)
    assert check is not None, card
    return check


# ------------------------------------------------------------------------------------ fidelity


def test_precise_result_says_infinity_and_zero_and_is_json_safe(scene, clean) -> None:
    background, result = clean
    card = quality.score_image(scene.original, result, scene.alpha, background=background)
    fidelity = _check(card, CheckName.SUBJECT_FIDELITY)
    assert fidelity.outcome == Outcome.PASS
    assert fidelity.metrics["psnrDb"] == "Infinity" and float(fidelity.metrics["psnrDb"]) == math.inf
    assert fidelity.metrics["identical"] is True and fidelity.metrics["deltaE"] == 0.0
    assert "∞" in fidelity.reason and "ΔE 0" in fidelity.reason
    text = json.dumps(card.to_dict(), allow_nan=False)  # no NaN/Infinity literals
    assert Scorecard.from_dict(json.loads(text)) == card
    assert card.outcome == Outcome.PASS


def _shift_subject(scene, result: Image.Image, delta: int) -> Image.Image:
    """The result with every solid subject pixel's red channel moved by `delta`."""
    pixels = np.asarray(result).astype(int)
    solid = np.asarray(scene.alpha) == 255
    pixels[solid, 0] = np.clip(pixels[solid, 0] + delta, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.mark.parametrize(
    ("delta", "outcome", "words"),
    [(2, Outcome.PASS, "unchanged to the eye"), (4, Outcome.WARN, "slightly"), (40, Outcome.FAIL, "visibly")],
)
def test_a_changed_subject_is_measured_and_graded(scene, clean, delta, outcome, words) -> None:
    background, result = clean
    changed = _shift_subject(scene, result, delta)
    fidelity = _check(quality.score_image(scene.original, changed, scene.alpha), CheckName.SUBJECT_FIDELITY)
    assert fidelity.outcome == outcome, fidelity
    assert words in fidelity.reason
    assert fidelity.metrics["identical"] is False
    # every interior pixel's red moved by delta: PSNR = 10 log10(255^2 / (delta^2 / 3))
    expected = 10 * math.log10(255**2 * 3 / delta**2)
    assert fidelity.metrics["psnrDb"] == pytest.approx(expected, abs=0.3)


def test_one_changed_pixel_is_not_called_identical(scene, clean) -> None:
    _, result = clean
    pixels = np.array(result)
    ys, xs = np.nonzero(np.asarray(scene.alpha) == 255)
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    pixels[y, x, 2] ^= 1
    fidelity = _check(
        quality.score_image(scene.original, Image.fromarray(pixels), scene.alpha), CheckName.SUBJECT_FIDELITY
    )
    assert fidelity.metrics["identical"] is False and fidelity.metrics["psnrDb"] != "Infinity"


def test_thresholds_are_the_jobs(scene, clean) -> None:
    _, result = clean
    changed = _shift_subject(scene, result, 4)
    strict = Thresholds(subject_psnr_warn_db=60, subject_psnr_fail_db=50)
    card = quality.score_image(scene.original, changed, scene.alpha, thresholds=strict)
    assert _check(card, CheckName.SUBJECT_FIDELITY).outcome == Outcome.FAIL


# ------------------------------------------------------------------------------------ halo


def test_a_plain_paste_fails_the_halo_check_and_a_clean_one_passes(scene) -> None:
    background = plain(scene.original.size, WHITE)
    naive = compose.compose(scene.original, scene.alpha, background, decontaminate=False)
    for result, outcome in (
        (naive, Outcome.FAIL),
        (compose.compose(scene.original, scene.alpha, background), Outcome.PASS),
    ):
        for known in (background, None):  # with the background given, or read from the result
            halo = _check(
                quality.score_image(scene.original, result, scene.alpha, background=known), CheckName.EDGE_HALO
            )
            assert halo.outcome == outcome, (known is not None, halo)
    assert "fringe" in _check(quality.score_image(scene.original, naive, scene.alpha), CheckName.EDGE_HALO).reason


def test_the_true_composite_passes_the_halo_check(scene) -> None:
    background = plain(scene.original.size, (10, 10, 10))
    truth = Image.fromarray(np.round(scene.truth(background)).astype(np.uint8))
    card = quality.score_image(scene.original, truth, scene.alpha, background=background)
    assert _check(card, CheckName.EDGE_HALO).outcome == Outcome.PASS


def test_a_hard_edge_is_not_measured_and_not_passed(scene) -> None:
    hard = scene.alpha.point(lambda v: 255 if v >= 128 else 0)
    result = Image.composite(scene.original, plain(hard.size, WHITE), hard)
    halo = _check(quality.score_image(scene.original, result, hard), CheckName.EDGE_HALO)
    assert halo.outcome == Outcome.SKIPPED and "hard edge" in halo.reason


def test_no_fringe_can_show_when_the_old_background_is_the_subjects_colour() -> None:
    size = (160, 120)
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).ellipse((40, 30, 120, 90), fill=255)
    alpha = alpha.resize((40, 30)).resize(size, Image.Resampling.BILINEAR)
    original = plain(size, (200, 50, 50))  # subject and old background the same red
    result = compose.compose(original, alpha, plain(size, WHITE), decontaminate=False)
    halo = _check(quality.score_image(original, result, alpha), CheckName.EDGE_HALO)
    assert halo.outcome == Outcome.PASS and "no fringe can show" in halo.reason


# ------------------------------------------------------------------------------------ bad input


def _frame(size=(120, 90)) -> Image.Image:
    return Image.effect_noise(size, 50).convert("RGB")


def _alpha(size, draw=None, fill=0) -> Image.Image:
    alpha = Image.new("L", size, fill)
    if draw:
        draw(ImageDraw.Draw(alpha))
    return alpha


BAD_ALPHAS = {
    "fully transparent": (lambda s: _alpha(s), "empty"),
    "one pixel": (lambda s: _alpha(s, lambda d: d.point((60, 45), fill=255)), "only 1 px"),
    "faint only": (lambda s: _alpha(s, fill=60), "faint"),
    "whole frame": (lambda s: _alpha(s, fill=255), "whole frame"),
}


@pytest.mark.parametrize("case", list(BAD_ALPHAS), ids=list(BAD_ALPHAS))
def test_bad_cutouts_get_a_clear_fail_never_a_pass(case) -> None:
    make_alpha, words = BAD_ALPHAS[case]
    original = _frame()
    alpha = make_alpha(original.size)
    result = compose.compose(original, alpha, plain(original.size, WHITE))
    card = quality.score_image(original, result, alpha)
    assert card.outcome == Outcome.FAIL
    assert all(c.outcome != Outcome.PASS for c in card.checks)
    assert words in _check(card, CheckName.SUBJECT_FIDELITY).reason
    json.dumps(card.to_dict(), allow_nan=False)


def test_a_thin_subject_is_not_measured_and_not_passed() -> None:
    original = _frame((200, 100))
    alpha = _alpha(original.size, lambda d: d.line((10, 50, 190, 50), fill=255, width=2))
    card = quality.score_image(original, original, alpha)
    fidelity = _check(card, CheckName.SUBJECT_FIDELITY)
    assert fidelity.outcome == Outcome.WARN and "Not measured" in fidelity.reason


def test_images_of_different_sizes_fail_instead_of_crashing() -> None:
    original = _frame((120, 90))
    card = quality.score_image(
        original, _frame((60, 45)), _alpha((120, 90), lambda d: d.rectangle((30, 20, 90, 70), 255))
    )
    assert card.outcome == Outcome.FAIL and "not the same size" in card.checks[0].reason


# ------------------------------------------------------------------------------------ colour maths


SHARMA_PAIRS = [  # Sharma, Wu, Dalal (2005), test data for CIEDE2000
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_the_published_test_data() -> None:
    lab1 = np.array([p[0] for p in SHARMA_PAIRS])
    lab2 = np.array([p[1] for p in SHARMA_PAIRS])
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    assert quality.delta_e_2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert quality.delta_e_2000(lab2, lab1) == pytest.approx(expected, abs=1e-4)


def test_srgb_to_lab_white_black_and_grey() -> None:
    lab = quality.srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [119, 119, 119]], dtype=np.uint8))
    assert lab[0] == pytest.approx([100, 0, 0], abs=0.01)
    assert lab[1] == pytest.approx([0, 0, 0], abs=0.01)
    assert lab[2][0] == pytest.approx(50.0, abs=0.3) and abs(lab[2][1]) < 0.01


# ------------------------------------------------------------------------------------ scorecard


def test_the_scorecard_outcome_is_the_worst_check_and_the_summary_names_problems() -> None:
    checks = (
        quality.Check(CheckName.SUBJECT_FIDELITY, Outcome.PASS, "Product untouched."),
        quality.Check(CheckName.EDGE_HALO, Outcome.WARN, "Faint fringe."),
        quality.Check(CheckName.TEXT_INTEGRITY, Outcome.SKIPPED, "Not checked: no text."),
    )
    card = Scorecard(checks)
    assert card.outcome == Outcome.WARN
    assert card.summary() == "WARN: Faint fringe."
    failed = card.with_check(quality.Check(CheckName.EDGE_HALO, Outcome.FAIL, "Visible fringe."))
    assert failed.outcome == Outcome.FAIL and len(failed.checks) == 3
    assert Scorecard((checks[2],)).outcome == Outcome.SKIPPED
    assert Scorecard().outcome == Outcome.SKIPPED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"halo_warn": -1},
        {"halo_warn": float("nan")},
        {"subject_psnr_warn_db": 20, "subject_psnr_fail_db": 30},
        {"halo_warn": 6, "halo_fail": 5},
        {"label_min_confidence": True},
    ],
)
def test_incoherent_thresholds_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        Thresholds(**kwargs)


# ------------------------------------------------------------------------------------ Rekognition


class FakeRekognition:
    """Answers DetectLabels/DetectText with the given responses (or raises), and records calls."""

    def __init__(self, labels=None, texts=(), error: str | None = None) -> None:
        self.labels = labels or {"Labels": []}
        self.texts = list(texts)
        self.error = error
        self.calls: list[tuple[str, dict]] = []

    def _maybe_fail(self, operation: str) -> None:
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, operation)

    def detect_labels(self, **kwargs):
        self.calls.append(("detect_labels", kwargs))
        self._maybe_fail("DetectLabels")
        return self.labels

    def detect_text(self, **kwargs):
        self.calls.append(("detect_text", kwargs))
        self._maybe_fail("DetectText")
        return self.texts.pop(0)


def _label(name, confidence=95.0, boxes=(), parents=()):
    return {
        "Name": name,
        "Confidence": confidence,
        "Instances": [
            {"BoundingBox": {"Left": b[0], "Top": b[1], "Width": b[2], "Height": b[3]}, "Confidence": confidence}
            for b in boxes
        ],
        "Parents": [{"Name": p} for p in parents],
    }


RESULT = {"S3Object": {"Bucket": "b", "Name": "results/x.png"}}
BOX = (0.3, 0.2, 0.4, 0.6)


def test_subject_present_passes_when_the_kept_label_is_seen_in_place() -> None:
    client = FakeRekognition({"Labels": [_label("Sneaker", boxes=[BOX], parents=["Shoe", "Footwear"])]})
    check = quality.check_subject_present(client, RESULT, ["shoe"], [BOX])
    assert check.outcome == Outcome.PASS and "'shoe'" in check.reason
    assert client.calls == [("detect_labels", {"Image": RESULT, "MaxLabels": 100, "MinConfidence": 50})]
    assert check.metrics["boxOverlap"] == 1.0


def test_subject_present_fails_when_the_product_is_gone() -> None:
    client = FakeRekognition({"Labels": [_label("Table"), _label("Room")]})
    check = quality.check_subject_present(client, RESULT, ["Bottle", "Table"])
    assert check.outcome == Outcome.FAIL and "'Bottle'" in check.reason
    assert check.metrics["labelsMissing"] == ["Bottle"]


def test_subject_present_warns_when_unsure_or_moved() -> None:
    unsure = FakeRekognition({"Labels": [_label("Bottle", confidence=55)]})
    assert quality.check_subject_present(unsure, RESULT, ["Bottle"]).outcome == Outcome.WARN
    moved = FakeRekognition({"Labels": [_label("Bottle", boxes=[(0.0, 0.0, 0.2, 0.2)])]})
    check = quality.check_subject_present(moved, RESULT, ["Bottle"], [BOX])
    assert check.outcome == Outcome.WARN and "moved" in check.reason


def test_subject_present_without_kept_labels_or_service_is_skipped_not_passed() -> None:
    client = FakeRekognition()
    assert quality.check_subject_present(client, RESULT, []).outcome == Outcome.SKIPPED
    assert client.calls == []
    broken = quality.check_subject_present(FakeRekognition(error="ThrottlingException"), RESULT, ["Bottle"])
    assert broken.outcome == Outcome.SKIPPED and "ThrottlingException" in broken.reason


def _line(text, box=(0.4, 0.4, 0.2, 0.05), confidence=99.0):
    return {
        "Type": "LINE",
        "DetectedText": text,
        "Confidence": confidence,
        "Geometry": {"BoundingBox": {"Left": box[0], "Top": box[1], "Width": box[2], "Height": box[3]}},
    }


ORIGINAL = {"S3Object": {"Bucket": "b", "Name": "uploads/x.jpg"}}


def _subject_mask() -> Image.Image:
    return _alpha((100, 100), lambda d: d.rectangle((30, 30, 70, 70), fill=255))


def test_text_integrity_passes_when_the_products_text_reads_the_same() -> None:
    client = FakeRekognition(
        texts=[{"TextDetections": [_line("ORGANIC COFFEE")]}, {"TextDetections": [_line("Organic  coffee")]}]
    )
    check = quality.check_text_integrity(client, ORIGINAL, RESULT, subject_alpha=_subject_mask())
    assert check.outcome == Outcome.PASS and "ORGANIC COFFEE" in check.reason
    assert [c[1]["Image"] for c in client.calls] == [ORIGINAL, RESULT]


def test_text_integrity_fails_when_the_text_is_garbled() -> None:
    before = {"TextDetections": [_line("ORGANIC COFFEE"), _line("500 g", box=(0.45, 0.55, 0.1, 0.05))]}
    after = {"TextDetections": [_line("ORGANC COFEE"), _line("500 g", box=(0.45, 0.55, 0.1, 0.05))]}
    check = quality.check_text_integrity(FakeRekognition(texts=[before, after]), ORIGINAL, RESULT)
    assert check.outcome == Outcome.FAIL
    assert "'ORGANIC COFFEE' now reads 'ORGANC COFEE'" in check.reason
    assert check.metrics == {"linesOnProduct": 2, "linesChanged": 1}


def test_text_in_the_old_background_is_meant_to_go() -> None:
    before = {"TextDetections": [_line("EXIT", box=(0.02, 0.02, 0.1, 0.05))]}  # outside the subject
    client = FakeRekognition(texts=[before])
    check = quality.check_text_integrity(client, ORIGINAL, RESULT, subject_alpha=_subject_mask())
    assert check.outcome == Outcome.SKIPPED and "no printed text" in check.reason
    assert len(client.calls) == 1  # the result is not read when there is nothing to compare


def test_text_integrity_needs_no_call_when_the_subject_is_identical() -> None:
    client = FakeRekognition()
    check = quality.check_text_integrity(client, ORIGINAL, RESULT, subject_identical=True)
    assert check.outcome == Outcome.PASS and client.calls == []


def test_text_integrity_is_skipped_with_the_reason_when_rekognition_fails() -> None:
    check = quality.check_text_integrity(FakeRekognition(error="InvalidImageFormatException"), ORIGINAL, RESULT)
    assert check.outcome == Outcome.SKIPPED and "InvalidImageFormatException" in check.reason


def test_a_transparent_original_is_scored_as_it_was_composed(scene) -> None:
    rgba = scene.original.copy()
    rgba.putalpha(128)  # half transparent everywhere: flattening changes every pixel
    background = plain(rgba.size, WHITE)
    result = compose.compose(rgba, scene.alpha, background)
    fidelity = _check(quality.score_image(rgba, result, scene.alpha), CheckName.SUBJECT_FIDELITY)
    assert fidelity.metrics["identical"] is True


# ------------------------------------------------------------------------------------ attempts


def _attempt(number, *checks, error=None):
    if error:
        return {"attempt": number, "errorCode": error}
    card = Scorecard(tuple(quality.Check(name, outcome, "why", metrics) for name, outcome, metrics in checks))
    return {"attempt": number, "outputs": [{"quality": card.to_dict()}]}


FID, HALO, PRESENT = CheckName.SUBJECT_FIDELITY, CheckName.EDGE_HALO, CheckName.SUBJECT_PRESENT


def test_the_best_attempt_has_the_best_verdict_then_fewer_problems_then_less_colour_error() -> None:
    failing = _attempt(1, (FID, Outcome.PASS, {"deltaE": 0.0}), (PRESENT, Outcome.FAIL, {}))
    warning = _attempt(2, (FID, Outcome.WARN, {"deltaE": 2.0}), (PRESENT, Outcome.PASS, {}))
    assert quality.best_attempt([failing, warning]) is warning  # verdict first, whatever the figures
    two_warnings = _attempt(3, (FID, Outcome.WARN, {"deltaE": 1.5}), (HALO, Outcome.WARN, {"haloDeltaE": 2.1}))
    assert quality.best_attempt([two_warnings, warning]) is warning  # then fewer warnings
    cleaner = _attempt(4, (FID, Outcome.WARN, {"deltaE": 1.2}), (PRESENT, Outcome.PASS, {}))
    assert quality.best_attempt([warning, cleaner]) is cleaner  # then the smaller colour error
    same = _attempt(5, (FID, Outcome.WARN, {"deltaE": 1.2}), (PRESENT, Outcome.PASS, {}))
    assert quality.best_attempt([cleaner, same]) is cleaner  # then the earlier
    unmeasured = _attempt(6, (FID, Outcome.SKIPPED, {}))
    assert quality.best_attempt([failing, unmeasured]) is unmeasured  # nothing measured beats a FAIL
    assert quality.best_attempt([warning, unmeasured]) is warning  # ... but not a WARN
    assert quality.best_attempt([_attempt(7, error="CONTENT_FILTERED")]) is None
    assert quality.best_attempt([_attempt(7, error="CONTENT_FILTERED"), failing]) is failing


def test_an_attempts_score_is_its_colour_error_and_its_outcome_the_worst_variant() -> None:
    cards = [
        Scorecard(
            (
                quality.Check(FID, Outcome.PASS, "", {"deltaE": 0.4}),
                quality.Check(HALO, Outcome.WARN, "", {"haloDeltaE": 2.5}),
            )
        ),
        Scorecard((quality.Check(FID, Outcome.PASS, "", {"psnrDb": "Infinity", "deltaE": 0.0}),)),
    ]
    assert quality.attempt_score(cards) == 2.9
    assert quality.attempt_outcome(cards) is Outcome.WARN


def test_only_a_check_a_new_seed_can_change_earns_a_re_roll() -> None:
    assert quality.needs_re_roll(_attempt(1, (PRESENT, Outcome.FAIL, {})))
    assert not quality.needs_re_roll(_attempt(1, (PRESENT, Outcome.WARN, {})))
    assert quality.needs_re_roll(_attempt(1, (PRESENT, Outcome.WARN, {})), Outcome.WARN)
    assert not quality.needs_re_roll(
        _attempt(1, (PRESENT, Outcome.PASS, {}), (HALO, Outcome.SKIPPED, {})), Outcome.WARN
    )
    # an empty cut-out fails whatever the seed: no money spent on it
    card = quality.score_image(Image.new("RGB", (64, 64)), Image.new("RGB", (64, 64)), Image.new("L", (64, 64)))
    assert card.outcome is Outcome.FAIL
    assert not quality.needs_re_roll({"attempt": 1, "outputs": [{"quality": card.to_dict()}]})


def test_the_rekognition_rendition_fits_its_limits_or_says_why_not() -> None:
    big = Image.new("RGB", (6000, 4000), (120, 80, 40))
    image = quality.rekognition_image(big)
    assert isinstance(image, dict)
    rendition = Image.open(io.BytesIO(image["Bytes"]))
    assert rendition.format == "JPEG" and max(rendition.size) == quality.REKOGNITION_SIDE
    assert len(image["Bytes"]) <= quality.REKOGNITION_MAX_BYTES
    webp_like = Image.new("RGBA", (300, 200), (0, 0, 0, 0))  # any mode: flattened to RGB
    assert isinstance(quality.rekognition_image(webp_like), dict)
    too_thin = quality.rekognition_image(Image.new("RGB", (4000, 90)))
    assert isinstance(too_thin, str) and too_thin.startswith("Not available") and "80 px" in too_thin


def test_a_re_rolled_image_is_summed_up_in_one_line() -> None:
    attempts = [
        {"attempt": 1, "seed": 42, "outcome": "FAIL", "costUsd": 0.083, "kept": False},
        {"attempt": 2, "seed": 104771, "errorCode": "CONTENT_FILTERED", "costUsd": 0.0, "kept": False},
        {"attempt": 3, "seed": 209500, "outcome": "PASS", "costUsd": 0.042, "kept": True},
    ]
    assert quality.attempts_summary(attempts) == (
        "Re-rolled: attempt 1 FAIL (seed 42), attempt 2 CONTENT_FILTERED (seed 104771), "
        "attempt 3 PASS (seed 209500); kept attempt 3; $0.12 in all"
    )
    assert quality.attempts_summary(attempts[:1]) == ""


def test_variants_made_once_each_need_no_summary_and_a_re_rolled_one_names_its_variant() -> None:
    variants = [
        {"attempt": n, "variant": n, "seed": 40 + n, "outcome": "FAIL", "costUsd": 0.04, "kept": True} for n in (1, 2)
    ]
    assert quality.attempts_summary(variants) == ""  # each variant says its own seed and verdict
    re_rolled = [
        {**variants[1], "kept": False},
        {"attempt": 3, "variant": 2, "seed": 7, "outcome": "PASS", "kept": True},
    ]
    assert quality.attempts_summary([variants[0], *re_rolled]) == (
        "Attempts: attempt 1 (variant 1) FAIL (seed 41), attempt 2 (variant 2) FAIL (seed 42), "
        "attempt 3 (variant 2) PASS (seed 7); kept attempts 1, 3; $0.08 in all"
    )
