"""Background sources and placement: the one schema of what goes behind the subject.

A job names its background once (`background`), and any image may override it (`images[i].background`):

- `{"source": "prompt"}` (the default): remove the background, then inpaint a new one from the
  job's prompt (two model calls per image);
- `{"source": "color", "color": "#FFFFFF"}`: a plain colour;
- `{"source": "image", "imageRef": "<ref from POST /uploads>"}`: the user's own background photo;
- `{"source": "transparent"}`: the cut-out alone, with its alpha (PNG or WebP);
- `{"source": "scene", "prompt": "...", "negativePrompt": "...", "model": "stability-image-core"}`:
  one background generated once for the whole batch by a text-to-image model, before any image
  is processed; every image of the job is composed onto it (an image's override is just
  `{"source": "scene"}`).

Colour, image, transparent and scene need only remove-background: one model call per image.

`placement` (compose recipes only) says how the subject sits on the output canvas: its size
(`width`/`height`) or `aspect` ("4:5"), how much of the frame the subject fills (`fill`, %),
where it is anchored (`anchor`), a margin (`margin`, % of each side) and whether it may be
enlarged past its own resolution (`allowUpscale`). Without a placement the output keeps the
original's size and the subject stays where it was.

Nothing here calls AWS; jobs.py checks background images in S3 at submit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.core import contracts
from chalicelib.core.contracts import BackgroundSource
from chalicelib.core.validation import Problems

COLOR_RE: Final = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})\Z")
COMPOSE_SOURCES: Final = frozenset(
    {BackgroundSource.COLOR, BackgroundSource.IMAGE, BackgroundSource.TRANSPARENT, BackgroundSource.SCENE}
)
ANCHORS: Final = (
    "center",
    "top",
    "bottom",
    "left",
    "right",
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
)
ASPECT_RE: Final = re.compile(r"^([1-9][0-9]{0,2}):([1-9][0-9]{0,2})\Z")
MAX_MARGIN_PERCENT: Final = 45.0
# a background photo must be at least this big on its shortest side (when the canvas size is not
# known at submit, i.e. each output keeps its original's size)
MIN_BACKGROUND_IMAGE_SIDE: Final = 256
MAX_BACKGROUND_IMAGES_PER_JOB: Final = 20


@dataclass(frozen=True)
class Background:
    """One image's background, as the workflow reads it from the job or the image's override."""

    source: BackgroundSource
    color: tuple[int, int, int] | None = None
    image_ref: str | None = None
    key: str | None = None  # the background photo's S3 key, derived by the server from its ref
    prompt: str | None = None  # scene: what to generate
    negative_prompt: str | None = None
    model: str | None = None  # scene: the text-to-image model's registry key

    @property
    def needs_inpaint(self) -> bool:
        return self.source is BackgroundSource.PROMPT

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source.value}
        if self.color is not None:
            out["color"] = hex_color(self.color)
        for name, value in (
            ("imageRef", self.image_ref),
            ("key", self.key),
            ("prompt", self.prompt),
            ("negativePrompt", self.negative_prompt),
            ("model", self.model),
        ):
            if value:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Background:
        if not data:
            return PROMPT_BACKGROUND
        color = data.get("color")
        return cls(
            BackgroundSource(data["source"]),
            parse_color(color) if isinstance(color, str) else None,
            data.get("imageRef") or None,
            data.get("key") or None,
            data.get("prompt") or None,
            data.get("negativePrompt") or None,
            data.get("model") or None,
        )


PROMPT_BACKGROUND: Final = Background(BackgroundSource.PROMPT)


def parse_color(text: str) -> tuple[int, int, int]:
    """ "#RGB" or "#RRGGBB" (any case) → (r, g, b); ValueError otherwise."""
    if not COLOR_RE.match(text):
        raise ValueError(f"{text[:40]!r} is not a hex colour like #FFFFFF or #fff")
    digits = text[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def hex_color(rgb: Sequence[int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def effective(override: Mapping[str, Any] | None, job_background: Mapping[str, Any] | None) -> Background:
    """An image's background: its own override, else the job's; a scene override is the job's scene."""
    if override:
        chosen = Background.from_dict(override)
        if chosen.source is BackgroundSource.SCENE and job_background:
            return Background.from_dict(job_background)
        return chosen
    return Background.from_dict(job_background)


def parse_background(
    where: str, raw: Any, problems: Problems, *, job_scene: Background | None = None, is_override: bool = False
) -> Background | None:
    """A `background` object of the request (the job's, or an image's override with `is_override`);
    every problem is added to `problems` with a stable `code`."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(where, f"{where} must be an object with a source", code=contracts.ErrorCode.BACKGROUND_INVALID)
        return None
    raw_source = raw.get("source")
    try:
        source = BackgroundSource(str(raw_source))
    except ValueError:
        names = ", ".join(s.value for s in BackgroundSource)
        problems.add(
            f"{where}.source",
            f"source must be one of {names}, not {str(raw_source)[:40]!r}",
            code=contracts.ErrorCode.BACKGROUND_INVALID,
        )
        return None
    # fields a source does not take: schemas.Background (one model per source) refuses them
    bad = len(problems)
    result = Background(source)
    if source is BackgroundSource.COLOR:
        color = raw.get("color")
        if not isinstance(color, str):
            problems.add(
                f"{where}.color",
                'a color background needs color, a hex colour such as "#FFFFFF"',
                code=contracts.ErrorCode.BACKGROUND_INVALID,
            )
        else:
            try:
                result = Background(source, color=parse_color(color.strip()))
            except ValueError as exc:
                problems.add(f"{where}.color", str(exc), code=contracts.ErrorCode.BACKGROUND_INVALID)
    elif source is BackgroundSource.IMAGE:
        ref = raw.get("imageRef")
        if not isinstance(ref, str) or not contracts.IMAGE_REF_RE.match(ref):
            problems.add(
                f"{where}.imageRef",
                "an image background needs imageRef, a ref returned by POST /uploads for the background photo",
                code=contracts.ErrorCode.BACKGROUND_INVALID,
            )
        else:
            result = Background(source, image_ref=ref)
    elif source is BackgroundSource.SCENE and is_override:
        if job_scene is None:
            problems.add(
                f"{where}.source",
                "an image can use the scene only when the job's background is a scene (one scene per batch)",
                code=contracts.ErrorCode.BACKGROUND_INVALID,
            )
        result = Background(source)
    elif source is BackgroundSource.SCENE:
        prompt = raw.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            problems.add(
                f"{where}.prompt",
                "a scene background needs prompt: what the batch's one shared background shows",
                code=contracts.ErrorCode.BACKGROUND_INVALID,
            )
            prompt = None
        negative = raw.get("negativePrompt")
        if negative is not None and not isinstance(negative, str):
            problems.add(f"{where}.negativePrompt", "negativePrompt must be a string")
            negative = None
        model = raw.get("model")
        if model is not None and not isinstance(model, str):
            problems.add(f"{where}.model", "model must be a scene model key from GET /models")
            model = None
        result = Background(source, prompt=prompt, negative_prompt=negative or None, model=model)
    return result if len(problems) == bad else None


@dataclass(frozen=True)
class Placement:
    """How the subject sits on the output canvas (compose recipes)."""

    width: int | None = None
    height: int | None = None
    aspect: tuple[int, int] | None = None
    fill: float | None = None  # % of the frame (inside the margins) the subject's longer extent takes
    anchor: str = "center"
    margin: float = 0.0  # % of the canvas on each side
    allow_upscale: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"anchor": self.anchor, "margin": self.margin, "allowUpscale": self.allow_upscale}
        if self.width is not None:
            out["width"] = self.width
        if self.height is not None:
            out["height"] = self.height
        if self.aspect is not None:
            out["aspect"] = f"{self.aspect[0]}:{self.aspect[1]}"
        if self.fill is not None:
            out["fill"] = self.fill
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Placement | None:
        if not data:
            return None
        aspect = data.get("aspect")
        match = ASPECT_RE.match(aspect) if isinstance(aspect, str) else None
        return cls(
            width=int(data["width"]) if data.get("width") is not None else None,
            height=int(data["height"]) if data.get("height") is not None else None,
            aspect=(int(match.group(1)), int(match.group(2))) if match else None,
            fill=float(data["fill"]) if data.get("fill") is not None else None,
            anchor=str(data.get("anchor") or "center"),
            margin=float(data.get("margin") or 0.0),
            allow_upscale=bool(data.get("allowUpscale", False)),
        )

    def canvas_size(self, subject_canvas: tuple[int, int]) -> tuple[int, int]:
        """The output size: the given width x height, or the original's size (`subject_canvas`)
        trimmed to the aspect ratio (never enlarged)."""
        if self.width and self.height:
            return self.width, self.height
        width, height = subject_canvas
        if self.aspect:
            ratio = self.aspect[0] / self.aspect[1]
            if self.width:
                return self.width, max(1, round(self.width / ratio))
            if self.height:
                return max(1, round(self.height * ratio)), self.height
            # the largest canvas of that ratio inside the original's size
            if width / height > ratio:
                return max(1, round(height * ratio)), height
            return width, max(1, round(width / ratio))
        return width, height


def _number(where: str, raw: Mapping[str, Any], name: str, low: float, high: float, problems: Problems) -> Any:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        problems.add(
            f"{where}.{name}",
            f"{name} must be a number from {low:g} to {high:g}",
            code=contracts.ErrorCode.PLACEMENT_INVALID,
        )
        return None
    return value


def parse_placement(raw: Any, problems: Problems, where: str = "placement") -> Placement | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(where, "placement must be an object", code=contracts.ErrorCode.PLACEMENT_INVALID)
        return None
    bad = len(problems)
    side = contracts.MAX_OUTPUT_SIDE
    width = _number(where, raw, "width", contracts.MIN_SOURCE_SIDE, side, problems)
    height = _number(where, raw, "height", contracts.MIN_SOURCE_SIDE, side, problems)
    for name, value in (("width", width), ("height", height)):
        if value is not None and not float(value).is_integer():
            problems.add(f"{where}.{name}", f"{name} must be a whole number of pixels")
    if width and height and width * height > contracts.MAX_OUTPUT_PIXELS:
        problems.add(
            where,
            f"{int(width)}x{int(height)} is more than {contracts.MAX_OUTPUT_PIXELS:,} px",
            code=contracts.ErrorCode.PLACEMENT_INVALID,
        )
    aspect = raw.get("aspect")
    parsed_aspect = None
    if aspect is not None:
        match = ASPECT_RE.match(aspect) if isinstance(aspect, str) else None
        if not match:
            problems.add(
                f"{where}.aspect",
                'aspect must be a ratio such as "1:1" or "4:5"',
                code=contracts.ErrorCode.PLACEMENT_INVALID,
            )
        else:
            parsed_aspect = (int(match.group(1)), int(match.group(2)))
            if width and height:
                problems.add(
                    f"{where}.aspect",
                    "give width and height, or aspect (with at most one side), not all three",
                    code=contracts.ErrorCode.PLACEMENT_INVALID,
                )
    if (width is None) != (height is None) and parsed_aspect is None:
        problems.add(
            where,
            "give both width and height, or one of them with aspect",
            code=contracts.ErrorCode.PLACEMENT_INVALID,
        )
    fill = _number(where, raw, "fill", 1, 100, problems)
    margin = _number(where, raw, "margin", 0, MAX_MARGIN_PERCENT, problems)
    anchor = raw.get("anchor", "center")
    if anchor not in ANCHORS:
        problems.add(
            f"{where}.anchor",
            f"anchor must be one of {', '.join(ANCHORS)}",
            code=contracts.ErrorCode.PLACEMENT_INVALID,
        )
    upscale = raw.get("allowUpscale", False)
    if not isinstance(upscale, bool):
        problems.add(f"{where}.allowUpscale", "allowUpscale must be true or false")
    if len(problems) != bad:
        return None
    return Placement(
        width=int(width) if width is not None else None,
        height=int(height) if height is not None else None,
        aspect=parsed_aspect,
        fill=float(fill) if fill is not None else None,
        anchor=str(anchor),
        margin=float(margin or 0.0),
        allow_upscale=bool(upscale),
    )
