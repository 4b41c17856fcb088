"""Synthetic photos whose true alpha and true subject colours are known, for compositing tests.

A scene is a subject (warm, textured colours) over an old background (cool, textured), mixed by a
soft alpha with hair-like strands: `original = alpha * subject + (1 - alpha) * old`, rounded to
8 bits as a camera would. `truth(new)` is what a perfect composite over a new background is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class Scene:
    subject: np.ndarray  # float 0..1 (h, w, 3): the subject's true colours everywhere
    old: np.ndarray  # float 0..1 (h, w, 3): the old background
    alpha_values: np.ndarray  # float 0..1 (h, w)

    @property
    def alpha(self) -> Image.Image:
        return Image.fromarray(np.round(self.alpha_values * 255).astype(np.uint8), "L")

    @property
    def original(self) -> Image.Image:
        a = np.asarray(self.alpha, dtype=np.float64)[..., None] / 255
        return _image(a * self.subject + (1 - a) * self.old)

    def truth(self, new: Image.Image) -> np.ndarray:
        """The perfect composite over `new` (float 0..255)."""
        a = np.asarray(self.alpha, dtype=np.float64)[..., None] / 255
        return (a * self.subject + (1 - a) * np.asarray(new, dtype=np.float64) / 255) * 255

    @property
    def edge(self) -> np.ndarray:
        a = np.asarray(self.alpha)
        return (a > 0) & (a < 255)


def _image(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.round(values * 255), 0, 255).astype(np.uint8), "RGB")


def make_scene(size: tuple[int, int] = (160, 120), *, strands: int = 60, seed: int = 7) -> Scene:
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width] / max(size)
    texture = rng.normal(0, 1, (height, width, 1))
    subject = np.clip(np.stack([0.85 - 0.2 * ys, 0.45 + 0.2 * xs, 0.15 + 0 * xs], -1) + 0.03 * texture, 0, 1)
    noise = rng.normal(0, 1, (height, width, 3))
    old = np.clip(np.stack([0.1 + 0.2 * xs, 0.25 + 0 * xs, 0.75 - 0.2 * ys], -1) + 0.05 * noise, 0, 1)
    scale = 4  # shapes drawn at 4x and reduced: antialiased like a real cut-out
    big = Image.new("L", (width * scale, height * scale), 0)
    draw = ImageDraw.Draw(big)
    box = (width * scale * 0.28, height * scale * 0.2, width * scale * 0.72, height * scale * 0.85)
    draw.ellipse(box, fill=255)
    big = big.filter(ImageFilter.GaussianBlur(scale * 1.2))
    hair = Image.new("L", big.size, 0)
    hair_draw = ImageDraw.Draw(hair)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    for angle in rng.uniform(0, 2 * np.pi, strands):
        x0, y0 = cx + rx * np.cos(angle), cy + ry * np.sin(angle)
        length = rng.uniform(4, 14) * scale
        turn = angle + rng.normal(0, 0.4)
        hair_draw.line(
            [(x0, y0), (x0 + length * np.cos(turn), y0 + length * np.sin(turn))],
            fill=int(rng.uniform(120, 255)),
            width=int(rng.integers(1, 4)),
        )
    merged = Image.fromarray(np.maximum(np.asarray(big), np.asarray(hair))).reduce(scale)
    return Scene(subject, old, np.asarray(merged, dtype=np.float64) / 255)


def plain(size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", size, colour)


def edge_psnr(result: Image.Image, truth: np.ndarray, where: np.ndarray) -> float:
    error = (np.asarray(result, dtype=np.float64) - truth)[where]
    return float(10 * np.log10(255.0**2 / np.mean(error**2)))
