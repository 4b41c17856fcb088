"""Result quality on composites whose true alpha is known: clean edges, untouched subjects, and
what scoring costs next to the finalize step.

Each case cuts a subject out of one photo in samples/ with a soft alpha the bench draws itself
(an antialiased, slightly blurred outline plus hair-like strands of partial opacity, each strand
with its own colour taken where it grows), puts it over a second photo (the "old" background):
`original = alpha * subject + (1 - alpha) * old`, 8-bit like a camera's. The true composite over a
new background is `alpha * subject + (1 - alpha) * new`; Backdrop's result, given the original and
the true alpha, is measured against it in the edge band (0 < alpha < 1).

`python -m bench.quality` runs this part alone.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from chalicelib.imaging import compose, quality

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
EDGE_PSNR_TARGET_DB = 35.0
DECONTAMINATION_GAIN_DB = 3.0
SCORING_SHARE_TARGET = 0.10
TWELVE_MP = (4000, 3000)

Row = Callable[[str, str, str, bool | None], None]


@dataclass(frozen=True)
class Case:
    name: str
    subject: str  # sample photo the subject is cut from
    old: str  # sample photo behind it in the original
    new: str | tuple[int, int, int]  # sample photo or plain colour behind it in the result
    strands: int  # hair-like strands around the outline (0: a rigid product)
    size: tuple[int, int] = (480, 360)
    supersample: int = 4


CASES = (
    Case("cat fur, night sky -> white", "chelsea", "rocket", (255, 255, 255), 500),
    Case("cup (rigid), portrait -> photo", "coffee", "astronaut", "rocket", 0),
    Case("hair, cafe -> dark grey", "astronaut", "coffee", (24, 24, 24), 400),
    Case("rocket, cat -> photo", "rocket", "chelsea", "astronaut", 150),
    Case("cat fur at 2 MP -> white", "chelsea", "rocket", (255, 255, 255), 900, (1632, 1224), 2),
)


@dataclass(frozen=True)
class Composite:
    original: Image.Image
    alpha: Image.Image
    new: Image.Image
    truth: np.ndarray  # float 0..255
    edge: np.ndarray  # bool, 0 < alpha < 255


def _photo(name: str, size: tuple[int, int]) -> np.ndarray:
    image = Image.open(SAMPLES / f"{name}.jpg").convert("RGB")
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float64) / 255


def _outline(size: tuple[int, int], rng: np.random.Generator) -> list[tuple[float, float]]:
    """A blob: an ellipse whose radius wobbles with a few low harmonics."""
    width, height = size
    cx, cy, rx, ry = width / 2, height * 0.55, width * 0.28, height * 0.32
    phases = rng.uniform(0, 2 * math.pi, 5)
    points = []
    for i in range(720):
        t = 2 * math.pi * i / 720
        r = 1 + sum(0.06 / (k + 1) * math.sin((k + 2) * t + phases[k]) for k in range(5))
        points.append((cx + rx * r * math.cos(t), cy + ry * r * math.sin(t)))
    return points


def make_composite(case: Case, seed: int = 1) -> Composite:
    rng = np.random.default_rng(seed)
    ss = case.supersample
    big = (case.size[0] * ss, case.size[1] * ss)
    photo = _photo(case.subject, big)
    points = _outline(big, rng)
    core = Image.new("L", big, 0)
    ImageDraw.Draw(core).polygon(points, fill=255)
    core = core.filter(ImageFilter.GaussianBlur(ss * 1.0))  # a slightly soft, antialiased outline
    hair_alpha = Image.new("L", big, 0)
    hair_colour = Image.new("RGB", big, 0)
    draw_alpha, draw_colour = ImageDraw.Draw(hair_alpha), ImageDraw.Draw(hair_colour)
    cx, cy = big[0] / 2, big[1] * 0.55
    for _ in range(case.strands):
        x, y = points[int(rng.integers(0, len(points)))]
        heading = math.atan2(y - cy, x - cx) + rng.normal(0, 0.5)
        root_x = int(min(big[0] - 1, max(0, x - math.cos(heading) * 4 * ss)))
        root_y = int(min(big[1] - 1, max(0, y - math.sin(heading) * 4 * ss)))
        colour = tuple(int(v) for v in np.clip(photo[root_y, root_x] * rng.uniform(0.8, 1.2) * 255, 0, 255))
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
    # subject colour per supersample: the photo where the body dominates, the strand's colour elsewhere
    body = core_a >= hair_a
    colour = np.where(body[..., None], photo, np.asarray(hair_colour, dtype=np.float64) / 255)
    a_big = np.maximum(core_a, hair_a)
    # down to the final size: alpha is the mean coverage, the colour the coverage-weighted mean
    h, w = case.size[1], case.size[0]
    a_blocks = a_big.reshape(h, ss, w, ss).mean(axis=(1, 3))
    weighted = (colour * a_big[..., None]).reshape(h, ss, w, ss, 3).sum(axis=(1, 3))
    coverage = a_big.reshape(h, ss, w, ss).sum(axis=(1, 3))[..., None]
    blocks = photo.reshape(h, ss, w, ss, 3).mean(axis=(1, 3))
    subject = np.where(coverage > 0, weighted / np.maximum(coverage, 1e-9), blocks)
    alpha = np.round(a_blocks * 255).astype(np.uint8)
    a = alpha[..., None] / 255.0
    old = _photo(case.old, case.size)
    new = np.ones_like(old) * np.array(case.new) / 255 if isinstance(case.new, tuple) else _photo(case.new, case.size)
    original = np.clip(np.round((a * subject + (1 - a) * old) * 255), 0, 255).astype(np.uint8)
    new_image = np.round(new * 255).astype(np.uint8)
    truth = (a * subject + (1 - a) * new_image / 255.0) * 255
    return Composite(
        Image.fromarray(original),
        Image.fromarray(alpha, "L"),
        Image.fromarray(new_image),
        truth,
        (alpha > 0) & (alpha < 255),
    )


def edge_psnr(result: Image.Image, composite: Composite) -> float:
    error = (np.asarray(result, dtype=np.float64) - composite.truth)[composite.edge]
    return 10 * math.log10(255.0**2 / float(np.mean(error**2)))


def _pymatting_reference(composite: Composite) -> float | None:
    """Edge PSNR with pymatting's multi-level estimator, when it is installed (it is not a
    Backdrop dependency: see docs/quality.md)."""
    try:
        from pymatting import estimate_foreground_ml
    except ImportError:
        return None
    image = np.asarray(composite.original, dtype=np.float64) / 255
    alpha = np.asarray(composite.alpha, dtype=np.float64) / 255
    foreground = estimate_foreground_ml(image, alpha)
    a = alpha[..., None]
    result = np.round((a * foreground + (1 - a) * np.asarray(composite.new) / 255) * 255)
    return edge_psnr(Image.fromarray(np.clip(result, 0, 255).astype(np.uint8)), composite)


def edges(row: Row) -> None:
    identical, reference, ours = 0, [], []
    for case in CASES:
        composite = make_composite(case)
        plain = compose.compose(composite.original, composite.alpha, composite.new, decontaminate=False)
        clean = compose.compose(composite.original, composite.alpha, composite.new)
        before, after = edge_psnr(plain, composite), edge_psnr(clean, composite)
        ours.append(after)
        row(
            f"edge PSNR: {case.name}",
            f"{after:.1f} dB decontaminated vs {before:.1f} dB plain paste",
            f">= {EDGE_PSNR_TARGET_DB:.0f} dB",
            after >= EDGE_PSNR_TARGET_DB,
        )
        row(
            f"decontamination gain: {case.name}",
            f"+{after - before:.1f} dB",
            f">= {DECONTAMINATION_GAIN_DB:.0f} dB",
            after - before >= DECONTAMINATION_GAIN_DB,
        )
        halos = [
            quality.score_image(composite.original, r, composite.alpha, background=composite.new).get(
                quality.CheckName.EDGE_HALO
            )
            for r in (clean, plain)
        ]
        values = [h.metrics.get("haloDeltaE") if h else None for h in halos]
        row(
            f"halo: {case.name}",
            f"ΔE {values[0]} {halos[0].outcome} decontaminated, ΔE {values[1]} {halos[1].outcome} plain",
            "PASS clean, flagged plain",
            halos[0].outcome == quality.Outcome.PASS
            and halos[1].outcome in (quality.Outcome.WARN, quality.Outcome.FAIL),
        )
        fidelity = quality.score_image(composite.original, clean, composite.alpha).get(
            quality.CheckName.SUBJECT_FIDELITY
        )
        identical += bool(fidelity and fidelity.metrics.get("identical"))
        if case.size == CASES[0].size:
            ref = _pymatting_reference(composite)
            if ref is not None:
                reference.append((ref, after))
    row(
        "subject PSNR inside the mask (PRECISE)",
        f"∞ (identical) in {identical} of {len(CASES)}",
        "∞ in every case",
        identical == len(CASES),
    )
    if reference:
        row(
            "pymatting ML estimator (reference)",
            f"mean {np.mean([r for r, _ in reference]):.1f} dB vs Backdrop {np.mean([o for _, o in reference]):.1f} dB",
            "(comparison)",
            None,
        )


def _twelve_mp_photo() -> bytes:
    composite = make_composite(CASES[0])
    photo = composite.original.resize(TWELVE_MP, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def scoring_cost(row: Row) -> None:
    """Scoring's share of the finalize step on a 12 MP photo, in a child process (own memory)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "bench.quality", "--scoring-child"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    share = figures["score_ms"] / figures["finalize_ms"]
    where = "inside finalize" if figures["wired"] else "beside finalize (not wired in yet)"
    row(
        "scoring 12 MP",
        f"{figures['score_ms']:.0f} ms {where}, finalize {figures['finalize_ms']:.0f} ms = {share:.0%}",
        f"<= {SCORING_SHARE_TARGET:.0%} of finalize",
        share <= SCORING_SHARE_TARGET,
    )
    row("compose + decontaminate 12 MP", f"{figures['compose_ms']:.0f} ms", "(part of finalize)", None)


def _scoring_child() -> None:
    from bench import lambda_work

    data = _twelve_mp_photo()
    spent_scoring: list[float] = []
    original_score = quality.score_image

    def timed_score(*args: Any, **kwargs: Any) -> quality.Scorecard:
        # CPU time, as lambda_work.backdrop times the steps: the share compares like with like
        started = time.process_time()
        try:
            return original_score(*args, **kwargs)
        finally:
            spent_scoring.append(time.process_time() - started)

    best_finalize, best_score, wired = math.inf, math.inf, False
    with mock.patch.object(quality, "score_image", side_effect=timed_score):  # timed where finalize calls it
        for _ in range(3):
            spent_scoring.clear()
            by_step, _ = lambda_work.backdrop(data, "jpeg")  # a JPEG original gives a JPEG result
            best_finalize = min(best_finalize, by_step["finalize"])
            if spent_scoring:
                wired = True
                best_score = min(best_score, sum(spent_scoring))
    original = Image.open(io.BytesIO(data)).convert("RGB")
    composite = make_composite(CASES[0])
    alpha = composite.alpha.resize(TWELVE_MP, Image.Resampling.BILINEAR)
    new = composite.new.resize(TWELVE_MP)
    best_compose = math.inf
    for _ in range(3):
        started = time.perf_counter()
        result = compose.compose(original, alpha, new)
        best_compose = min(best_compose, time.perf_counter() - started)
        if not wired:
            started = time.perf_counter()
            quality.score_image(original, result, alpha, background=new)
            best_score = min(best_score, time.perf_counter() - started)
    print(
        json.dumps(
            {
                "finalize_ms": best_finalize * 1000,
                "score_ms": best_score * 1000,
                "compose_ms": best_compose * 1000,
                "wired": wired,
            }
        )
    )


def run(row: Row) -> None:
    edges(row)
    scoring_cost(row)


if __name__ == "__main__":
    if sys.argv[1:] == ["--scoring-child"]:
        _scoring_child()
    else:

        def _print(name: str, value: str, target: str, ok: bool | None) -> None:
            status = "PASS" if ok else ("MISS" if ok is not None else "-")
            print(f"{name:<48} {value:<60} {target:<24} {status}", flush=True)

        run(_print)
