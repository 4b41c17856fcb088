"""Photo-like benchmark inputs: a real photo from samples/, upscaled, with sensor grain and texture.

A gradient compresses to a few hundred KB and decodes and resizes faster than any photo; this
image has a camera JPEG's entropy (a 12 MP JPEG at quality 90 is about 4.5 MB), so encoders,
decoders and resamplers do a photo's work. Deterministic: the same bytes every run.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageChops

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "coffee.jpg"
FINE_GRAIN = 28  # per-pixel noise amplitude, 0-255 scale
COARSE_TEXTURE = 64  # noise at a third of the resolution, upscaled: surface texture


def _noise(rng: random.Random, size: tuple[int, int], amplitude: int) -> Image.Image:
    width, height = size
    bands = [
        Image.frombytes("L", size, rng.randbytes(width * height)).point(lambda v: v * amplitude // 255)
        for _ in range(3)
    ]
    return Image.merge("RGB", bands)


def photo_like(width: int, height: int, fmt: str = "JPEG", seed: int = 7) -> bytes:
    rng = random.Random(seed)
    img = Image.open(SAMPLE).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    texture = _noise(rng, (max(1, width // 3), max(1, height // 3)), COARSE_TEXTURE)
    img = ImageChops.add(img, texture.resize((width, height), Image.Resampling.BICUBIC), 1.0, -COARSE_TEXTURE // 2)
    img = ImageChops.add(img, _noise(rng, (width, height), FINE_GRAIN), 1.0, -FINE_GRAIN // 2)
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=90)
    else:
        img.save(buf, fmt, compress_level=6)
    return buf.getvalue()
