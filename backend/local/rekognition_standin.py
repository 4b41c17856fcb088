"""Rekognition DetectLabels and DetectText stand-ins for the local stack (moto answers every
image with one canned "Mobile Phone", and canned text).

It answers one honest label, "Subject", with the box of the local cut-out engine's subject
(backend/local/cutout.py: the U²-Net-p model, or the classical estimate where the model is not
installed), so the labels screen and label-aware masks behave sensibly. The label's Categories
and LabelModelVersion name the engine. Patched in at moto's Rekognition response, i.e. the same
boundary the app calls through boto3; pinned like sfn_hooks to moto 5.2.5.

DetectText finds no text: there is no OCR offline. Both answers name a model version starting
with quality.STAND_IN_VERSION_PREFIX ("local:"), so the scorecard's subject, box and text checks
say SKIPPED with the reason (they cannot fail here) instead of passing.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

from PIL import Image

from backend.local.cutout import CutoutEngine, subject_box
from chalicelib.imaging.quality import STAND_IN_VERSION_PREFIX

STANDIN_CATEGORY = "Backdrop local stand-in"


def subject_labels(data: bytes, cutout: CutoutEngine) -> list[dict[str, Any]]:
    img = Image.open(io.BytesIO(data))
    img.load()
    box = subject_box(cutout.alpha(img))
    if not box:
        return []
    x0, y0, x1, y1 = box
    w, h = img.size
    bounding = {"Left": x0 / w, "Top": y0 / h, "Width": (x1 - x0) / w, "Height": (y1 - y0) / h}
    return [
        {
            "Name": "Subject",
            "Confidence": 99.0,
            "Instances": [{"BoundingBox": bounding, "Confidence": 99.0}],
            "Parents": [],
            "Categories": [{"Name": STANDIN_CATEGORY}, {"Name": cutout.name}],
        }
    ]


def _image_bytes(image: dict[str, Any], read_object: Callable[[str, str], bytes]) -> bytes:
    """The image a request names: an S3 object, or bytes (base64 in the JSON body)."""
    if image.get("Bytes"):
        return base64.b64decode(image["Bytes"])
    s3_object = image.get("S3Object") or {}
    return read_object(s3_object["Bucket"], s3_object["Name"])


def install(read_object: Callable[[str, str], bytes], cutout: CutoutEngine) -> Callable[[], None]:
    """Patch moto's DetectLabels and DetectText; `read_object(bucket, key)` reads from the local S3."""
    from moto.rekognition.responses import RekognitionResponse

    original_labels = RekognitionResponse.detect_labels
    original_text = RekognitionResponse.detect_text

    def detect_labels(self: Any) -> str:
        params = json.loads(self.body or b"{}")
        try:
            labels = subject_labels(_image_bytes(params.get("Image") or {}, read_object), cutout)
        except Exception:  # unreadable image: Rekognition would say InvalidImageFormat
            labels = []
        return json.dumps({"Labels": labels, "LabelModelVersion": f"{STAND_IN_VERSION_PREFIX} {cutout.name}"})

    def detect_text(self: Any) -> str:
        return json.dumps({"TextDetections": [], "TextModelVersion": f"{STAND_IN_VERSION_PREFIX} no OCR"})

    RekognitionResponse.detect_labels = detect_labels  # type: ignore[method-assign]
    RekognitionResponse.detect_text = detect_text  # type: ignore[method-assign]

    def uninstall() -> None:
        RekognitionResponse.detect_labels = original_labels  # type: ignore[method-assign]
        RekognitionResponse.detect_text = original_text  # type: ignore[method-assign]

    return uninstall
