"""Rekognition DetectLabels on an uploaded original, cached per object in the jobs table."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ErrorCode
from chalicelib.core.errors import (
    BackdropError,
    BadRequest,
    NotFound,
    client_error_code,
    client_error_message,
    service_failure,
)
from chalicelib.store import s3keys
from chalicelib.store.jobs import JobStore

# Rekognition reads JPEG and PNG only (docs/aws-notes.md#n13-rekognition-detectlabels): other
# uploads get no labels, with the reason, and the Stability path then keeps the whole detected
# subject.
REKOGNITION_EXTENSIONS = (".jpg", ".png")
# ...and by the bytes, not the name: an MPO is a JPEG stream with more pictures after it.
REKOGNITION_FORMATS = ("JPEG", "PNG", "MPO")
# Labels not cached yet are detected in parallel, a bounded number at a time: Rekognition's
# DetectLabels quota is per second (docs/aws-notes.md#n43-rekognition-request-rate) and the upload
# handler detects at the same time; 16 calls of ~0.3-0.5 s each stay under 50 per second. boto3
# clients are thread-safe.
DETECT_WORKERS: Final = 16
# Detections are started for this long; what has not started by then is answered as pending
# (API Gateway gives a request 29 s). Those already running are waited for before the answer:
# Lambda freezes the execution environment once the handler returns
# (docs/aws-notes.md#n80-lambda-freezes-work-left-running-after-the-answer), so a thread left
# running would stall, or run on inside a later request. One detection is a few calls of
# well under a second each; the SDK's timeouts (chalicelib/store/clients.py) bound a stuck one.
DETECT_BUDGET_SECONDS: Final = 15.0
# Enough of the file for Pillow to read the size from the header (JPEG APP segments included).
HEADER_BYTES = 256 * 1024
STILL_PROCESSED = "the image can still be processed: the whole subject found by background removal is kept"
# Rekognition's answers about the image itself; anything else (throttling, access) is a service failure.
_IMAGE_ERRORS = {
    "InvalidImageFormatException": "Amazon Rekognition could not read this image",
    "ImageTooLargeException": "the image is too large for label detection",
    "InvalidParameterException": "Amazon Rekognition refused this image (too small, too large or malformed)",
    "InvalidS3ObjectException": "Amazon Rekognition could not read this object",
}
_UNCACHED_ERRORS = {"InvalidS3ObjectException"}  # may clear up once the object is visible everywhere


@dataclass(frozen=True)
class LabelResult:
    """The labels of one image, or why it has none (`unavailable`: {code, message})."""

    labels: list[dict[str, Any]]
    unavailable: dict[str, str] | None = None


def _unavailable(message: str) -> dict[str, str]:
    return {"code": ErrorCode.LABELS_UNAVAILABLE.value, "message": message}


def simplify(response: dict[str, Any]) -> list[dict[str, Any]]:
    labels = []
    for label in response.get("Labels", []):
        labels.append(
            {
                "name": label["Name"],
                "confidence": round(float(label.get("Confidence", 0.0)), 1),
                "instances": [
                    {
                        "box": {
                            "left": float(i["BoundingBox"]["Left"]),
                            "top": float(i["BoundingBox"]["Top"]),
                            "width": float(i["BoundingBox"]["Width"]),
                            "height": float(i["BoundingBox"]["Height"]),
                        },
                        "confidence": round(float(i.get("Confidence", 0.0)), 1),
                    }
                    for i in label.get("Instances", [])
                    if i.get("BoundingBox")
                ],
                "parents": [p["Name"] for p in label.get("Parents", [])],
            }
        )
    return labels


class LabelService:
    def __init__(
        self, rekognition: Any, store: JobStore, s3: Any, bucket: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rekognition = rekognition
        self.store = store
        self.s3 = s3
        self.bucket = bucket
        self.clock = clock

    def cached_result(self, key: str) -> LabelResult | None:
        entry = self.store.cached_labels_entry(key)
        return LabelResult(*entry) if entry else None

    def cached(self, key: str) -> list[dict[str, Any]] | None:
        return self.store.cached_labels(key)

    def cached_many(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        return self.store.cached_labels_many(keys)

    def _unreadable_for_rekognition(self, key: str) -> str | None:
        """Why Rekognition cannot label this object, told from its header; None when it can, or
        when the header alone cannot tell (Rekognition then answers for itself)."""
        try:
            part = self.s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}")
        except ClientError:
            return None
        data = part["Body"].read()
        total = int(str(part.get("ContentRange", "")).rpartition("/")[2] or len(data))
        from chalicelib.imaging import images as imaging  # Pillow only on a cache miss, never at the API's cold start

        try:
            width, height, _ = imaging.probe(data)
            real_format = imaging.format_of(data)
        except BackdropError as exc:
            return f"label detection was skipped: {exc.message}" if len(data) >= total else None
        if real_format not in REKOGNITION_FORMATS:
            # e.g. an iPhone's HEIC saved as .jpg: the name says JPEG, the bytes do not
            shown = "HEIC/HEIF" if real_format == "HEIF" else real_format
            return f"label detection reads JPEG and PNG only and this is a {shown} image; {STILL_PROCESSED}"
        if min(width, height) < contracts.REKOGNITION_MIN_SIDE:
            return (
                f"the image is {width}x{height} px and label detection (Amazon Rekognition) needs at least "
                f"{contracts.REKOGNITION_MIN_SIDE} px per side; {STILL_PROCESSED}"
            )
        if max(width, height) > contracts.REKOGNITION_MAX_SIDE:
            return (
                f"the image is {width}x{height} px and label detection (Amazon Rekognition) reads at most "
                f"{contracts.REKOGNITION_MAX_SIDE:,} px per side; {STILL_PROCESSED}"
            )
        return None

    def _detect(self, key: str) -> tuple[LabelResult, bool]:
        """(result, whether to cache it)."""
        if not key.endswith(REKOGNITION_EXTENSIONS):
            return LabelResult([], _unavailable(f"label detection reads JPEG and PNG only; {STILL_PROCESSED}")), True
        reason = self._unreadable_for_rekognition(key)
        if reason:
            return LabelResult([], _unavailable(reason)), True
        try:
            response = self.rekognition.detect_labels(
                Image={"S3Object": {"Bucket": self.bucket, "Name": key}},
                MaxLabels=contracts.DETECT_LABELS_MAX_LABELS,
                MinConfidence=contracts.DETECT_LABELS_MIN_CONFIDENCE,
            )
        except ClientError as exc:
            code = client_error_code(exc)
            if code not in _IMAGE_ERRORS:
                raise service_failure(exc, "label detection failed") from exc
            message = f"{_IMAGE_ERRORS[code]}: {client_error_message(exc) or code} [{code}]"
            return LabelResult([], _unavailable(message)), code not in _UNCACHED_ERRORS
        return LabelResult(simplify(response)), True

    def detect_and_cache_result(self, key: str) -> LabelResult:
        result, cacheable = self._detect(key)
        if cacheable:
            self.store.put_labels(key, result.labels, result.unavailable)
        return result

    def detect_and_cache(self, key: str) -> list[dict[str, Any]]:
        return self.detect_and_cache_result(key).labels

    def result_for(self, key: str) -> LabelResult:
        cached = self.cached_result(key)
        if cached is not None:
            return cached
        # LIST, not HEAD: a HEAD of a missing key is a 403 without ListBucket (chalicelib/store/s3keys.py)
        try:
            found = s3keys.exists(self.s3, self.bucket, key)
        except ClientError as exc:
            raise service_failure(exc, "could not read the uploaded image") from exc
        if not found:
            raise NotFound(f"no uploaded image {key.rsplit('/', 2)[-2] + '/' + key.rsplit('/', 1)[-1]}")
        return self.detect_and_cache_result(key)

    def results_many(
        self, keys: Sequence[str], budget_s: float | None = None
    ) -> tuple[dict[str, LabelResult], list[str]]:
        """Label results of many uploaded objects: the cached ones in one batch read, the others
        detected DETECT_WORKERS at a time. Returns (results by key, keys still pending): a
        detection not started within `budget_s` (DETECT_BUDGET_SECONDS by default) is not
        started at all; those running then are finished (and cached) before this returns, so no
        work of this request is left running after its answer. Asking again detects the pending
        ones. A missing upload or a service failure is raised."""
        unique = list(dict.fromkeys(keys))
        found = {key: LabelResult(*entry) for key, entry in self.store.cached_label_entries_many(unique).items()}
        missing = [key for key in unique if key not in found]
        if not missing:
            return found, []
        deadline = self.clock() + (DETECT_BUDGET_SECONDS if budget_s is None else budget_s)
        pool = ThreadPoolExecutor(max_workers=min(DETECT_WORKERS, len(missing)), thread_name_prefix="labels")
        futures = {pool.submit(self.result_for, key): key for key in missing}
        try:
            wait(futures, timeout=max(0.0, deadline - self.clock()), return_when=FIRST_EXCEPTION)
        finally:
            # detections not started are dropped; those running are waited for (never left running)
            pool.shutdown(wait=True, cancel_futures=True)
        for future, key in futures.items():
            if future.done() and not future.cancelled():
                found[key] = future.result()  # a missing upload or a service failure is raised here
        return found, [key for key in missing if key not in found]

    def labels_many(
        self, keys: Sequence[str], budget_s: float | None = None
    ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
        """(labels by key, keys still pending): results_many without the reasons."""
        found, pending = self.results_many(keys, budget_s)
        return {key: result.labels for key, result in found.items()}, pending

    def labels_for_refs(self, owner: str, refs: list[Any]) -> dict[str, Any]:
        """POST /labels: {"labels": {ref: [...]}, "unavailable": {ref: {code, message}}, "pending":
        [refs to ask about again]}. An image label detection cannot read has no labels and says
        why; it is never an error. Refs are pending when detection ran out of time or the answer
        would pass MAX_RESPONSE_BYTES."""
        bad = [r for r in refs if not isinstance(r, str) or not contracts.IMAGE_REF_RE.match(r)]
        if bad:
            raise BadRequest(f"not image refs from POST /uploads: {bad[:5]}")
        unique = list(dict.fromkeys(refs))
        found, _ = self.results_many([contracts.upload_key(owner, ref) for ref in unique])
        labels: dict[str, list[dict[str, Any]]] = {}
        unavailable: dict[str, dict[str, str]] = {}
        pending: list[str] = []
        room = contracts.MAX_RESPONSE_BYTES - 1_000 - sum(len(ref) + 4 for ref in unique)
        for ref in unique:
            result = found.get(contracts.upload_key(owner, ref))
            if result is not None:
                room -= len(json.dumps(result.labels)) + len(json.dumps(result.unavailable)) + 2 * len(ref) + 8
            if result is None or room < 0:
                pending.append(ref)
                continue
            labels[ref] = result.labels
            if result.unavailable:
                unavailable[ref] = result.unavailable
        return {"labels": labels, "unavailable": unavailable, "pending": pending}
