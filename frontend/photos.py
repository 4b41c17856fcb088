"""Photo previews for the front end, read with the same checks the workflow makes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from chalicelib.core.errors import BackdropError
from chalicelib.imaging import images as imaging

PREVIEW_SIDE = 360


@dataclass(frozen=True)
class Preview:
    """A small copy of the photo as it is seen (EXIF orientation applied), made once per photo."""

    image: Image.Image
    orientation: int


def preview(data: bytes, side: int = PREVIEW_SIDE) -> Preview | None:
    """The photo's preview; None if it cannot be read."""
    try:
        _, _, orientation = imaging.probe(data)
        img = imaging.load_original(data, max_pixels_hint=side * side).convert("RGB")
    except BackdropError:
        return None
    img.thumbnail((side, side))
    return Preview(img, orientation)


def with_boxes(shown: Preview, labels: list[dict[str, Any]], kept: list[str]) -> Image.Image:
    """The preview with each label's boxes drawn on it: green if kept, grey if not."""
    img = shown.image.copy()
    draw = ImageDraw.Draw(img)
    for label in labels:
        colour = (40, 200, 90) if label["name"] in kept else (160, 160, 160)
        for instance in label.get("instances", []):
            b = instance["box"]
            # Rekognition boxes are on the stored pixel grid; the preview is the oriented image
            left, top, width, height = imaging.orient_box(
                (b["left"], b["top"], b["width"], b["height"]), shown.orientation
            )
            box = (left * img.width, top * img.height, (left + width) * img.width, (top + height) * img.height)
            draw.rectangle(box, outline=colour, width=3)
    return img


def thumbnail(data: bytes, labels: list[dict[str, Any]], kept: list[str]) -> Image.Image | None:
    """The photo as it is seen (EXIF orientation applied), boxes drawn on it; None if it cannot be read."""
    shown = preview(data)
    return None if shown is None else with_boxes(shown, labels, kept)
