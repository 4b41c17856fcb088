"""Edges never worse than a plain paste (issue 27, point 5): Backdrop's decontamination with and
without its low-contrast fallback, a plain paste, and pymatting's estimator, per category, on
composites whose true alpha and true foreground are known.

How the set is built (the same method as bench/quality.py, own textures): a subject outline (a
wobbling ellipse, antialiased at 4x supersampling) with hair-like strands of partial opacity, each
strand coloured where it grows; `original = alpha * subject + (1 - alpha) * old`, rounded to 8
bits like a camera's; the true result is `alpha * subject + (1 - alpha) * new`. Textures are the
photos in samples/ (public domain, samples/CREDITS.md) as they are, or their luminance re-centred
on a grey or a white with a small spread (grey on grey, white on white: the cases where the
subject and the old background are nearly the same colour). Each result is scored by PSNR in the
edge band (0 < alpha < 1) against the true result.

`python -m bench.edges` prints the table; `make bench` prints its rows. pymatting is a bench-only
dependency (the `bench` extra); without it its column is left out.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from chalicelib.imaging import compose

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

SIZE = (480, 360)
SUPERSAMPLE = 4
SEEDS = (1, 2)
NEVER_WORSE_DB = 0.1  # "not worse than a plain paste": within this of it on every composite

Texture = Callable[[tuple[int, int]], np.ndarray]
Row = Callable[[str, str, str, bool | None], None]


def _outline(size: tuple[int, int], rng: np.random.Generator) -> list[tuple[float, float]]:
    """A blob: an ellipse whose radius wobbles with a few low harmonics (bench/quality.py's shape,
    kept here so the two sets do not move together)."""
    width, height = size
    cx, cy, rx, ry = width / 2, height * 0.55, width * 0.28, height * 0.32
    phases = rng.uniform(0, 2 * math.pi, 5)
    points = []
    for i in range(720):
        t = 2 * math.pi * i / 720
        r = 1 + sum(0.06 / (k + 1) * math.sin((k + 2) * t + phases[k]) for k in range(5))
        points.append((cx + rx * r * math.cos(t), cy + ry * r * math.sin(t)))
    return points


def photo(name: str) -> Texture:
    def make(size: tuple[int, int]) -> np.ndarray:
        image = Image.open(SAMPLES / f"{name}.jpg").convert("RGB").resize(size, Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.float64) / 255

    return make


def flat(name: str, level: float, spread: float, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Texture:
    """The photo's luminance texture, re-centred on `level` with standard deviation `spread`."""

    def make(size: tuple[int, int]) -> np.ndarray:
        rgb = photo(name)(size)
        lum = rgb @ np.array([0.299, 0.587, 0.114])
        grey = level + spread * (lum - lum.mean()) / max(float(lum.std()), 1e-6)
        return np.clip(grey[..., None] * np.array(tint), 0, 1)

    return make


def plain_colour(rgb: tuple[int, int, int]) -> Texture:
    return lambda size: np.ones((size[1], size[0], 3)) * np.array(rgb) / 255


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    subject: Texture
    old: Texture
    new: Texture
    strands: int
    # a band of another colour along the outline (a bevel, a seam, a printed edge), 0..1 RGB
    rim: tuple[float, float, float] | None = None
    # the alpha the compositor is given: the true one, or (n > 1) the true one at 1/n of the size
    # scaled back up bilinearly, as a cut-out made on the model's smaller canvas is (workflow.py)
    alpha_from: int = 1


CASES = (
    Case("rigid product", "cup on portrait -> photo", photo("coffee"), photo("astronaut"), photo("rocket"), 0),
    Case(
        "rigid product", "rocket on cat -> white", photo("rocket"), photo("chelsea"), plain_colour((255, 255, 255)), 0
    ),
    Case(
        "fur and hair", "cat fur, night sky -> white", photo("chelsea"), photo("rocket"), plain_colour((255,) * 3), 500
    ),
    Case("fur and hair", "hair, cafe -> dark grey", photo("astronaut"), photo("coffee"), plain_colour((24,) * 3), 400),
    Case(
        "grey on grey",
        "grey product, grey wall -> white",
        flat("coffee", 0.50, 0.08),
        flat("rocket", 0.53, 0.06),
        plain_colour((255,) * 3),
        200,
    ),
    Case(
        "grey on grey",
        "grey fur, grey wall -> photo",
        flat("chelsea", 0.45, 0.10),
        flat("astronaut", 0.47, 0.05),
        photo("rocket"),
        500,
    ),
    Case(
        "white on white",
        "white product, white sweep -> dark",
        flat("coffee", 0.92, 0.03),
        flat("rocket", 0.95, 0.02),
        plain_colour((40, 40, 48)),
        150,
    ),
    Case(
        "grey on grey",
        "grey product with a light seam, grey wall -> photo",
        flat("coffee", 0.50, 0.05),
        flat("rocket", 0.50, 0.02),
        photo("rocket"),
        100,
        rim=(0.62, 0.62, 0.60),
    ),
    Case(
        "white on white",
        "white product with a grey rim, white sweep -> dark",
        flat("coffee", 0.93, 0.02),
        flat("rocket", 0.94, 0.01),
        plain_colour((40, 40, 48)),
        0,
        rim=(0.80, 0.80, 0.80),
    ),
    Case(
        "cut-out at canvas size",
        "grey fur, grey wall -> photo, alpha from 1/3 size",
        flat("chelsea", 0.45, 0.10),
        flat("astronaut", 0.47, 0.05),
        photo("rocket"),
        500,
        alpha_from=3,
    ),
    Case(
        "cut-out at canvas size",
        "cup on portrait -> photo, alpha from 1/3 size",
        photo("coffee"),
        photo("astronaut"),
        photo("rocket"),
        0,
        alpha_from=3,
    ),
    Case(
        "busy background",
        "cat on cat -> photo",
        photo("chelsea"),
        flat("chelsea", 0.45, 0.15, (1.1, 0.9, 0.7)),
        photo("coffee"),
        300,
    ),
)


@dataclass(frozen=True)
class Composite:
    original: Image.Image
    alpha: Image.Image
    new: Image.Image
    truth: np.ndarray  # float 0..255
    edge: np.ndarray  # bool, 0 < alpha < 255


def make(case: Case, seed: int) -> Composite:
    rng = np.random.default_rng(seed)
    ss = SUPERSAMPLE
    big = (SIZE[0] * ss, SIZE[1] * ss)
    subject_big = case.subject(big)
    points = _outline(big, rng)
    if case.rim is not None:
        band = Image.new("L", big, 0)
        ImageDraw.Draw(band).line([*points, points[0]], fill=255, width=5 * ss)
        on_rim = (np.asarray(band) > 0)[..., None]
        subject_big = np.where(
            on_rim, np.array(case.rim) + 0.5 * (subject_big - subject_big.mean(axis=(0, 1))), subject_big
        )
        subject_big = np.clip(subject_big, 0, 1)
    core = Image.new("L", big, 0)
    ImageDraw.Draw(core).polygon(points, fill=255)
    core = core.filter(ImageFilter.GaussianBlur(ss * 1.0))
    hair_alpha, hair_colour = Image.new("L", big, 0), Image.new("RGB", big, 0)
    draw_alpha, draw_colour = ImageDraw.Draw(hair_alpha), ImageDraw.Draw(hair_colour)
    cx, cy = big[0] / 2, big[1] * 0.55
    for _ in range(case.strands):
        x, y = points[int(rng.integers(0, len(points)))]
        heading = math.atan2(y - cy, x - cx) + rng.normal(0, 0.5)
        root = (
            int(min(big[1] - 1, max(0, y - math.sin(heading) * 4 * ss))),
            int(min(big[0] - 1, max(0, x - math.cos(heading) * 4 * ss))),
        )
        colour = tuple(int(v) for v in np.clip(subject_big[root] * rng.uniform(0.9, 1.1) * 255, 0, 255))
        length, curl = rng.uniform(4, 28) * ss, rng.normal(0, 0.02)
        line = [(x - math.cos(heading) * 3 * ss, y - math.sin(heading) * 3 * ss)]
        for _ in range(8):
            heading += curl * 8
            line.append((line[-1][0] + math.cos(heading) * length / 8, line[-1][1] + math.sin(heading) * length / 8))
        width = int(rng.integers(1, ss + 1))
        draw_alpha.line(line, fill=int(rng.uniform(90, 255)), width=width)
        draw_colour.line(line, fill=colour, width=width)
    core_a = np.asarray(core, dtype=np.float64) / 255
    hair_a = np.asarray(hair_alpha, dtype=np.float64) / 255
    colour_big = np.where((core_a >= hair_a)[..., None], subject_big, np.asarray(hair_colour, dtype=np.float64) / 255)
    a_big = np.maximum(core_a, hair_a)
    w, h = SIZE
    a_blocks = a_big.reshape(h, ss, w, ss).mean(axis=(1, 3))
    weighted = (colour_big * a_big[..., None]).reshape(h, ss, w, ss, 3).sum(axis=(1, 3))
    coverage = a_big.reshape(h, ss, w, ss).sum(axis=(1, 3))[..., None]
    blocks = subject_big.reshape(h, ss, w, ss, 3).mean(axis=(1, 3))
    subject = np.where(coverage > 0, weighted / np.maximum(coverage, 1e-9), blocks)
    alpha = np.round(a_blocks * 255).astype(np.uint8)
    a = alpha[..., None] / 255.0
    old, new = case.old(SIZE), case.new(SIZE)
    original = np.clip(np.round((a * subject + (1 - a) * old) * 255), 0, 255).astype(np.uint8)
    new_image = np.round(new * 255).astype(np.uint8)
    truth = (a * subject + (1 - a) * new_image / 255.0) * 255
    edge = (alpha > 0) & (alpha < 255)
    given = Image.fromarray(alpha, "L")
    if case.alpha_from > 1:
        small = given.resize((w // case.alpha_from, h // case.alpha_from), Image.Resampling.BOX)
        given = small.resize(SIZE, Image.Resampling.BILINEAR)
        edge |= (np.asarray(given) > 0) & (np.asarray(given) < 255)  # judged where either is soft
    return Composite(Image.fromarray(original), given, Image.fromarray(new_image), truth, edge)


def edge_psnr(result: Image.Image | np.ndarray, composite: Composite) -> float:
    error = (np.asarray(result, dtype=np.float64) - composite.truth)[composite.edge]
    return 10 * math.log10(255.0**2 / float(np.mean(error**2)))


def pymatting_result(composite: Composite) -> np.ndarray | None:
    try:
        from pymatting import estimate_foreground_ml
    except ImportError:
        return None
    image = np.asarray(composite.original, dtype=np.float64) / 255
    alpha = np.asarray(composite.alpha, dtype=np.float64) / 255
    foreground = estimate_foreground_ml(image, alpha)
    a = alpha[..., None]
    return np.clip(np.round((a * foreground + (1 - a) * np.asarray(composite.new) / 255) * 255), 0, 255)


METHODS = ("plain paste", "decontaminated (no fallback)", "Backdrop", "pymatting ML")


def measure() -> list[dict[str, Any]]:
    """One record per composite: its category, name, seed and each method's edge PSNR."""
    records = []
    for case in CASES:
        for seed in SEEDS:
            composite = make(case, seed)
            figures: dict[str, float] = {
                "plain paste": edge_psnr(
                    compose.compose(composite.original, composite.alpha, composite.new, decontaminate=False), composite
                )
            }
            with mock.patch.object(compose, "FALLBACK_CONTRAST_HIGH", 0.0):
                figures["decontaminated (no fallback)"] = edge_psnr(
                    compose.compose(composite.original, composite.alpha, composite.new), composite
                )
            figures["Backdrop"] = edge_psnr(
                compose.compose(composite.original, composite.alpha, composite.new), composite
            )
            reference = pymatting_result(composite)
            if reference is not None:
                figures["pymatting ML"] = edge_psnr(reference, composite)
            records.append({"category": case.category, "name": case.name, "seed": seed, **figures})
    return records


def table(records: list[dict[str, Any]]) -> str:
    """Markdown: mean edge PSNR per category and method, and the worst composite against a paste."""
    methods = [m for m in METHODS if all(m in r for r in records)]
    lines = [
        "| category | composites | " + " | ".join(methods) + " | Backdrop - paste, worst |",
        "|---" * (len(methods) + 3) + "|",
    ]
    for category in dict.fromkeys(r["category"] for r in records):
        rows = [r for r in records if r["category"] == category]
        means = [f"{np.mean([r[m] for r in rows]):.1f} dB" for m in methods]
        worst = min(r["Backdrop"] - r["plain paste"] for r in rows)
        lines.append(f"| {category} | {len(rows)} | " + " | ".join(means) + f" | {worst:+.2f} dB |")
    return "\n".join(lines)


def rows(row: Row) -> None:
    records = measure()
    print(table(records), flush=True)
    worst = min(records, key=lambda r: r["Backdrop"] - r["plain paste"])
    gap = worst["Backdrop"] - worst["plain paste"]
    row(
        "edges vs a plain paste (worst composite)",
        f"{gap:+.2f} dB ({worst['name']}, seed {worst['seed']}) over {len(records)} composites",
        f">= -{NEVER_WORSE_DB} dB on every composite",
        gap >= -NEVER_WORSE_DB,
    )
    before = min(r["decontaminated (no fallback)"] - r["plain paste"] for r in records)
    row("edges vs a plain paste without the fallback (worst)", f"{before:+.2f} dB", "(the fallback's reason)", None)
    if all("pymatting ML" in r for r in records):
        wins = sum(r["pymatting ML"] > r["Backdrop"] + 0.1 for r in records)
        row(
            "pymatting ML better than Backdrop by > 0.1 dB",
            f"{wins} of {len(records)} composites",
            "(comparison, published in docs/quality.md)",
            None,
        )


if __name__ == "__main__":
    found: list[tuple[str, str, str, str]] = []
    rows(lambda name, value, target, ok: found.append((name, value, target, str(ok))))
    for line in found:
        print("  ".join(line))
    sys.exit(0)
