"""The New batch page's uploads: several files at once, each with its state, resumable.

Each file goes by itself through the API client's `upload_bytes` (POST /uploads for its presigned
POST, then straight to S3), `WORKERS` at a time, so 200 photos take about a twentieth of the time
one after another did (issue #29: 5 min 13 s behind one spinner), and each has its own state:
waiting, uploading, uploaded, refused (the API or the checks said why: sending it again changes
nothing) or failed (the network or S3: sent again by "Upload the failed ones again"). The queue
lives in the session, so a failure, a page error or a reload does not lose what was uploaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from frontend.api_client import ApiError

# Files in flight at once: each is a small API call and one S3 POST; more than this mostly
# queues on the uplink of an office connection (and on the 2 cores of a small web-app host).
WORKERS = 8
WAITING, UPLOADING, UPLOADED, REFUSED, FAILED = "waiting", "uploading", "uploaded", "refused", "failed"
# reasons worth another try: the connection or S3, not the file (frontend/api_client.py words them)
PASSING = ("the upload to S3 failed", "S3 refused the upload", "cannot reach")


@dataclass
class Entry:
    name: str
    data: bytes
    content_type: str
    position: int  # where it was among the files chosen
    state: str = WAITING
    message: str = ""
    image_ref: str | None = None


@dataclass
class Queue:
    entries: list[Entry] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(e.state == state for e in self.entries)

    @property
    def finished(self) -> int:
        return sum(e.state in (UPLOADED, REFUSED, FAILED) for e in self.entries)

    def rows(self) -> list[dict[str, str]]:
        return [{"Photo": e.name, "State": e.state, "Why": e.message} for e in self.entries]

    def words(self) -> str:
        """ "Uploading 57/200 · 2 failed"."""
        total = len(self.entries)
        line = f"Uploaded {self.count(UPLOADED):,}/{total:,}"
        if self.count(FAILED):
            line += f" · {self.count(FAILED):,} failed (can be sent again)"
        if self.count(REFUSED):
            line += f" · {self.count(REFUSED):,} not accepted"
        return line


def _send(api: Any, entry: Entry) -> tuple[str, str, str | None]:
    """(state, message, image ref) of one file."""
    entry.state = UPLOADING  # a worker has it (drawn by the next progress update)
    try:
        outcome = api.upload_bytes([(entry.name, entry.data, entry.content_type)])
    except ApiError as exc:  # the API or S3 unreachable: worth another try
        return FAILED, exc.message, None
    except Exception as exc:  # one file's surprise must not stop the others
        return FAILED, str(exc)[:200], None
    if outcome.uploaded:
        return UPLOADED, "", str(outcome.uploaded[0]["imageRef"])
    message = str(outcome.rejected[0]["message"]) if outcome.rejected else "not uploaded"
    return (FAILED if message.startswith(PASSING) else REFUSED), message, None


def run(
    api: Any, queue: Queue, on_progress: Callable[[Queue], None], *, workers: int = WORKERS, every_s: float = 0.25
) -> None:
    """Send every waiting or failed entry, `workers` at a time; `on_progress` after each file
    (at most every `every_s` seconds, and once at the end)."""
    todo = [e for e in queue.entries if e.state in (WAITING, FAILED)]
    for entry in todo:
        entry.state, entry.message = WAITING, ""
    on_progress(queue)  # the count, the bar and every file's state from the start
    last = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_send, api, entry): entry for entry in todo}
        for future in as_completed(futures):
            entry = futures[future]
            entry.state, entry.message, entry.image_ref = future.result()
            if time.monotonic() - last >= every_s:
                last = time.monotonic()
                on_progress(queue)
    on_progress(queue)
