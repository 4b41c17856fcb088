"""The job gallery's paging, ordering and link cache: plain functions the job page draws from.

A job may hold 10,000 images, so the gallery never asks for all of them: it asks the paged job
view (GET /jobs/{jobId}?limit=&cursor=&status=&verdict=) for one page at a time. "Doubtful
first" is a chain of filtered queries walked in order (failed images, then results whose
scorecard FAILed, WARNed, ..., then those not finished), so the order costs no more than a page.

Presigned links change on every answer (their signature carries the time they were made): the
`LinkCache` keeps the first link of each image for as long as it stays valid, so the browser
sees the same address on every refresh and does not download the image again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, Verdict

# A cached link is replaced this long before it expires, so a page never shows a dead one.
LINK_MARGIN_SECONDS = 10 * 60


@dataclass(frozen=True)
class Segment:
    """One filtered query of the job's images: a status, a verdict, or both."""

    status: str | None = None
    verdict: str | None = None

    def params(self) -> dict[str, str]:
        return {k: v for k, v in (("status", self.status), ("verdict", self.verdict)) if v}


def segments(status: str | None, verdict: str | None, doubtful_first: bool) -> list[Segment]:
    """The queries a gallery with these filters walks, in order."""
    if not doubtful_first:
        return [Segment(status, verdict)]
    chain = [Segment(ImageStatus.FAILED.value)]
    chain += [Segment(ImageStatus.SUCCEEDED.value, v.value) for v in contracts.DOUBTFUL_FIRST]
    chain += [Segment(ImageStatus.RUNNING.value), Segment(ImageStatus.PENDING.value)]
    chain += [Segment(ImageStatus.CANCELLED.value)]  # never sent: nothing to doubt
    return [
        s
        for s in chain
        if (status is None or s.status == status)
        and (verdict is None or s.verdict == verdict or (verdict == Verdict.NONE and s.verdict is None))
    ]


@dataclass(frozen=True)
class PageStart:
    """Where a gallery page begins: a segment of the chain and a cursor inside it."""

    segment: int = 0
    cursor: str | None = None


@dataclass
class GalleryPage:
    view: dict[str, Any]  # the job's summary and counts (from the first answer)
    images: list[dict[str, Any]]
    next_start: PageStart | None


def segment_size(segment: Segment, view: dict[str, Any]) -> int | None:
    """How many images a segment holds, from the job's live counts (None: not known)."""
    counts = view.get("counts") or {}
    verdicts = view.get("verdicts")
    if segment.verdict is None:
        return int(counts.get(segment.status, 0)) if segment.status else None
    if verdicts is None or segment.status not in (None, ImageStatus.SUCCEEDED.value):
        return None
    if segment.verdict == Verdict.NONE:
        return max(0, int(counts.get(ImageStatus.SUCCEEDED.value, 0)) - sum(int(n) for n in verdicts.values()))
    return int(verdicts.get(segment.verdict, 0))


def fetch_page(
    job: Callable[..., dict[str, Any]], job_id: str, chain: list[Segment], start: PageStart, size: int
) -> GalleryPage:
    """Up to `size` images from `start`, going on to the next segments when one runs out.

    `job` is the API client's `job(job_id, limit=, cursor=, status=, verdict=)`. The summary
    comes first (its live counts say which segments are empty, so they are never asked for).
    """
    view = job(job_id, limit=0)
    images: list[dict[str, Any]] = []
    index, cursor = start.segment, start.cursor
    while index < len(chain) and len(images) < size:
        if cursor is None and segment_size(chain[index], view) == 0:
            index += 1
            continue
        answer = job(job_id, limit=size - len(images), cursor=cursor, **chain[index].params())
        images += answer["images"]
        cursor = answer.get("nextCursor")
        if not cursor:
            index, cursor = index + 1, None
    while cursor is None and index < len(chain) and segment_size(chain[index], view) == 0:
        index += 1  # no "next page" that would be empty
    next_start = PageStart(index, cursor) if index < len(chain) else None
    return GalleryPage(view, images, next_start)


class LinkCache:
    """Presigned links kept per image key for their lifetime (all links live
    contracts.DOWNLOAD_URL_TTL_SECONDS from when the API made them)."""

    def __init__(self, store: MutableMapping[str, tuple[str, float]], clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def link(self, key: str, fresh_url: str) -> str:
        now = self.clock()
        kept = self.store.get(key)
        if kept is not None and kept[1] - LINK_MARGIN_SECONDS > now:
            return kept[0]
        self.store[key] = (fresh_url, now + contracts.DOWNLOAD_URL_TTL_SECONDS)
        return fresh_url

    def stabilise(self, images: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The images with each link replaced by the one first seen for the same object."""
        out = []
        for image in images:
            original_key = image.get("imageRef") or image["imageId"]
            outputs = [{**o, "url": self.link(o["key"], o["url"])} for o in image.get("outputs") or []]
            out.append(
                {
                    **image,
                    "originalUrl": self.link(f"original:{original_key}", image["originalUrl"]),
                    "outputs": outputs,
                }
            )
        return out


def verdict_of(image: dict[str, Any]) -> str | None:
    """The stored verdict, or (older jobs) the worst outcome of the outputs' scorecards."""
    if image.get("verdict"):
        return str(image["verdict"])
    outcomes = [(o.get("quality") or {}).get("outcome") for o in image.get("outputs") or []]
    for worst in (Verdict.FAIL, Verdict.WARN, Verdict.PASS, Verdict.SKIPPED):
        if worst.value in outcomes:
            return worst.value
    return None


def delivered(image: dict[str, Any]) -> dict[str, Any] | None:
    """The output the image delivers (chalicelib.delivery.variants): the one marked `delivered`, else (an
    image recorded before variants) the first."""
    outputs = image.get("outputs") or []
    return next((o for o in outputs if o.get("delivered")), outputs[0] if outputs else None)


def variant_caption(output: dict[str, Any]) -> str:
    """ "Variant 2 · PASS · seed 104738 · $0.04", and who made or chose it."""
    parts = [f"Variant {output.get('variant')}"]
    outcome = (output.get("quality") or {}).get("outcome")
    if outcome:
        parts.append(str(outcome))
    if output.get("seed") is not None:
        parts.append(f"seed {output['seed']}")
    if output.get("costUsd") is not None:
        parts.append(f"${float(output['costUsd']):.2f}")
    if output.get("source") == contracts.VariantSource.REGENERATED.value:
        parts.append("regenerated")
    if output.get("delivered"):
        who = "your pick" if output.get("pickedBy") == contracts.PickedBy.OWNER.value else "best"
        parts.append(f"DELIVERED ({who})")
    return " · ".join(parts)
