"""One cached boto3 client shared by many threads (chalicelib.store.clients): no connection is discarded.

The label handler detects labels DETECT_WORKERS (16) at a time on one client, and the local
stack runs every Lambda of a batch in one process on the same clients; with botocore's default
pool of 10, urllib3 warned "Connection pool is full, discarding connection" for each thread past
it (348 lines for a 200-photo batch in `make run`). A real HTTP endpoint on 127.0.0.1, because
moto's in-process mock never opens a connection."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.jobs import labels
from chalicelib.store import clients as aws


class _SlowS3(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: connections go back to the pool

    def do_HEAD(self) -> None:
        time.sleep(0.2)  # every thread holds its connection at the same time
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    aws.reset()
    try:
        yield url
    finally:
        server.shutdown()
        aws.reset()


def test_as_many_threads_as_the_label_workers_share_one_client_without_discarding(endpoint, caplog) -> None:
    s3 = aws.client("s3")
    assert s3.meta.endpoint_url == endpoint
    threads = labels.DETECT_WORKERS + 8  # the label workers and then some (the local stack's other Lambdas)
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        for _ in range(3):
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda _: s3.head_bucket(Bucket="photos"), range(threads)))
    full = [r.getMessage() for r in caplog.records if "Connection pool is full" in r.getMessage()]
    assert full == []
