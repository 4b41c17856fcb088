"""The Bedrock quotas → the Map's MaxConcurrency and the images-per-minute pace: ONE rule, used by
the deploy's doctor (backend/doctor.py), the throughput bench (bench/throughput.py), the ETA
(chalicelib/core/eta.py) and the local stack (backend/local/stack.py).

AWS documents Bedrock's InvokeModel quotas ("On-demand InvokeModel requests per minute for
<model>", "Cross-Region InvokeModel requests per minute for <model>") as **per model, per
Region**: each model id has its own bucket, and one model called twice per image spends two of
its requests per image (docs/aws-notes.md#n112-one-quota-model-per-model-requests-per-minute).
So the images per second one model allows is its quota / 60 / the calls of it each image makes,
and the Map runs at the tightest model. Little's law turns that pace into images in flight:
images/s × seconds one image takes, with headroom (throttles are retried, idle slots are lost).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

# Seconds one image spends outside Bedrock (prepare, build-mask, finalize on Lambda) and the
# assumed seconds per model call until `--smoke models` measures it (UNCONFIRMED estimate).
LAMBDA_SECONDS_PER_IMAGE: Final = 3.0
ASSUMED_MODEL_CALL_SECONDS: Final = 6.0
# the Map's MaxConcurrency when no quota could be read (the deployer passes --max-concurrency)
DEFAULT_MAP_CONCURRENCY: Final = 8
HEADROOM: Final = 1.25  # a little above the quota's pace: throttles are retried, idle slots are lost
# a Distributed Map's MaxConcurrency is at most 10,000 (docs/aws-notes.md#n75-bedrock-quotas-and-the-maps-concurrency)
MAX_MAP_CONCURRENCY: Final = 10_000


@dataclass(frozen=True)
class Pace:
    concurrency: int  # the Map's MaxConcurrency
    images_per_minute: float  # the pace the quotas allow (what the ETA plans from)


def quota_pace(
    requests_per_minute: Mapping[str, float],
    calls: Iterable[tuple[str, float]],
    lambda_s: float = LAMBDA_SECONDS_PER_IMAGE,
) -> Pace:
    """`requests_per_minute`: each model id's quota (per model, as AWS applies it); `calls`: each
    model call one image makes, in order, as (model id, seconds). A model with no quota given
    does not bound the pace; with no quota at all the Map runs at the default concurrency."""
    calls = list(calls)
    per_model = Counter(model for model, _ in calls)
    seconds_per_image = sum(seconds for _, seconds in calls) + lambda_s
    rates = [requests_per_minute[m] / 60 / n for m, n in per_model.items() if m in requests_per_minute]
    if not rates:
        return pace_of_concurrency(DEFAULT_MAP_CONCURRENCY, seconds_per_image)
    images_per_second = min(rates)
    concurrency = max(1, min(MAX_MAP_CONCURRENCY, math.ceil(images_per_second * seconds_per_image * HEADROOM)))
    return Pace(concurrency, images_per_second * 60)


def pace_of_concurrency(concurrency: int, seconds_per_image: float) -> Pace:
    """The pace a Map of `concurrency` was set for, read back: quota_pace put HEADROOM more images
    in flight than the quota's pace needs, so the pace is concurrency / HEADROOM per image's time
    (what the Lambdas, which know only BACKDROP_MAP_CONCURRENCY, plan an ETA from)."""
    return Pace(concurrency, concurrency * 60.0 / (seconds_per_image * HEADROOM))
