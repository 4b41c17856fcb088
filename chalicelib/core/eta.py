"""When will a job be done: a finish time planned from the deployment's pace, then refined from
the job's own measured rate as it runs (GET /jobs/{jobId} `eta`, the web app, the CLI's status).

The pace: the Distributed Map keeps `MaxConcurrency` images in flight, and the deploy sets
MaxConcurrency from the account's Bedrock requests-per-minute quotas (chalicelib/core/pace.py,
`quota_pace`, Little's law: images/s the tightest per-model quota allows × seconds one image takes
× headroom; docs/aws-notes.md#n112-one-quota-model-per-model-requests-per-minute). Read back the
other way (`pace_of_concurrency`), images per second = images in flight / headroom / seconds one
image takes, so the plan here is the quota's pace.
The deploy tells the Lambdas its MaxConcurrency in BACKDROP_MAP_CONCURRENCY; without it, the
doctor's default.

A job's own rate (images finished / seconds since it started running) replaces the plan once
enough images finished for it to mean something (a cold start, throttling and re-rolls show there).
The facts and their sources: docs/aws-notes.md#n91-a-jobs-eta-from-the-maps-concurrency.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from chalicelib.core import pace

# The one quota model's figures (chalicelib/core/pace.py, which the doctor and the bench use too):
# seconds one image spends in Lambda steps, the assumed seconds of one model call, the Map's
# MaxConcurrency when the quota could not be read.
LAMBDA_SECONDS_PER_IMAGE: Final = pace.LAMBDA_SECONDS_PER_IMAGE
ASSUMED_MODEL_CALL_SECONDS: Final = pace.ASSUMED_MODEL_CALL_SECONDS
DEFAULT_MAP_CONCURRENCY: Final = pace.DEFAULT_MAP_CONCURRENCY
CONCURRENCY_ENV: Final = "BACKDROP_MAP_CONCURRENCY"
# the job's own rate is trusted from this many finished images and this many seconds of running
MEASURED_MIN_IMAGES: Final = 3
MEASURED_MIN_SECONDS: Final = 20.0


def map_concurrency(environ: dict[str, str] | None = None) -> int:
    """The images the deployed Map keeps in flight (the deploy's MaxConcurrency)."""
    raw = (environ if environ is not None else os.environ).get(CONCURRENCY_ENV, "").strip()
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAP_CONCURRENCY
    return value if value >= 1 else DEFAULT_MAP_CONCURRENCY


def seconds_per_image(calls_per_photo: float) -> float:
    """One image's time: its model calls one after another, plus its Lambda steps."""
    return max(1.0, calls_per_photo) * ASSUMED_MODEL_CALL_SECONDS + LAMBDA_SECONDS_PER_IMAGE


def planned_images_per_minute(calls_per_photo: float, concurrency: int) -> float:
    """Images finished per minute at the deployment's pace: the quota's pace its `concurrency` was
    set for (chalicelib/core/pace.py; the Map keeps HEADROOM more in flight than that pace needs)."""
    return pace.pace_of_concurrency(concurrency, seconds_per_image(calls_per_photo)).images_per_minute


@dataclass(frozen=True)
class Eta:
    seconds: int  # from now until the last image is finished
    images_per_minute: float
    basis: str  # "planned" (the deployment's pace) or "measured" (this job's own rate)
    remaining: int

    def finish_at(self, now: datetime) -> str:
        return (now + timedelta(seconds=self.seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "finishAt": self.finish_at(now),
            "imagesPerMinute": round(self.images_per_minute, 2),
            "basis": self.basis,
            "remaining": self.remaining,
            "words": self.words(),
        }

    def words(self) -> str:
        """ "About 4 min left (measured: 38 photos a minute)"."""
        how = "measured" if self.basis == "measured" else "planned from this deployment's model quota"
        left = "Less than a minute left" if self.seconds < 60 else f"About {duration_words(self.seconds)} left"
        return f"{left} ({how}: {self.images_per_minute:.0f} photos a minute)"


def duration_words(seconds: float) -> str:
    """ "under a minute", "4 min", "1 h 20 min"."""
    if seconds < 60:
        return "under a minute"
    minutes = max(1, round(seconds / 60))  # "about": the nearest minute
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


def job_eta(
    remaining: int,
    calls_per_photo: float,
    concurrency: int,
    *,
    finished: int = 0,
    running_seconds: float | None = None,
) -> Eta:
    """The time left for `remaining` images: at the job's measured rate once `finished` images took
    `running_seconds` (enough of both), at the planned pace before."""
    planned = planned_images_per_minute(calls_per_photo, concurrency)
    rate, basis = planned, "planned"
    if running_seconds is not None and finished >= MEASURED_MIN_IMAGES and running_seconds >= MEASURED_MIN_SECONDS:
        rate, basis = finished * 60.0 / running_seconds, "measured"
    seconds = max(0, remaining) / rate * 60.0
    if basis == "planned" and remaining > 0:
        # a batch smaller than the Map's concurrency takes one image's time, not a fraction of it
        seconds = max(seconds, seconds_per_image(calls_per_photo))
    return Eta(int(math.ceil(seconds)), rate, basis, max(0, remaining))


def _parse(when: Any) -> datetime | None:
    if not isinstance(when, str) or not when:
        return None
    try:
        parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def calls_per_photo(estimate: dict[str, Any] | None, image_count: int) -> float:
    """Model calls one photo makes, from the estimate POST /jobs kept on the job (the batch's one
    scene call is made before the Map and does not pace the photos)."""
    calls = (estimate or {}).get("modelCalls") or {}
    per_image = int(calls.get("perImagePrompt", 0)) + int(calls.get("perImageCompose", 0))
    return per_image / image_count if image_count and per_image else 2.0


def eta_of_job(job: dict[str, Any], counts: dict[str, int], now: datetime, concurrency: int) -> Eta:
    """A stored job's ETA (its counts as the job view says them)."""
    from chalicelib.core import contracts

    finished = sum(int(counts.get(s.value, 0)) for s in contracts.TERMINAL_IMAGE_STATUSES)
    total = int(job.get("imageCount") or sum(counts.values()))
    started = _parse(job.get("startedAt"))
    running = (now - started).total_seconds() if started else None
    per_photo = calls_per_photo(job.get(contracts.JOB_ESTIMATE_ATTRIBUTE), total)
    return job_eta(total - finished, per_photo, concurrency, finished=finished, running_seconds=running)
