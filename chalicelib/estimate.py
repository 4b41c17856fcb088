"""What a job will cost: its model calls, Finalize's Rekognition checks, and, as a maximum, the
re-rolls if every image were made again (POST /jobs answers it; the web app says it in words).

Pure arithmetic on the model's prices (GET /models: `pricePerImageUsd`, `reRollPriceUsd`) so the
API and the front end compute the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib import contracts


def checks_per_attempt(variants: int, *, first: bool) -> int:
    """Rekognition images analysed for one attempt at most: DetectLabels and DetectText on each
    result, and DetectText on the original once per image (kept across re-rolls). Fewer when
    no label was kept or the product is pixel-identical (PRECISE: its text cannot have changed)."""
    return 2 * variants + (1 if first else 0)


@dataclass(frozen=True)
class Estimate:
    images: int
    variants: int
    model_usd: float  # every image made once
    checks_usd: float  # Finalize's Rekognition checks, at most
    re_rolls: int
    re_roll_max_usd: float  # if every image were re-rolled `re_rolls` times (model call and checks)

    @property
    def usd(self) -> float:
        return self.model_usd + self.checks_usd

    @property
    def max_usd(self) -> float:
        return self.usd + self.re_roll_max_usd

    def sentence(self) -> str:
        """ "About $0.97 for 12 photos (up to $1.46 if every image is re-rolled)"."""
        photos = f"{self.images} photo" + ("" if self.images == 1 else "s")
        each = f" ({self.variants} variants each)" if self.variants > 1 else ""
        line = f"About ${self.usd:.2f} for {photos}{each}"
        if self.re_rolls:
            times = "" if self.re_rolls == 1 else f" {self.re_rolls} times"
            line += f" (up to ${self.max_usd:.2f} if every image is re-rolled{times})"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "usd": round(self.usd, 4),
            "modelUsd": round(self.model_usd, 4),
            "checksUsd": round(self.checks_usd, 4),
            "reRolls": self.re_rolls,
            "maxUsd": round(self.max_usd, 4),
            "sentence": self.sentence(),
        }


def job_estimate(
    images: int, variants: int, price_per_image_usd: float, re_roll_price_usd: float, re_rolls: int
) -> Estimate:
    check = contracts.REKOGNITION_USD_PER_IMAGE
    model = images * variants * price_per_image_usd
    checks = images * checks_per_attempt(variants, first=True) * check
    per_re_roll = variants * re_roll_price_usd + checks_per_attempt(variants, first=False) * check
    return Estimate(images, variants, model, checks, re_rolls, images * re_rolls * per_re_roll)


def attempt_cost_usd(variants: int, model_price_usd: float, rekognition_calls: int) -> float:
    """What one attempt cost: its model call(s) and the Rekognition images it analysed."""
    return variants * model_price_usd + rekognition_calls * contracts.REKOGNITION_USD_PER_IMAGE
