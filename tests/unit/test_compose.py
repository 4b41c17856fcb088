"""Compositing: clean edges, the PRECISE invariant, harmonise blend, background fill, shadows."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scenes import edge_psnr, make_scene, plain

from chalicelib.imaging import compose, quality
from chalicelib.imaging import images as imaging
from chalicelib.imaging.compose import Shadow, ShadowKind

WHITE = (255, 255, 255)


@pytest.fixture(scope="module")
def scene():
    return make_scene()


def _solid(alpha: Image.Image) -> np.ndarray:
    return np.asarray(alpha) == 255


def test_precise_keeps_every_solid_subject_pixel_bit_for_bit(scene) -> None:
    background = plain(scene.original.size, (20, 160, 60))
    hole = scene.alpha.point(lambda v: 255 if v else 0)
    result = compose.compose(
        scene.original, scene.alpha, background, shadow=Shadow(ShadowKind.SOFT, 45, 0.8), background_hole=hole
    )
    solid = _solid(scene.alpha)
    assert solid.sum() > 1000
    assert np.array_equal(np.asarray(result)[solid], np.asarray(scene.original)[solid])


def test_where_there_is_no_subject_the_result_is_the_background(scene) -> None:
    background = Image.effect_noise(scene.original.size, 40).convert("RGB")
    result = compose.compose(scene.original, scene.alpha, background)
    empty = np.asarray(scene.alpha) == 0
    assert np.array_equal(np.asarray(result)[empty], np.asarray(background)[empty])


@pytest.mark.parametrize("new", [WHITE, (0, 0, 0), (30, 200, 90)], ids=["white", "black", "green"])
def test_decontamination_brings_the_edge_close_to_the_true_composite(scene, new) -> None:
    background = plain(scene.original.size, new)
    truth = scene.truth(background)
    plain_paste = compose.compose(scene.original, scene.alpha, background, decontaminate=False)
    cleaned = compose.compose(scene.original, scene.alpha, background)
    before, after = edge_psnr(plain_paste, truth, scene.edge), edge_psnr(cleaned, truth, scene.edge)
    assert after >= before + 6, (before, after)
    assert after >= 35, after


def test_decontamination_measurably_reduces_the_halo_score(scene) -> None:
    background = plain(scene.original.size, WHITE)
    plain_paste = compose.compose(scene.original, scene.alpha, background, decontaminate=False)
    cleaned = compose.compose(scene.original, scene.alpha, background)
    halo = [
        quality.score_image(scene.original, r, scene.alpha, background=background).get(quality.CheckName.EDGE_HALO)
        for r in (plain_paste, cleaned)
    ]
    assert halo[0].outcome == quality.Outcome.FAIL, halo[0]
    assert halo[1].outcome == quality.Outcome.PASS, halo[1]
    assert halo[1].metrics["haloDeltaE"] < halo[0].metrics["haloDeltaE"] / 3


def test_estimate_recovers_a_flat_subject_colour_exactly_in_the_edge() -> None:
    # a flat orange subject over a flat blue background: the mix is exactly solvable
    size = (120, 90)
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).ellipse((30, 20, 90, 70), fill=255)
    alpha = alpha.resize((30, 22)).resize(size, Image.Resampling.BILINEAR)  # a wide soft edge
    a = np.asarray(alpha, dtype=np.float64)[..., None] / 255
    orange, blue = np.array([230, 120, 20]), np.array([20, 40, 200])
    original = Image.fromarray(np.round(a * orange + (1 - a) * blue).astype(np.uint8))
    foreground = np.asarray(compose.estimate_foreground(original, alpha)).astype(int)
    edge = (np.asarray(alpha) >= 40) & (np.asarray(alpha) < 255)  # faint pixels carry 8-bit rounding
    assert edge.sum() > 200
    assert np.abs(foreground[edge] - orange).max() <= 3
    # outside the edge nothing changes
    other = ~((np.asarray(alpha) > 0) & (np.asarray(alpha) < 255))
    assert np.array_equal(foreground[other], np.asarray(original).astype(int)[other])


def test_a_hard_edge_has_nothing_to_decontaminate(scene) -> None:
    hard = scene.alpha.point(lambda v: 255 if v >= 128 else 0)
    background = plain(scene.original.size, WHITE)
    assert compose.estimate_edge(scene.original, hard) is None
    result = compose.compose(scene.original, hard, background)
    assert np.array_equal(np.asarray(result), np.asarray(Image.composite(scene.original, background, hard)))


def test_no_old_background_anywhere_leaves_the_edge_as_it_is() -> None:
    original = Image.effect_noise((64, 64), 30).convert("RGB")
    alpha = Image.new("L", (64, 64), 200)  # soft everywhere, no sure background
    foreground = compose.estimate_foreground(original, alpha)
    assert np.array_equal(np.asarray(foreground), np.asarray(original))


@pytest.mark.parametrize("level", [0, 255])
def test_empty_and_full_alpha(scene, level) -> None:
    background = plain(scene.original.size, (10, 20, 30))
    alpha = Image.new("L", scene.original.size, level)
    result = compose.compose(scene.original, alpha, background, shadow=Shadow(ShadowKind.SOFT))
    expected = scene.original if level == 255 else background
    assert np.array_equal(np.asarray(result), np.asarray(expected))


def test_harmonise_blend_moves_from_the_original_to_the_models_subject(scene) -> None:
    background = plain(scene.original.size, WHITE)
    relit = plain(scene.original.size, (40, 40, 40))
    solid = _solid(scene.alpha)
    for blend, expected in ((1.0, np.asarray(scene.original)[solid].astype(float)), (0.0, 40.0)):
        result = compose.compose(scene.original, scene.alpha, background, blend=blend, relit=relit)
        assert np.abs(np.asarray(result)[solid].astype(float) - expected).max() <= 1
    half = compose.compose(scene.original, scene.alpha, background, blend=0.5, relit=relit)
    midway = (np.asarray(scene.original)[solid].astype(float) + 40) / 2
    assert np.abs(np.asarray(half)[solid] - midway).max() <= 1


@pytest.mark.parametrize("blend", [-0.1, 1.5, float("nan")])
def test_blend_outside_zero_to_one_is_refused(scene, blend) -> None:
    with pytest.raises(ValueError, match="blend"):
        compose.compose(scene.original, scene.alpha, scene.original, blend=blend, relit=scene.original)


def test_blend_below_one_needs_the_models_subject(scene) -> None:
    with pytest.raises(ValueError, match="relit"):
        compose.compose(scene.original, scene.alpha, scene.original, blend=0.5)


def test_mismatched_sizes_are_refused(scene) -> None:
    with pytest.raises(ValueError, match="background is 10x10"):
        compose.compose(scene.original, scene.alpha, plain((10, 10), WHITE))


def test_fill_background_replaces_the_kept_band_with_the_new_scene_around_it() -> None:
    size = (100, 80)
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).ellipse((30, 20, 70, 60), fill=255)
    alpha = alpha.resize((25, 20)).resize(size, Image.Resampling.BILINEAR)
    hole = imaging.dilate(alpha.point(lambda v: 255 if v else 0), 3)  # the band the model kept
    # the model's image: green new scene, but the kept band still shows the old red background
    generated = plain(size, (30, 180, 60))
    generated.paste(Image.new("RGB", size, (200, 20, 20)), mask=hole)
    filled = np.asarray(compose.fill_background(generated, hole, alpha)).astype(int)
    a = np.asarray(alpha)
    soft = (a > 0) & (a < 255)
    assert np.abs(filled[soft] - [30, 180, 60]).max() <= 2
    # covered by the subject, or beyond its edge (the model's own blend there): left alone
    for untouched in (a == 255, (a == 0) & (np.asarray(hole) > 0)):
        assert untouched.sum() > 50 and (filled[untouched] == [200, 20, 20]).all()
    everything = np.asarray(compose.fill_background(generated, hole)).astype(int)  # no alpha: the whole hole
    assert np.abs(everything[np.asarray(hole) > 0] - [30, 180, 60]).max() <= 2


def test_a_hole_covering_everything_is_left_as_it_is() -> None:
    background = plain((40, 30), (1, 2, 3))
    assert compose.fill_background(background, Image.new("L", (40, 30), 255)) == background


def _subject_block(size=(200, 200), box=(70, 40, 130, 120)) -> Image.Image:
    alpha = Image.new("L", size, 0)
    ImageDraw.Draw(alpha).rectangle(box, fill=255)
    return alpha


def test_soft_shadow_falls_in_the_direction_asked() -> None:
    alpha = _subject_block()
    mask = np.asarray(compose.shadow_mask(alpha, Shadow(ShadowKind.SOFT, angle=0, strength=0.6)))
    right, left = mask[40:120, 132:145].mean(), mask[40:120, 55:68].mean()
    assert right > left + 20
    assert mask.max() <= round(0.6 * 255) + 1
    down = np.asarray(compose.shadow_mask(alpha, Shadow(ShadowKind.SOFT, angle=90, strength=0.6)))
    assert down[122:135, 70:130].mean() > down[25:38, 70:130].mean() + 20


def test_contact_shadow_sits_under_the_subject() -> None:
    alpha = _subject_block()
    mask = np.asarray(compose.shadow_mask(alpha, Shadow(ShadowKind.CONTACT, strength=0.8)))
    below, above = mask[121:126, 75:125].mean(), mask[30:39, 75:125].mean()
    assert below > 60 and above == 0
    assert mask[:, :60].max() < 10  # it hugs the base, it is not a drop shadow


def test_shadow_darkens_only_the_background_and_none_means_none() -> None:
    alpha = _subject_block()
    background = plain(alpha.size, (200, 200, 200))
    original = plain(alpha.size, (10, 120, 250))
    shaded = np.asarray(compose.compose(original, alpha, background, shadow=Shadow(ShadowKind.SOFT, 90, 0.5)))
    assert shaded[130, 100].sum() < 3 * 200  # under the subject, a shadow
    assert (shaded[60, 100] == [10, 120, 250]).all()  # the subject itself is untouched
    for none in (Shadow(), Shadow(ShadowKind.SOFT, strength=0.0)):
        assert compose.shadow_mask(alpha, none) is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"strength": 1.5}, "strength"), ({"strength": -0.1}, "strength"), ({"angle": float("inf")}, "angle")],
)
def test_bad_shadow_settings_are_refused(kwargs, words) -> None:
    with pytest.raises(ValueError, match=words):
        Shadow(ShadowKind.SOFT, **kwargs)
    with pytest.raises(ValueError):
        Shadow("sideways")


def test_cutout_is_rgba_with_the_alpha_and_clean_edge_colours(scene) -> None:
    result = compose.cutout(scene.original, scene.alpha)
    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result.getchannel("A")), np.asarray(scene.alpha))
    edge = scene.edge & (np.asarray(scene.alpha) >= 128)
    colours = np.asarray(result.convert("RGB")).astype(float)[edge]
    raw = np.asarray(scene.original).astype(float)[edge]
    true = scene.subject[edge] * 255
    assert np.abs(colours - true).mean() < np.abs(raw - true).mean() / 2


def test_a_transparent_original_is_flattened_as_the_model_saw_it(scene) -> None:
    rgba = scene.original.copy()
    rgba.putalpha(255)
    result = compose.compose(rgba, scene.alpha, plain(rgba.size, WHITE))
    solid = _solid(scene.alpha)
    assert np.array_equal(np.asarray(result)[solid], np.asarray(scene.original)[solid])


def test_the_kept_band_does_not_show_through_the_edge(scene) -> None:
    green = plain(scene.original.size, (30, 180, 60))
    hole = imaging.dilate(scene.alpha.point(lambda v: 255 if v else 0), 2)
    generated = green.copy()  # the model's image: the kept band still shows the old red scene
    generated.paste(Image.new("RGB", green.size, (200, 20, 20)), mask=hole)
    truth = scene.truth(green)
    for shadow in (Shadow(), Shadow(ShadowKind.SOFT, 90, 0.4)):
        filled = compose.compose(scene.original, scene.alpha, generated, background_hole=hole, shadow=shadow)
        unfilled = compose.compose(scene.original, scene.alpha, generated, shadow=shadow)
        if shadow.kind == ShadowKind.NONE:
            assert edge_psnr(filled, truth, scene.edge) >= 33
        assert edge_psnr(filled, truth, scene.edge) > edge_psnr(unfilled, truth, scene.edge) + 10
        # the same fill whether or not the edge is decontaminated
        plain_paste = compose.compose(
            scene.original, scene.alpha, generated, background_hole=hole, shadow=shadow, decontaminate=False
        )
        red = np.asarray(plain_paste).astype(int)[scene.edge][:, 0] - np.asarray(filled).astype(int)[scene.edge][:, 0]
        assert abs(red.mean()) < 25


def test_each_kept_object_gets_its_own_contact_shadow() -> None:
    """Two objects standing at different heights (issue 27, point 8): each shadow sits under its
    own object; before, one shadow of both was drawn under the lower one's base."""
    alpha = Image.new("L", (400, 300), 0)
    draw = ImageDraw.Draw(alpha)
    draw.rectangle((40, 40, 140, 120), fill=255)  # the upper object: base at y = 120
    draw.ellipse((220, 120, 340, 260), fill=255)  # the lower one: base at y = 260
    mask = np.asarray(compose.shadow_mask(alpha, Shadow(ShadowKind.CONTACT, strength=0.8)))
    assert mask[120:126, 50:130].mean() > 60  # under the upper object's base
    assert mask[258:264, 260:300].mean() > 60  # under the lower one's
    assert mask[250:275, 40:140].max() < 10  # nothing at the lower base's height under the upper object
    assert mask[115:130, 220:340].max() < 10  # nor at the upper base's height under the lower one


def test_a_speck_beside_the_subject_casts_no_contact_shadow() -> None:
    alpha = _subject_block()
    ImageDraw.Draw(alpha).rectangle((10, 10, 12, 12), fill=255)  # 9 px against the block's 4,941
    mask = np.asarray(compose.shadow_mask(alpha, Shadow(ShadowKind.CONTACT, strength=0.8)))
    assert mask[8:20, 0:30].max() < 5  # none under the speck
    assert mask[115:130, 0:30].max() < 5  # nor at the block's base below it (one shadow of both did that)
    assert mask[121:126, 75:125].mean() > 60  # the block's own is drawn


def test_objects_are_found_apart_and_joined_by_a_diagonal_touch() -> None:
    mask = np.zeros((8, 10), dtype=bool)
    mask[1:3, 1:3] = True
    mask[3, 3] = True  # touches the first block by a corner: the same object
    mask[5:7, 6:9] = True
    found = sorted(compose.objects(mask), key=lambda o: o[0])
    assert [box for box, _ in found] == [(1, 1, 4, 4), (6, 5, 9, 7)]
    assert [int(own.sum()) for _, own in found] == [5, 6]


def _soft_disc(size=(160, 120)) -> Image.Image:
    big = Image.new("L", (size[0] * 4, size[1] * 4), 0)
    ImageDraw.Draw(big).ellipse((160, 100, 480, 380), fill=255)
    return big.resize(size, Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(2))


def _textured(size, level, spread, seed) -> Image.Image:
    rng = np.random.default_rng(seed)
    grey = np.clip(level + spread * rng.normal(0, 1, (size[1], size[0], 1)), 0, 1) * np.ones(3)
    return Image.fromarray(np.round(grey * 255).astype(np.uint8))


def test_edges_fall_back_to_a_plain_paste_where_subject_and_old_background_match() -> None:
    """Grey on grey (issue 27, point 5): unmixing cannot tell the two apart and only smooths the
    subject's texture away; the edge is then the plain paste's."""
    alpha = _soft_disc()
    subject, wall = _textured(alpha.size, 0.5, 0.05, 1), _textured(alpha.size, 0.5, 0.01, 2)
    original = Image.composite(subject, wall, alpha)
    new = plain(alpha.size, (255, 255, 255))
    edge = (np.asarray(alpha) > 0) & (np.asarray(alpha) < 255)
    pasted = np.asarray(compose.compose(original, alpha, new, decontaminate=False), dtype=np.int16)[edge]
    result = np.asarray(compose.compose(original, alpha, new), dtype=np.int16)[edge]
    close = np.abs(result - pasted).max(axis=1) <= 1
    assert close.mean() >= 0.98
    # with contrast, the edge is still decontaminated (the fallback is not everywhere)
    blue = Image.composite(plain(alpha.size, (30, 60, 200)), wall, alpha)
    pasted_blue = np.asarray(compose.compose(blue, alpha, new, decontaminate=False), dtype=np.int16)[edge]
    assert np.abs(np.asarray(compose.compose(blue, alpha, new), dtype=np.int16)[edge] - pasted_blue).max() > 20
