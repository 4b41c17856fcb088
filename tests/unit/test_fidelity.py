"""Subject fidelity measured through the JPEG encoder on a sample of blocks (chalicelib/imaging/fidelity.py):
the sampled pixels are the delivered file's, bit for bit, and the figure is the whole file's.

The references here decode the whole delivered file with Pillow and compute PSNR with numpy."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bench.photos import photo_like
from chalicelib.imaging import fidelity, images, quality
from chalicelib.imaging.quality import CheckName, Thresholds


def _photo(width: int, height: int) -> Image.Image:
    return Image.open(io.BytesIO(photo_like(width, height, "JPEG"))).convert("RGB")


def _whole_file(image: Image.Image, icc: bytes | None = None) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(images.encode(image, "jpeg", icc_profile=icc))).convert("RGB"))


@pytest.mark.parametrize(("icc", "origin"), [(None, (0, 0)), (images.SRGB_ICC, (16, 24))])
def test_every_block_measured_is_the_delivered_files_bit_for_bit(icc: bytes | None, origin: tuple[int, int]) -> None:
    # an odd size: the frame's last partial blocks are left out, every whole block is measured
    original = _photo(203, 157)
    result = original.filter(ImageFilter.GaussianBlur(1))  # pixels the encoder has not seen before
    x0, y0 = origin
    width, height = (result.width - x0) // 8 * 8, (result.height - y0) // 8 * 8
    inner = Image.new("L", (width, height), 255)
    shown, own, complete = fidelity.jpeg_block_sample(result, original, inner, origin, fidelity.JpegDelivery(icc))
    assert complete

    def in_block_order(pixels: np.ndarray) -> np.ndarray:  # block rows, then blocks, then each block's rows
        box = pixels[y0 : y0 + height, x0 : x0 + width]
        return box.reshape(height // 8, 8, width // 8, 8, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 3)

    assert np.array_equal(shown, in_block_order(_whole_file(result, icc)))
    assert np.array_equal(own, in_block_order(np.asarray(original)))


def _product(size: tuple[int, int]) -> Image.Image:
    alpha = Image.new("L", size, 0)
    w, h = size
    ImageDraw.Draw(alpha).ellipse((w * 0.2, h * 0.15, w * 0.8, h * 0.9), fill=255)
    return alpha.filter(ImageFilter.GaussianBlur(2))


def _psnr_of_file(original: Image.Image, result: Image.Image, alpha: Image.Image) -> float:
    """PSNR over the product's solid interior in the whole delivered file (the interior as the
    check takes it: alpha 255, eroded)."""
    inner = np.asarray(alpha) == 255
    inner = np.asarray(Image.fromarray(inner.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(9))) > 0
    delivered = _whole_file(result).astype(np.float64)[inner]
    mine = np.asarray(original, dtype=np.float64)[inner]
    return 10 * math.log10(255.0**2 / float(np.mean((delivered - mine) ** 2)))


def test_a_sampled_figure_is_the_whole_files_within_a_tenth_of_a_db() -> None:
    original = _photo(2400, 1600)  # 3.8 MP: the product's blocks are far more than the sample
    alpha = _product(original.size)
    check = quality.score_image(original, original, alpha, delivery=fidelity.JpegDelivery()).get(
        CheckName.SUBJECT_FIDELITY
    )
    assert check is not None and check.metrics["identical"] is False
    assert check.metrics["pixels"] <= fidelity.DELIVERED_SAMPLES
    assert float(check.metrics["psnrDb"]) == pytest.approx(_psnr_of_file(original, original, alpha), abs=0.1)
    # the same figure as measuring the decoded file itself (every interior pixel, exact)
    decoded = Image.fromarray(_whole_file(original))
    exact = quality.score_image(original, decoded, alpha).get(CheckName.SUBJECT_FIDELITY)
    assert exact is not None
    assert float(check.metrics["psnrDb"]) == pytest.approx(float(exact.metrics["psnrDb"]), abs=0.1)
    assert float(check.metrics["deltaE"]) == pytest.approx(float(exact.metrics["deltaE"]), abs=0.05)


def test_identical_is_said_only_of_every_pixel() -> None:
    """A flat product survives a JPEG exactly: a sample that finds no difference is not enough to
    say every pixel is the original's, so the whole file is measured then."""
    original = Image.new("RGB", (1600, 1200), (255, 255, 255))
    alpha = _product(original.size)
    card = quality.score_image(original, original, alpha, delivery=fidelity.JpegDelivery(), thresholds=Thresholds())
    check = card.get(CheckName.SUBJECT_FIDELITY)
    assert check is not None and check.metrics["identical"] is True
    assert check.metrics["pixels"] > fidelity.DELIVERED_SAMPLES  # every interior pixel


def test_erosion_is_pillows_min_filter() -> None:
    rng = np.random.default_rng(3)
    for shape in [(57, 91), (1, 40), (300, 2)]:
        for px in (1, 2, 5, 12):
            mask = rng.random(shape) > 0.04
            reference = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(2 * px + 1))
            assert np.array_equal(quality._erode_bool(mask, px), np.asarray(reference) > 127), (shape, px)
