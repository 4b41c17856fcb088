"""The job page at 1,000 images: render time and bytes per refresh, with PASS/MISS.

The real Streamlit page (frontend/pages/job.py, through streamlit.testing's AppTest) draws a
running 1,000-image job from an API stand-in that answers like GET /jobs/{jobId}: pages of at
most `limit` images, filtered by status and verdict, live counts, and presigned links that change
on every answer (their signature carries the time). Each refresh is timed; its bytes are what
reaches the browser: the Streamlit deltas (protobuf, as sent over the websocket) plus every image
whose link changed since the last refresh, at a realistic photo size (the browser downloads it
again). The API's own JSON is counted too (the Streamlit server downloads it).

`python -m bench.webapp` prints the rows alone.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "frontend" / "streamlit_app.py")
JOB_ID = "20261124T120000Z-0123456789ab"
IMAGES = 1_000
IMAGE_BYTES = 350_000  # a 2-megapixel JPEG result or original, as a browser would fetch it
REFRESHES = 6
RENDER_TARGET_S = 1.5  # the wall time a refresh may take (every 3 s): bench/pages.py's real-API row
# The row's targets, set so that a 2x regression crosses them (issue 28.5): the wall time had 26x
# headroom (58-180 ms against 1.5 s) and moves with the load, so the row judges the refresh's CPU
# time (page and stand-in, this process: 68 ms median at load 12, 2026-12-08) against 120 ms;
# the bytes (deterministic: 58 kB of deltas) against 100 kB, which one more page of cards crosses.
RENDER_CPU_TARGET_S = 0.12
BYTES_TARGET = 100_000


class JobApi:
    """GET /jobs/{jobId}'s answers for a running 1,000-image job (a quarter failed or doubtful)."""

    def __init__(self, images: int = IMAGES) -> None:
        self.images: list[dict[str, Any]] = []
        for n in range(images):
            status = "FAILED" if n % 17 == 0 else ("RUNNING" if n % 5 == 0 else "SUCCEEDED")
            verdict = None if status != "SUCCEEDED" else ("FAIL" if n % 11 == 0 else "WARN" if n % 7 == 0 else "PASS")
            image: dict[str, Any] = {
                "imageId": f"{n:032x}",
                "imageRef": f"{'a' * 32}/{n:032x}.jpg",
                "name": f"IMG_{n:05d}.jpg",
                "status": status,
                "verdict": verdict,
                "labels": ["Shoe"],
                "originalUrl": f"https://bucket.s3.amazonaws.com/uploads/u/{n:032x}.jpg",
                "outputs": [],
            }
            if status == "FAILED":
                image.update(errorCode="MODEL_THROTTLED", cause="the model's quota was still exhausted after 8 retries")
            if verdict:
                image["outputs"] = [
                    {
                        "key": f"results/u/{JOB_ID}/{n:032x}-1.jpg",
                        "url": f"https://bucket.s3.amazonaws.com/results/u/{JOB_ID}/{n:032x}-1.jpg",
                        "variant": 1,
                        "seed": 42,
                        "quality": {
                            "outcome": verdict,
                            "checks": [
                                {"check": "subjectFidelity", "outcome": "PASS", "reason": "Product unchanged."},
                                {"check": "edgeHalo", "outcome": verdict, "reason": "Edge colour shift ΔE 2.1."},
                            ],
                        },
                    }
                ]
            self.images.append(image)
        self.answers = 0
        self.api_bytes = 0

    def _signed(self, url: str) -> str:
        return f"{url}?X-Amz-Date=20261125T0500{self.answers:02d}Z&X-Amz-Signature={self.answers:064x}"

    def job_summary(self, job_id: str) -> dict[str, Any]:
        return self.job(job_id, limit=0)

    def job(self, job_id: str, *, limit: int | None = None, cursor: str | None = None, **query: Any) -> dict[str, Any]:
        self.answers += 1
        counts = {s: sum(i["status"] == s for i in self.images) for s in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED")}
        verdicts = {v: sum(i["verdict"] == v for i in self.images) for v in ("FAIL", "WARN", "PASS", "SKIPPED")}
        view: dict[str, Any] = {"jobId": JOB_ID, "status": "RUNNING", "model": "stability-inpaint", "prompt": "studio"}
        view |= {"counts": counts, "verdicts": verdicts, "imageCount": len(self.images), "cost": {"modelCalls": 1200}}
        if limit != 0:
            matching = [
                i
                for i in self.images
                if query.get("status") in (None, i["status"])
                and (query.get("verdict") is None or i["verdict"] == query["verdict"])
            ]
            start, size = int(cursor or 0), limit or 50
            page = [
                {
                    **i,
                    "originalUrl": self._signed(i["originalUrl"]),
                    "outputs": [{**o, "url": self._signed(o["url"])} for o in i["outputs"]],
                }
                for i in matching[start : start + size]
            ]
            more = start + size < len(matching)
            view |= {"images": page, "nextCursor": str(start + size) if more else None}
        self.api_bytes += len(json.dumps(view))
        return view

    def job_images(self, job_id: str, status: str | None = None) -> Any:
        return iter(i for i in self.images if status in (None, i["status"]))


def _image_urls(at: Any) -> set[str]:
    return {url for image in at.get("image") for url in image.value}


def measure() -> dict[str, float]:
    from streamlit.runtime import forward_msg_queue
    from streamlit.testing.v1 import AppTest

    from chalicelib.core import contracts

    sent: list[int] = []
    real_enqueue = forward_msg_queue.ForwardMsgQueue.enqueue

    def counting(self: Any, msg: Any) -> None:
        sent.append(msg.ByteSize())
        real_enqueue(self, msg)

    forward_msg_queue.ForwardMsgQueue.enqueue = counting  # type: ignore[method-assign]
    try:
        api = JobApi()
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["api"] = api
        at.session_state["user"] = "bench@example.com"
        at.query_params[contracts.JOB_QUERY_PARAM] = JOB_ID
        at.switch_page("pages/job.py").run()
        if at.exception:
            raise RuntimeError(at.exception[0].value)
        seen = _image_urls(at)
        times, cpu, deltas, api_bytes, downloads = [], [], [], [], []
        for _ in range(REFRESHES):
            sent.clear()
            before_api = api.api_bytes
            started, cpu_started = time.perf_counter(), time.process_time()
            at.run()
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)  # the page and the stand-in, all in this process
            deltas.append(sum(sent))
            api_bytes.append(api.api_bytes - before_api)
            now = _image_urls(at)
            downloads.append(len(now - seen))
            seen = now
    finally:
        forward_msg_queue.ForwardMsgQueue.enqueue = real_enqueue  # type: ignore[method-assign]
    return {
        "render_s": statistics.median(times),
        "render_cpu_s": statistics.median(cpu),
        "delta_bytes": statistics.median(deltas),
        "image_downloads": statistics.median(downloads),
        "api_bytes": statistics.median(api_bytes),
        "cards": len(seen),
    }


def run(row: Callable[[str, str, str, bool | None], None]) -> None:
    figures = measure()
    browser_bytes = figures["delta_bytes"] + figures["image_downloads"] * IMAGE_BYTES
    row(
        f"job page refresh, {IMAGES:,} images (CPU)",
        f"{figures['render_cpu_s'] * 1000:.0f} ms CPU, {figures['render_s'] * 1000:.0f} ms wall "
        f"({figures['cards']:.0f} images drawn, median of {REFRESHES})",
        f"<= {RENDER_CPU_TARGET_S * 1000:.0f} ms CPU",
        figures["render_cpu_s"] <= RENDER_CPU_TARGET_S,
    )
    row(
        "bytes to the browser per refresh",
        f"{browser_bytes / 1000:.0f} kB ({figures['delta_bytes'] / 1000:.0f} kB page, "
        f"{figures['image_downloads']:.0f} images downloaded again)",
        f"<= {BYTES_TARGET / 1000:.0f} kB, no image",
        browser_bytes <= BYTES_TARGET and figures["image_downloads"] == 0,
    )
    row("API JSON per refresh (server side)", f"{figures['api_bytes'] / 1000:.0f} kB", "-", None)


if __name__ == "__main__":

    def _print_row(name: str, value: str, target: str, ok: bool | None) -> None:
        print(f"{name}: {value}  (target {target}) {'PASS' if ok else ('MISS' if ok is not None else '-')}")

    run(_print_row)
    sys.exit(0)
