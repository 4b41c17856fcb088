"""Rekognition DetectLabels on an uploaded original, cached per object in the jobs table."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib import contracts
from chalicelib.contracts import ErrorCode
from chalicelib.errors import (
    BadRequest,
    NotFound,
    client_error_code,
    client_error_message,
    is_not_found,
    service_failure,
)
from chalicelib.store import JobStore

# Rekognition reads JPEG and PNG only (aws-limits.md §3): other uploads get no labels, and the
# Stability path then keeps the whole detected subject.
REKOGNITION_EXTENSIONS = (".jpg", ".png")
_REKOGNITION_ERRORS = {
    "InvalidImageFormatException": (ErrorCode.IMAGE_INVALID, "Rekognition could not read this image"),
    "ImageTooLargeException": (ErrorCode.IMAGE_TOO_LARGE, "the image is too large for label detection"),
    "InvalidS3ObjectException": (ErrorCode.IMAGE_INVALID, "Rekognition could not read this object"),
}


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
    def __init__(self, rekognition: Any, store: JobStore, s3: Any, bucket: str) -> None:
        self.rekognition = rekognition
        self.store = store
        self.s3 = s3
        self.bucket = bucket

    def cached(self, key: str) -> list[dict[str, Any]] | None:
        return self.store.cached_labels(key)

    def cached_many(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        return self.store.cached_labels_many(keys)

    def detect_and_cache(self, key: str) -> list[dict[str, Any]]:
        if not key.endswith(REKOGNITION_EXTENSIONS):
            labels: list[dict[str, Any]] = []
        else:
            try:
                response = self.rekognition.detect_labels(
                    Image={"S3Object": {"Bucket": self.bucket, "Name": key}},
                    MaxLabels=contracts.DETECT_LABELS_MAX_LABELS,
                    MinConfidence=contracts.DETECT_LABELS_MIN_CONFIDENCE,
                )
            except ClientError as exc:
                code = client_error_code(exc)
                if code in _REKOGNITION_ERRORS:
                    error_code, message = _REKOGNITION_ERRORS[code]
                    raise BadRequest(f"{message}: {client_error_message(exc)}", code=error_code) from exc
                raise service_failure(exc, "label detection failed") from exc
            labels = simplify(response)
        self.store.put_labels(key, labels)
        return labels

    def labels_for(self, key: str) -> list[dict[str, Any]]:
        cached = self.cached(key)
        if cached is not None:
            return cached
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                raise NotFound(f"no uploaded image {key.rsplit('/', 2)[-2] + '/' + key.rsplit('/', 1)[-1]}") from exc
            raise service_failure(exc, "could not read the uploaded image") from exc
        return self.detect_and_cache(key)

    def labels_for_refs(self, owner: str, refs: list[Any]) -> dict[str, list[dict[str, Any]]]:
        bad = [r for r in refs if not isinstance(r, str) or not contracts.IMAGE_REF_RE.match(r)]
        if bad:
            raise BadRequest(f"not image refs from POST /uploads: {bad[:5]}")
        return {ref: self.labels_for(contracts.upload_key(owner, ref)) for ref in dict.fromkeys(refs)}
