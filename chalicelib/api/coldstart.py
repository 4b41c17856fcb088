"""The first request of a Lambda environment runs without Python's cyclic garbage collector.

That request loads most of what the environment will ever hold: the route's modules, boto3 and
botocore, and the SDK's service models (endpoints.json alone parses into ~100,000 dicts and
lists). Each time the collector's count of new long-lived objects passes a quarter of the old
ones it walks them all, and while that much is loaded it does so again and again: ~50 ms of CPU
of the API's ~370 ms cold start on the bench (docs/performance.md, bench/cold_start.py). None
of it is garbage: the models stay cached for the environment's life.

So the first request pauses the collector; when it has answered, everything alive is frozen
(`gc.freeze()`: moved to a permanent generation that later collections skip, as the loaded
modules and models should be) and the collector resumes for every later request
(docs/aws-notes.md#n115-python-gc-freeze-and-the-first-request). Reference counting frees
acyclic garbage as usual meanwhile; what the first request leaves in a cycle stays until the
environment ends, one request's worth.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_first_seen = False


@contextmanager
def first_request_without_gc() -> Iterator[None]:
    """Pause the cyclic collector for the process's first request, then freeze what it loaded.
    Later requests (and a process whose collector was already off) run as they are."""
    global _first_seen
    with _lock:
        first = not _first_seen and gc.isenabled()
        _first_seen = True
    if not first:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
