"""Filtered pages of 1,000- and 10,000-image jobs through the real API on the local stack.

One local stack (moto behind its HTTP server, the Chalice API on its local server, the IAM guard)
holds jobs of 1,000 and 10,000 images whose items are written as the workflow leaves them: a few
FAILED, results with each verdict (FAIL and WARN rare), the rest CANCELLED. Each is a CANCELLED
job with its reports, so nothing in the stack starts or closes it while it is measured. Every
figure is a real GET /jobs/{jobId} through `frontend.api_client.BackdropClient`; the DynamoDB
Queries each answer costs are counted where moto's server receives them.

Rows:
- a filtered page (12 FAILED; 12 with verdict FAIL; the gallery's first "doubtful first" page):
  queries per answer and the median wall time of `REPEATS` answers, against the unfiltered page
  of the same job. Targets: at most `MAX_QUERIES` queries per answer, and the filtered page within
  `RATIO_TARGET`x the unfiltered one (a page that went back to filtering after the read at 10,000
  images takes hundreds of queries, ~87 s here: it crosses both).
- the same filtered page of a 1,000-image job written before the index keys (no `viewKeys`):
  the path such jobs keep, as the "before" figure (no target).
- the job page (frontend/pages/job.py through streamlit.testing's AppTest) drawn from the real
  API: the median refresh at 1,000 and 10,000 images, against bench/webapp.py's 1.5 s target.

`python -m bench.pages [--max 10000]` prints the rows; `run(row)` adds them to `make bench`.
"""

from __future__ import annotations

import argparse
import base64
import collections
import functools
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Row = Callable[[str, str, str, bool | None], None]

SIZES = (1_000, 10_000)
PAGE = 12  # the gallery's smallest page, the one the issue measured
REPEATS = 5
MAX_QUERIES = 2
RATIO_TARGET = 1.5
RENDER_TARGET_S = 1.5  # bench/webapp.py's target for a refresh of the job page
REFRESHES = 4
LEGACY_SIZE = 1_000  # the old path at 10,000 takes ~87 s a page: 1,000 shows it


class AwsCalls:
    """AWS JSON-protocol calls arriving at moto's server in this process, by operation (the
    X-Amz-Target header: DynamoDB Query, Rekognition DetectLabels, ...): the real requests."""

    def __init__(self) -> None:
        self.by_operation: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """DynamoDB Queries (what the pages rows count)."""
        return self.by_operation["Query"]

    @contextmanager
    def installed(self) -> Iterator[AwsCalls]:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        original = DomainDispatcherApplication.__call__
        calls = self

        def call(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if target:
                with calls._lock:
                    calls.by_operation[target.rsplit(".", 1)[-1]] += 1
            return original(app, environ, start_response)

        DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]
        try:
            yield self
        finally:
            DomainDispatcherApplication.__call__ = original  # type: ignore[method-assign]


def _image_status(n: int) -> tuple[str, str | None]:
    """Image n's status and verdict: ~1 % FAILED, ~1 % FAIL, ~3 % WARN, 60 % PASS, the rest CANCELLED."""
    if n % 97 == 5:
        return "FAILED", None
    if n % 89 == 7:
        return "SUCCEEDED", "FAIL"
    if n % 31 == 3:
        return "SUCCEEDED", "WARN"
    if n % 5 < 3:
        return "SUCCEEDED", "PASS"
    return "CANCELLED", None


def seed_job(owner: str, images: int, *, with_keys: bool = True) -> str:
    """A CANCELLED job of `images` images as the workflow and the cancel leave it; its id."""
    import os
    from decimal import Decimal

    from chalicelib.core import contracts
    from chalicelib.core.contracts import ImageStatus
    from chalicelib.store import clients as aws
    from chalicelib.store.jobs import JobStore, NewImage

    store = JobStore(aws.table(os.environ["JOBS_TABLE_NAME"]))
    job_id = contracts.new_job_id()
    new = []
    for n in range(images):
        upload_id = f"{n // contracts.MAX_FILES_PER_UPLOAD_REQUEST:032x}"
        ref = contracts.image_ref_of(upload_id, f"{n:032x}", "jpg")
        new.append(NewImage(image_id=f"{n:032x}", image_ref=ref, key=contracts.upload_key(owner, ref), name=ref))
    items = []
    counts = {s.value: 0 for s in ImageStatus}
    verdicts: dict[str, int] = {}
    for n, item in enumerate(store.image_items(job_id, new, expires=int(time.time()) + 86_400)):
        status, verdict = _image_status(n)
        counts[status] += 1
        item["status"] = status
        item.update(contracts.image_view_keys(job_id, item["imageId"], status, verdict))
        if status == "FAILED":
            item.update(errorCode="MODEL_THROTTLED", cause="the model's quota was still exhausted after 8 retries")
        if verdict:
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            item["verdict"] = verdict
            item["outputs"] = [
                {
                    "key": contracts.result_key(owner, job_id, item["imageId"], 1, "png"),
                    "variant": 1,
                    "seed": 42,
                    "delivered": True,
                    "quality": {"outcome": verdict, "score": Decimal("0.91")},
                }
            ]
        if not with_keys:
            for name in (contracts.STATUS_INDEX_PK, contracts.VERDICT_INDEX_PK, contracts.VERDICT_INDEX_SK):
                item.pop(name, None)
        items.append(item)
    store.write_images(items)
    now = contracts.utc_now_iso()
    job: dict[str, Any] = {
        "pk": contracts.job_pk(job_id),
        "sk": contracts.JOB_SK,
        "jobId": job_id,
        "owner": owner,
        "createdAt": now,
        "cancelledAt": now,
        "finishedAt": now,
        "status": "CANCELLED",
        "model": "stability-inpaint",
        "settings": {"prompt": "a studio floor"},
        "imageCount": images,
        "counts": counts,
        "gsi1pk": contracts.owner_index_pk(owner),
        "gsi1sk": f"{now}#{job_id}",
        "notify": False,
        "reportKeys": {fmt: contracts.report_key(owner, job_id, fmt) for fmt in ("json", "csv")},
        contracts.TTL_ATTRIBUTE: int(time.time()) + 86_400,
        **{contracts.verdict_count_attribute(v): c for v, c in verdicts.items()},
    }
    if with_keys:
        job[contracts.JOB_VIEW_KEYS_ATTRIBUTE] = True
    store.table.put_item(Item=job)
    return job_id


def _timed(counter: AwsCalls, call: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, float, Any]:
    """(median seconds, queries per call, the last answer) of `repeats` calls."""
    times, queries, answer = [], [], None
    for _ in range(repeats):
        before = counter.count
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
        queries.append(counter.count - before)
    return statistics.median(times), statistics.median(queries), answer


def _job_page_refresh(client: Any, job_id: str) -> float:
    """The median refresh of the real job page (Streamlit AppTest) drawn from the real API."""
    from streamlit.testing.v1 import AppTest

    from bench.webapp import APP
    from chalicelib.core import contracts

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["api"] = client
    at.session_state["user"] = "bench@example.com"
    at.query_params[contracts.JOB_QUERY_PARAM] = job_id
    at.switch_page("pages/job.py").run()
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    times = []
    for _ in range(REFRESHES):
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        if at.exception:
            raise RuntimeError(at.exception[0].value)
    return statistics.median(times)


def run(row: Row, largest: int = SIZES[-1]) -> None:
    from backend.local.cutout import ForegroundEstimate
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from frontend import gallery
    from frontend.api_client import BackdropClient, CognitoLogin

    counter = AwsCalls()
    with LocalStack(api_port=0, stage="pages", cutout=ForegroundEstimate()) as stack, counter.installed():
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(DEMO_USER, DEMO_PASSWORD)
        client = BackdropClient(stack.api_url, login.id_token, timeout_s=300)
        owner = json.loads(base64.urlsafe_b64decode(login.id_token().split(".")[1] + "=="))["sub"]
        client.job(seed_job(owner, 20), limit=PAGE, status="FAILED")  # warm: imports, clients, signing keys

        answers = [0]

        def job(*args: Any, **kwargs: Any) -> Any:
            answers[0] += 1
            return client.job(*args, **kwargs)

        def doubtful_first(job_id: str) -> gallery.GalleryPage:
            chain = gallery.segments(None, None, doubtful_first=True)
            return gallery.fetch_page(job, job_id, chain, gallery.PageStart(), PAGE)

        for size in [n for n in SIZES if n <= largest]:
            job_id = seed_job(owner, size)
            plain_s, plain_q, _ = _timed(counter, functools.partial(client.job, job_id, limit=PAGE))
            statuses = [_image_status(n) for n in range(size)]
            failed = sum(s == "FAILED" for s, _ in statuses)
            failing = sum(v == "FAIL" for _, v in statuses)
            views: list[tuple[str, Callable[[], Any], int]] = [
                ("12 FAILED", functools.partial(job, job_id, limit=PAGE, status="FAILED"), min(PAGE, failed)),
                (
                    "12 with verdict FAIL",
                    functools.partial(job, job_id, limit=PAGE, verdict="FAIL"),
                    min(PAGE, failing),
                ),
                # the summary, then a page from each segment until 12 images
                ("doubtful first, first page", functools.partial(doubtful_first, job_id), PAGE),
            ]
            for name, call, expected in views:
                before = answers[0]
                seconds, queries, answer = _timed(counter, call)
                per_call = (answers[0] - before) / REPEATS
                shown = len(answer["images"] if isinstance(answer, dict) else answer.images)
                per_answer = queries / per_call
                ratio = seconds / (plain_s * per_call)
                row(
                    f"filtered page {size:,} images: {name}",
                    f"{seconds * 1000:.0f} ms, {queries:.0f} queries in {per_call:.0f} answer(s), {shown} images; "
                    f"unfiltered page {plain_s * 1000:.0f} ms ({plain_q:.0f} query) = {ratio:.2f}x per answer",
                    f"<= {MAX_QUERIES} queries/answer, <= {RATIO_TARGET}x",
                    per_answer <= MAX_QUERIES and ratio <= RATIO_TARGET and shown == expected,
                )
            refresh_s = _job_page_refresh(client, job_id)
            row(
                f"job page refresh, real API, {size:,} images",
                f"{refresh_s * 1000:.0f} ms (median of {REFRESHES})",
                f"<= {RENDER_TARGET_S * 1000:.0f} ms",
                refresh_s <= RENDER_TARGET_S,
            )
        legacy = seed_job(owner, LEGACY_SIZE, with_keys=False)
        seconds, queries, _ = _timed(
            counter, functools.partial(client.job, legacy, limit=PAGE, status="FAILED"), repeats=3
        )
        row(
            f"before: 12 FAILED of {LEGACY_SIZE:,}, job without index keys",
            f"{seconds * 1000:.0f} ms, {queries:.0f} queries (filtered after the read)",
            "(the old path)",
            None,
        )


def main(argv: list[str] | None = None) -> int:
    from bench import quiet_logs

    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=SIZES[-1], help="largest job (default 10,000)")
    args = parser.parse_args(argv)
    quiet_logs()

    def row(name: str, value: str, target: str, ok: bool | None) -> None:
        print(f"{name}: {value}  (target {target}) {'PASS' if ok else ('MISS' if ok is not None else '-')}", flush=True)

    run(row, args.max)
    return 0


if __name__ == "__main__":
    sys.exit(main())
