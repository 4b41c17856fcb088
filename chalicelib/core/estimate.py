"""What a job will cost: its model calls, Finalize's Rekognition checks, and, as a maximum, the
re-rolls if every image were made again (POST /jobs answers it; the web app says it in words).

Pure arithmetic on the model's prices (GET /models: `pricePerImageUsd`, `reRollPriceUsd`,
`composePricePerImageUsd`) so the API and the front end compute the same figures.

Background recipes (chalicelib/core/backgrounds.py): a prompt image pays every call of its model; a
colour / photo / transparent / scene image pays one call (remove-background) and is never
re-rolled (its cut-out is deterministic); a scene job pays one text-to-image call for the batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core import contracts


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
    compose_images: int = 0  # colour / photo / transparent / scene backgrounds: one call, no re-roll
    model_calls: Mapping[str, int] = field(default_factory=dict)  # by kind, before retries and re-rolls
    scene_usd: float = 0.0  # the batch's one scene call (in model_usd too)

    @property
    def prompt_images(self) -> int:
        return self.images - self.compose_images

    @property
    def usd(self) -> float:
        return self.model_usd + self.checks_usd

    @property
    def max_usd(self) -> float:
        return self.usd + self.re_roll_max_usd

    def budget_to_send_every_photo(self, per_call_usd: float) -> float:
        """The smallest budget (whole cents) that sends every photo once: the scene call, then
        each photo's calls at `per_call_usd` (budget_call_usd: what a budget cap counts a call at)."""
        calls = int(self.model_calls.get("perImagePrompt", 0)) + int(self.model_calls.get("perImageCompose", 0))
        return math.ceil(round((calls * per_call_usd + self.scene_usd) * 100, 6)) / 100

    def sentence(self) -> str:
        """ "About $0.97 for 12 photos (up to $1.46 if every image is re-rolled)"."""
        photos = f"{self.images} photo" + ("" if self.images == 1 else "s")
        each = f" ({self.variants} variants each)" if self.variants > 1 else ""
        line = f"About ${self.usd:.2f} for {photos}{each}"
        if self.re_rolls and self.prompt_images:  # a composed background is never re-rolled
            times = "" if self.re_rolls == 1 else f" {self.re_rolls} times"
            line += f" (up to ${self.max_usd:.2f} if every image is re-rolled{times})"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "usd": round(self.usd, 4),
            "modelUsd": round(self.model_usd, 4),
            "checksUsd": round(self.checks_usd, 4),
            "images": self.images,
            "promptImages": self.prompt_images,
            "composeImages": self.compose_images,
            "modelCalls": dict(self.model_calls),
            "reRolls": self.re_rolls,
            "maxUsd": round(self.max_usd, 4),
            "sentence": self.sentence(),
        }


def model_calls(
    prompt_images: int, compose_images: int, steps_per_prompt_image: int, *, scene: bool = False
) -> dict[str, int]:
    """How many model calls of each kind a job makes (before retries and re-rolls)."""
    calls = {"perImagePrompt": prompt_images * steps_per_prompt_image, "perImageCompose": compose_images}
    calls["scene"] = 1 if scene else 0
    calls["total"] = calls["perImagePrompt"] + calls["perImageCompose"] + calls["scene"]
    return calls


def job_estimate(
    images: int,
    variants: int,
    price_per_image_usd: float,
    re_roll_price_usd: float,
    re_rolls: int,
    *,
    steps_per_prompt_image: int = 1,
    compose_images: int = 0,
    compose_price_usd: float = 0.0,
    scene_price_usd: float | None = None,
    variant_calls: int = 1,
) -> Estimate:
    """`images` photos, `compose_images` of them with a composed background (one call each, one
    result, no re-roll); `scene_price_usd` given: the batch's one scene call. `variant_calls`: how
    many times the last call is made for the `variants` (ModelSpec.variant_calls: `variants` on a
    model that returns one image per call, each further one at the re-roll price; 1 on a model
    that returns them all from one call, billed per image)."""
    check = contracts.REKOGNITION_USD_PER_IMAGE
    prompt = images - compose_images
    scene = scene_price_usd is not None
    # the image's calls once, then each further variant: the last call again (a one-call family,
    # or several images in one call billed each: the whole price again)
    per_image = price_per_image_usd + (variants - 1) * re_roll_price_usd
    model = prompt * per_image + compose_images * compose_price_usd + (scene_price_usd or 0.0)
    checks = (
        prompt * checks_per_attempt(variants, first=True) + compose_images * checks_per_attempt(1, first=True)
    ) * check
    # a re-roll makes one image again on a one-image-per-call model, all the call's images otherwise
    re_rolled = 1 if variant_calls > 1 else variants
    per_re_roll = re_rolled * re_roll_price_usd + checks_per_attempt(re_rolled, first=False) * check
    calls = model_calls(prompt, compose_images, steps_per_prompt_image + variant_calls - 1, scene=scene)
    return Estimate(
        images,
        variants,
        model,
        checks,
        re_rolls,
        prompt * re_rolls * per_re_roll,
        compose_images,
        calls,
        scene_price_usd or 0.0,
    )


def attempt_cost_usd(variants: int, model_price_usd: float, rekognition_calls: int) -> float:
    """What one attempt cost: its model call(s) and the Rekognition images it analysed."""
    return variants * model_price_usd + rekognition_calls * contracts.REKOGNITION_USD_PER_IMAGE


def attempts_cost_usd(attempts: Iterable[Mapping[str, Any]]) -> float:
    """What an image's attempts cost together (an attempt whose call failed has no cost)."""
    return round(sum(float(a.get("costUsd") or 0) for a in attempts), 6)


def budget_call_usd(
    variants: int,
    price_per_image_usd: float,
    steps_per_prompt_image: int,
    compose_price_usd: float,
    re_roll_price_usd: float,
) -> float:
    """What a budget cap counts one model call at: the most one call can cost with the Rekognition
    checks of the attempt it makes (a prompt image's share of its calls and checks, a composed
    background's one call, or a re-roll), so a job's actual cost, which counts the checks, stays
    within its budget (a little headroom is left on the cheaper calls)."""
    check = contracts.REKOGNITION_USD_PER_IMAGE
    steps = max(1, steps_per_prompt_image)
    prompt_share = (variants * price_per_image_usd + checks_per_attempt(variants, first=True) * check) / steps
    composed = compose_price_usd + checks_per_attempt(1, first=True) * check
    re_roll = variants * re_roll_price_usd + checks_per_attempt(variants, first=False) * check
    return max(prompt_share, composed, re_roll)
