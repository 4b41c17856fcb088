"""What a local run did, counted as AWS bills it: Lambda invocations and billed milliseconds per
function, and S3 requests by price class. Used by the cost benchmark; nothing here is deployed.

S3 requests are counted where they arrive (moto's server), so every caller is seen: the
Lambdas, the Bedrock integration reading Input.S3Uri and writing Output.S3Uri, the Distributed
Map's ItemReader and ResultWriter, and the uploads through presigned POSTs.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

# S3's request price classes: PUT/COPY/POST/LIST are one price, GET/SELECT/other another,
# DELETE is free. DeleteObjects is a POST: counted with the POSTs, to be conservative.
S3_PUT_CLASS = "PUT, COPY, POST, LIST"
S3_GET_CLASS = "GET, HEAD"
S3_DELETE = "DELETE"


def s3_request_class(environ: dict[str, Any]) -> str | None:
    """The price class of a request to moto's server, or None if it is not an S3 request."""
    query = environ.get("QUERY_STRING", "")
    credential = environ.get("HTTP_AUTHORIZATION", "") + " " + " ".join(parse_qs(query).get("X-Amz-Credential", []))
    if "/s3/aws4_request" not in credential:
        # a presigned POST carries its credential in the form body; it is always an upload
        if environ.get("REQUEST_METHOD") == "POST" and "multipart/form-data" in environ.get("CONTENT_TYPE", ""):
            return S3_PUT_CLASS
        return None
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/").strip("/")
    host_is_bucket = environ.get("HTTP_HOST", "").count(".") > 0 and not environ.get("HTTP_HOST", "").startswith(
        ("127.", "localhost")
    )
    has_key = bool(path) if host_is_bucket else "/" in path
    if method == "DELETE":
        return S3_DELETE
    if method in ("GET", "HEAD"):
        return S3_GET_CLASS if has_key else S3_PUT_CLASS  # a bucket-level GET is a LIST
    return S3_PUT_CLASS


class Meter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lambda_invocations: collections.Counter[str] = collections.Counter()
        self.lambda_billed_ms: collections.Counter[str] = collections.Counter()  # wall, rounded up per invocation
        # the invoking thread's CPU time: what the wall time would be on an idle vCPU, less I/O waits
        self.lambda_cpu_ms: collections.Counter[str] = collections.Counter()
        self.s3_requests: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        with self._lock:
            self.lambda_invocations.clear()
            self.lambda_billed_ms.clear()
            self.lambda_cpu_ms.clear()
            self.s3_requests.clear()

    def timed(self, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """`handler`, counted as one invocation of Lambda function `name` per call."""

        def invoke(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                return handler(*args, **kwargs)
            finally:
                billed = math.ceil((time.perf_counter() - started) * 1000)  # Lambda bills per 1 ms, rounded up
                cpu = math.ceil((time.thread_time() - cpu_started) * 1000)
                with self._lock:
                    self.lambda_invocations[name] += 1
                    self.lambda_billed_ms[name] += billed
                    self.lambda_cpu_ms[name] += cpu

        return invoke

    def install(self) -> Callable[[], None]:
        """Count S3 requests arriving at moto's server (in this process); returns the undo."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        original = DomainDispatcherApplication.__call__
        meter = self

        def call(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            kind = s3_request_class(environ)
            if kind:
                with meter._lock:
                    meter.s3_requests[kind] += 1
            return original(app, environ, start_response)

        DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]

        def undo() -> None:
            DomainDispatcherApplication.__call__ = original  # type: ignore[method-assign]

        return undo
