"""The gallery's ordering and link cache (frontend/gallery.py), without Streamlit."""

from __future__ import annotations

from chalicelib.core import contracts
from frontend import gallery


def test_doubtful_first_walks_failures_then_verdicts_worst_first_then_unfinished() -> None:
    chain = gallery.segments(None, None, doubtful_first=True)
    assert [(s.status, s.verdict) for s in chain] == [
        ("FAILED", None),
        ("SUCCEEDED", "FAIL"),
        ("SUCCEEDED", "WARN"),
        ("SUCCEEDED", "SKIPPED"),
        ("SUCCEEDED", "PASS"),
        ("SUCCEEDED", "NONE"),
        ("RUNNING", None),
        ("PENDING", None),
        ("CANCELLED", None),
    ]
    assert gallery.segments("FAILED", None, doubtful_first=True) == [gallery.Segment("FAILED")]
    assert gallery.segments(None, "WARN", doubtful_first=True) == [gallery.Segment("SUCCEEDED", "WARN")]
    assert gallery.segments(None, "WARN", doubtful_first=False) == [gallery.Segment(None, "WARN")]


def test_empty_segments_are_known_from_the_live_counts() -> None:
    view = {"counts": {"SUCCEEDED": 10, "FAILED": 0}, "verdicts": {"FAIL": 2, "WARN": 0, "PASS": 7, "SKIPPED": 0}}
    assert gallery.segment_size(gallery.Segment("FAILED"), view) == 0
    assert gallery.segment_size(gallery.Segment("SUCCEEDED", "FAIL"), view) == 2
    assert gallery.segment_size(gallery.Segment("SUCCEEDED", "NONE"), view) == 1  # finished before verdicts
    assert gallery.segment_size(gallery.Segment(None, None), view) is None


def test_a_link_is_kept_while_it_is_valid_and_renewed_before_it_expires() -> None:
    now = [1_000.0]
    cache = gallery.LinkCache({}, clock=lambda: now[0])
    assert cache.link("results/a.png", "https://s3/a.png?sig=1") == "https://s3/a.png?sig=1"
    now[0] += 60
    assert cache.link("results/a.png", "https://s3/a.png?sig=2") == "https://s3/a.png?sig=1"
    now[0] += contracts.DOWNLOAD_URL_TTL_SECONDS - gallery.LINK_MARGIN_SECONDS
    assert cache.link("results/a.png", "https://s3/a.png?sig=3") == "https://s3/a.png?sig=3"


def test_fetch_page_fills_a_page_across_segments_and_skips_empty_ones() -> None:
    images = {"FAILED": [{"imageId": "f1"}], "RUNNING": [{"imageId": f"r{i}"} for i in range(5)]}
    asked: list[dict] = []

    def job(job_id: str, limit: int, cursor: str | None = None, **query: str) -> dict:
        asked.append({"limit": limit, "cursor": cursor, **query})
        if limit == 0:
            return {"counts": {"FAILED": 1, "SUCCEEDED": 0, "RUNNING": 5, "PENDING": 0}, "verdicts": {}}
        found = images.get(query.get("status", ""), [])
        start = int(cursor or 0)
        more = start + limit < len(found)
        return {"images": found[start : start + limit], "nextCursor": str(start + limit) if more else None}

    chain = gallery.segments(None, None, doubtful_first=True)
    page = gallery.fetch_page(job, "j", chain, gallery.PageStart(), 4)
    assert [i["imageId"] for i in page.images] == ["f1", "r0", "r1", "r2"]
    assert [a.get("status") for a in asked] == [None, "FAILED", "RUNNING"]  # SUCCEEDED segments are empty
    assert page.next_start == gallery.PageStart(chain.index(gallery.Segment("RUNNING")), "3")
    last = gallery.fetch_page(job, "j", chain, page.next_start, 4)
    assert [i["imageId"] for i in last.images] == ["r3", "r4"] and last.next_start is None
