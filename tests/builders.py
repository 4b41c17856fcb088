"""Things tests build: an ID token, a sample AWS event, a synthetic product photo. Plain
functions (conftest.py hands them out as fixtures); a test that needs one directly imports it
from here, never from a conftest (pytest loads each folder's conftest under the same name)."""

from __future__ import annotations

import base64
import io
import json
import os
import time
from typing import Any, Final

# The test resources' names, in one place (tests/conftest.py gives them to the app's environment)
BUCKET: Final = "backdrop-test-bucket"
TABLE: Final = "backdrop-test-jobs"
STATE_MACHINE: Final = "backdrop-test"  # also the stack's name prefix


def _scene_region() -> str:
    """The first Region models.json offers the default scene model in (us-west-2 in November
    2026): tests that generate a scene run there (@pytest.mark.region(SCENE_REGION))."""
    from chalicelib.models import registry

    return registry.get_model(registry.default_scene_model_key()).regions[0]


SCENE_REGION = _scene_region()


def _b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_id_token(sub: str, *, username: str | None = None, email: str | None = None, **extra: Any) -> str:
    """An unsigned ID-token-shaped JWT. Chalice's local gateway decodes the payload into the
    authorizer claims without checking the signature
    (docs/aws-notes.md#n22-chalice-does-not-verify-tokens-locally): good enough for route
    tests; signature checks belong to API Gateway (and the local stack's verifier)."""
    claims = {
        "sub": sub,
        "cognito:username": username or sub,
        "email": email or f"{sub}@example.com",
        "token_use": "id",
        "exp": int(time.time()) + 3600,
        **extra,
    }
    return f"{_b64url({'alg': 'none', 'typ': 'JWT'})}.{_b64url(claims)}.sig"


EVENTS_DIR = os.path.join(os.path.dirname(__file__), "events")


def load_event(name: str) -> dict[str, Any]:
    """A sample AWS event from tests/events/ (shapes as AWS documents them), to adapt per test."""
    with open(os.path.join(EVENTS_DIR, f"{name}.json"), encoding="utf-8") as handle:
        return json.load(handle)


def make_photo(width: int = 320, height: int = 240, fmt: str = "PNG", *, exif_orientation: int | None = None) -> bytes:
    """A synthetic 'product photo': a saturated subject on a plain light backdrop."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (235, 235, 230))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.3, height * 0.25, width * 0.7, height * 0.85), fill=(200, 30, 40), outline=(120, 10, 20))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


# Rekognition: moto's DetectLabels is canned (one "Mobile Phone" for any image), so tests that
# look at labels use this fake, handed in where the app gets its clients.

PERSON_AND_BEACH = [
    {
        "Name": "Person",
        "Confidence": 98.25,
        "Instances": [{"BoundingBox": {"Left": 0.1, "Top": 0.2, "Width": 0.3, "Height": 0.6}, "Confidence": 97.0}],
        "Parents": [],
    },
    {"Name": "Beach", "Confidence": 81.0, "Instances": [], "Parents": [{"Name": "Outdoors"}]},
]


class FakeRekognition:
    """Labels for every image; DetectText answers `texts` (no printed text by default). Calls on
    S3 objects are recorded by key, calls on bytes (Finalize's checks) as "<bytes>";
    `result_labels`, while it lasts, answers the calls on bytes in turn."""

    def __init__(self, labels: list[dict[str, Any]]) -> None:
        self.labels = labels
        self.result_labels: list[list[dict[str, Any]]] = []
        self.texts: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.text_calls = 0

    @staticmethod
    def _name(image: dict[str, Any]) -> str:
        return image["S3Object"]["Name"] if "S3Object" in image else "<bytes>"

    def detect_labels(self, Image: dict[str, Any], **kwargs: Any) -> dict[str, Any]:  # boto3's parameter name
        self.calls.append(self._name(Image))
        if "Bytes" in Image and self.result_labels:
            return {"Labels": self.result_labels.pop(0)}
        return {"Labels": self.labels}

    def detect_text(self, Image: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.text_calls += 1
        return {"TextDetections": self.texts}
