"""Photo previews for the front end, read with the same checks the workflow makes."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw

from chalicelib import imaging
from chalicelib.errors import BackdropError


def thumbnail(data: bytes, labels: list[dict[str, Any]], kept: list[str]) -> Image.Image | None:
    """The photo as it is seen (EXIF orientation applied), boxes drawn on it; None if it cannot be read."""
    try:
        _, _, orientation = imaging.probe(data)
        img = imaging.load_original(data, max_pixels_hint=360 * 360).convert("RGB")
    except BackdropError:
        return None
    img.thumbnail((360, 360))
    draw = ImageDraw.Draw(img)
    for label in labels:
        colour = (40, 200, 90) if label["name"] in kept else (160, 160, 160)
        for instance in label.get("instances", []):
            b = instance["box"]
            # Rekognition boxes are on the stored pixel grid; the thumbnail is the oriented image
            left, top, width, height = imaging.orient_box((b["left"], b["top"], b["width"], b["height"]), orientation)
            box = (left * img.width, top * img.height, (left + width) * img.width, (top + height) * img.height)
            draw.rectangle(box, outline=colour, width=3)
    return img
