"""A local stand-in for the Bedrock image models, for the tests and the local stack only.

It enforces each family's documented request contract (the same limits the adapters enforce,
taken from the model docs). Remove-background answers with a real cut-out from a local engine
(backend/local/cutout.py: the U²-Net-p model in the local stack; the classical estimate by
default, which keeps contract tests fast); inpaint and outpaint answer with the subject over a
plain synthetic backdrop derived from the prompt, since no generative model can be had offline.
Every output PNG names what made it in its standard `Source` text chunk
(chalicelib.core.contracts.PROVENANCE_TEXT_KEY), which Backdrop carries into results and reports, so
no one mistakes a stand-in backdrop for generated art or the local model for Bedrock.

Fault injection, written into a prompt (a per-image prompt override targets one image):
`[filter:prompt]` / `[filter:output]` answer with the family's content-filter shape;
`[throttle:N]`, `[timeout:N]`, `[unavailable:N]` make the first N calls for that exact request
raise ThrottlingException / ModelTimeoutException / ServiceUnavailableException.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from PIL import Image, PngImagePlugin

from backend.local.cutout import CutoutEngine, ForegroundEstimate
from backend.local.sfn_hooks import BedrockError
from chalicelib.core.contracts import PROVENANCE_TEXT_KEY

_FAULT = re.compile(r"\[(throttle|timeout|unavailable):(\d+)\]")
_FAULT_CODES = {
    "throttle": ("ThrottlingException", "Too many requests, please wait before trying again."),
    "timeout": ("ModelTimeoutException", "Model has timed out in processing the request."),
    "unavailable": ("ServiceUnavailableException", "Service unavailable."),
}
STABILITY_FILTERS = {"prompt": "Filter reason: prompt", "output": "Filter reason: output image"}
AMAZON_FILTER_ERRORS = {
    "prompt": "This request has been blocked by our content filters. Please adjust your text prompt to submit a new request.",
    "output": "All of the generated images have been blocked by our content filters.",
}


def _invalid(message: str) -> BedrockError:
    return BedrockError(
        "ValidationException", f"Malformed input request: {message}, please reformat your input and try again."
    )


def _decode_image(value: Any, field: str) -> Image.Image:
    if not isinstance(value, str) or not value:
        raise _invalid(f"#/{field}: expected a base64 string")
    try:
        img = Image.open(io.BytesIO(base64.b64decode(value, validate=True)))
        img.load()
    except (binascii.Error, ValueError, OSError) as exc:
        raise _invalid(f"#/{field}: not a decodable image ({exc})") from exc
    if img.format not in ("PNG", "JPEG", "WEBP"):
        raise _invalid(f"#/{field}: unsupported image format {img.format}")
    return img


def _check_keys(body: dict[str, Any], required: set[str], optional: set[str], where: str = "") -> None:
    if not isinstance(body, dict):
        raise _invalid(f"#{where}: expected an object")
    missing = required - set(body)
    extra = set(body) - required - optional
    if missing:
        raise _invalid(f"#{where}: required key(s) {sorted(missing)} not found")
    if extra:
        raise _invalid(f"#{where}: extraneous key(s) {sorted(extra)} are not permitted")


def _check_text(value: Any, field: str, max_len: int, min_len: int = 0) -> str:
    if not isinstance(value, str):
        raise _invalid(f"#/{field}: expected type: String")
    if not min_len <= len(value) <= max_len:
        raise _invalid(f"#/{field}: expected length {min_len}..{max_len}, actual: {len(value)}")
    return value


def _check_int(value: Any, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"#/{field}: expected an integer in {low}..{high}, actual: {value!r}")
    return value


def _check_mask(mask: Image.Image, size: tuple[int, int], field: str) -> Image.Image:
    grey = mask.convert("L")
    colours = {value for _, value in (grey.getcolors(256) or [])}
    if not colours <= {0, 255}:
        raise _invalid(f"#/{field}: mask must contain only black (0) and white (255) pixels")
    return grey if grey.size == size else grey.resize(size, Image.Resampling.NEAREST)


def _backdrop(size: tuple[int, int], prompt: str, seed: int, variant: int) -> Image.Image:
    digest = hashlib.sha256(f"{prompt}|{seed}|{variant}".encode()).digest()
    top, bottom = digest[0:3], digest[3:6]
    column = Image.new("RGB", (1, 256))
    for y in range(256):
        column.putpixel((0, y), tuple(int(top[i] + (bottom[i] - top[i]) * y / 255) for i in range(3)))
    return column.resize(size, Image.Resampling.BILINEAR)


def _png(img: Image.Image, produced_by: str) -> str:
    info = PngImagePlugin.PngInfo()
    info.add_text(PROVENANCE_TEXT_KEY, produced_by)
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info, compress_level=1)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _check_stability_image(img: Image.Image, field: str) -> None:
    # Stability image services input limits (docs/aws-notes.md#n3-stability-input-limits)
    w, h = img.size
    if min(w, h) < 64:
        raise _invalid(f"#/{field}: every side must be at least 64 px, got {w}x{h}")
    if w * h > 9_437_184:
        raise _invalid(f"#/{field}: at most 9,437,184 pixels, got {w * h:,}")
    if not 1 / 2.5 - 1e-9 <= w / h <= 2.5 + 1e-9:
        raise _invalid(f"#/{field}: aspect ratio must be between 1:2.5 and 2.5:1, got {w}x{h}")


TITAN_SIZES = {
    (1024, 1024),
    (768, 768),
    (512, 512),
    (768, 1152),
    (384, 576),
    (1152, 768),
    (576, 384),
    (768, 1280),
    (384, 640),
    (1280, 768),
    (640, 384),
    (896, 1152),
    (448, 576),
    (1152, 896),
    (576, 448),
    (768, 1408),
    (384, 704),
    (1408, 768),
    (704, 384),
    (640, 1408),
    (320, 704),
    (1408, 640),
    (704, 320),
    (1152, 640),
    (1173, 640),
}


# Stable Image Core's output size per aspect ratio: each side 640-1,536 px, about one megapixel
# (UNCONFIRMED exact sizes; docs/aws-notes.md#n59-stable-image-core-text-to-image)
TEXT_TO_IMAGE_SIZES = {
    "21:9": (1536, 640),
    "16:9": (1344, 768),
    "3:2": (1216, 832),
    "5:4": (1152, 896),
    "1:1": (1024, 1024),
    "4:5": (896, 1152),
    "2:3": (832, 1216),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}


class StandInBedrock:
    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        images_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        cutout: CutoutEngine | None = None,
        region: str | None = None,
    ) -> None:
        self.cutout = cutout or ForegroundEstimate()
        # the Region the calls come from (the state machine's): a model not offered there is
        # refused as Bedrock refuses it; None answers from anywhere (the steps' unit tests)
        self.region = region
        self.latency_s = latency_s
        self.images_per_minute = images_per_minute
        self.clock = clock
        self.sleep = sleep
        self.calls: collections.deque[tuple[str, str]] = collections.deque(maxlen=1000)  # the latest (model, texts)
        self.throttled = 0  # calls refused by the quota (ThrottlingException raised)
        self.answered = 0  # calls answered with a body
        self.answer_window: tuple[float, float] | None = None  # clock() of the first and the last answer
        self._faults_seen: dict[str, int] = {}
        self._tokens = float(images_per_minute or 0)
        self._refilled = clock()
        self._lock = threading.Lock()

    def produced_by(self, step: str) -> str:
        """What made an output, written into it: names the local engine and the stand-in plainly."""
        if step == "remove-background":
            return f"Backdrop local stack: cut-out by the {self.cutout.name}, not Bedrock"
        if step == "text-to-image":
            return "Backdrop local stack: scene by the text-to-image stand-in (a plain synthetic backdrop, not generated art, not Bedrock)"
        return (
            f"Backdrop local stack: background by the {step} stand-in (a plain synthetic backdrop, not generated "
            f"art, not Bedrock); subject from the {self.cutout.name}"
        )

    # ---------------------------------------------------------------- quota and faults

    def empty_quota(self) -> None:
        """Start from an empty token bucket (by default it starts full, a burst of one minute)."""
        with self._lock:
            self._tokens = 0.0
            self._refilled = self.clock()

    def _take_token(self) -> None:
        if not self.images_per_minute:
            return
        with self._lock:
            now = self.clock()
            rate = self.images_per_minute / 60.0
            self._tokens = min(self.images_per_minute, self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens < 1:
                self.throttled += 1
                raise BedrockError("ThrottlingException", "Too many requests, please wait before trying again.")
            self._tokens -= 1

    def _inject_faults(self, model_id: str, body: dict[str, Any], texts: str) -> None:
        match = _FAULT.search(texts)
        if not match:
            return
        kind, count = match.group(1), int(match.group(2))
        key = hashlib.sha256((model_id + json.dumps(body, sort_keys=True)).encode()).hexdigest()
        with self._lock:
            seen = self._faults_seen.get(key, 0)
            self._faults_seen[key] = seen + 1
        if seen < count:
            raise BedrockError(*_FAULT_CODES[kind])

    def _check_region(self, model_id: str) -> None:
        """Bedrock answers a model id the Region does not offer (a bare id outside its on-demand
        Regions, a `us.` profile outside its source Regions) with ValidationException "The
        provided model identifier is invalid." (docs/aws-notes.md#n72-model-availability-per-region).
        Where a model is offered comes from models.json, as the deploy's fallback reads it."""
        if self.region is None:
            return
        regions = offered_regions(model_id)
        if regions is not None and self.region not in regions:
            raise BedrockError("ValidationException", "The provided model identifier is invalid.")

    # ---------------------------------------------------------------- entry point

    def __call__(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        texts = " ".join(str(v) for v in _texts(body))
        with self._lock:
            self.calls.append((model_id, texts))
        if self.latency_s:
            self.sleep(self.latency_s)
        if "remove-background" in model_id:
            handler = self._remove_background
        elif "inpaint" in model_id:
            handler = self._inpaint
        elif "stable-image-core" in model_id:
            handler = self._text_to_image
        elif "titan-image-generator" in model_id or "nova-canvas" in model_id:
            handler = self._outpaint
        else:
            raise BedrockError(
                "ResourceNotFoundException", f"Could not resolve the foundation model from model identifier {model_id}"
            )
        self._check_region(model_id)
        self._inject_faults(model_id, body, texts)
        self._take_token()
        answer = handler(model_id, body, texts)
        with self._lock:
            self.answered += 1
            now = self.clock()
            self.answer_window = (self.answer_window[0] if self.answer_window else now, now)
        return answer

    def _remove_background(self, model_id: str, body: dict[str, Any], texts: str) -> dict[str, Any]:
        _check_keys(body, {"image"}, {"output_format"})
        if body.get("output_format", "png") not in ("png", "webp", "jpeg"):
            raise _invalid("#/output_format: must be one of jpeg, png, webp")
        img = _decode_image(body["image"], "image")
        _check_stability_image(img, "image")
        cutout = img.convert("RGBA")
        cutout.putalpha(self.cutout.alpha(img))
        return {"images": [_png(cutout, self.produced_by("remove-background"))], "seeds": [0], "finish_reasons": [None]}

    def _inpaint(self, model_id: str, body: dict[str, Any], texts: str) -> dict[str, Any]:
        _check_keys(
            body, {"image", "prompt"}, {"mask", "negative_prompt", "grow_mask", "seed", "output_format", "style_preset"}
        )
        prompt = _check_text(body["prompt"], "prompt", 10_000)
        if "negative_prompt" in body:
            _check_text(body["negative_prompt"], "negative_prompt", 10_000)
        if "grow_mask" in body:
            _check_int(body["grow_mask"], "grow_mask", 0, 20)
        seed = _check_int(body.get("seed", 0), "seed", 0, 4_294_967_294)
        if body.get("output_format", "png") not in ("png", "webp", "jpeg"):
            raise _invalid("#/output_format: must be one of jpeg, png, webp")
        img = _decode_image(body["image"], "image")
        _check_stability_image(img, "image")
        if "mask" in body:
            regenerate = _check_mask(_decode_image(body["mask"], "mask"), img.size, "mask")
        elif img.mode == "RGBA":  # no mask: transparent pixels are inpainted
            regenerate = img.getchannel("A").point(lambda v: 255 if v < 128 else 0)
        else:
            raise _invalid("#/mask: a mask or an image with transparency is required")
        for which, reason in STABILITY_FILTERS.items():
            if f"[filter:{which}]" in texts:
                return {"finish_reasons": [reason]}
        seed = seed or int.from_bytes(hashlib.sha256(body["image"][:64].encode()).digest()[:4], "big") or 1
        out = Image.composite(_backdrop(img.size, prompt, seed, 0), img.convert("RGB"), regenerate)
        return {"images": [_png(out, self.produced_by("inpaint"))], "seeds": [seed], "finish_reasons": [None]}

    def _text_to_image(self, model_id: str, body: dict[str, Any], texts: str) -> dict[str, Any]:
        _check_keys(body, {"prompt"}, {"negative_prompt", "aspect_ratio", "seed", "output_format", "mode"})
        prompt = _check_text(body["prompt"], "prompt", 10_000)
        if "negative_prompt" in body:
            _check_text(body["negative_prompt"], "negative_prompt", 10_000)
        seed = _check_int(body.get("seed", 0), "seed", 0, 4_294_967_294)
        if body.get("output_format", "png") not in ("png", "jpeg"):
            raise _invalid("#/output_format: must be one of jpeg, png")
        if body.get("mode", "text-to-image") != "text-to-image":
            raise _invalid("#/mode: must be text-to-image")
        ratio = body.get("aspect_ratio", "1:1")
        if ratio not in TEXT_TO_IMAGE_SIZES:
            raise _invalid(f"#/aspect_ratio: must be one of {', '.join(TEXT_TO_IMAGE_SIZES)}")
        for which, reason in STABILITY_FILTERS.items():
            if f"[filter:{which}]" in texts:
                return {"finish_reasons": [reason]}
        seed = seed or 1
        scene = _backdrop(TEXT_TO_IMAGE_SIZES[ratio], prompt, seed, 0)
        return {"images": [_png(scene, self.produced_by("text-to-image"))], "seeds": [seed], "finish_reasons": [None]}

    def _outpaint(self, model_id: str, body: dict[str, Any], texts: str) -> dict[str, Any]:
        nova = "nova-canvas" in model_id
        text_max = 1024 if nova else 512
        _check_keys(body, {"taskType", "outPaintingParams"}, {"imageGenerationConfig"})
        if body["taskType"] != "OUTPAINTING":
            raise _invalid("#/taskType: only OUTPAINTING is answered by the stand-in")
        params = body["outPaintingParams"]
        _check_keys(
            params,
            {"image"},
            {"text", "negativeText", "maskPrompt", "maskImage", "outPaintingMode", "returnMask"},
            "/outPaintingParams",
        )
        if ("maskPrompt" in params) == ("maskImage" in params):
            raise _invalid("#/outPaintingParams: exactly one of maskPrompt and maskImage is required")
        if "text" in params:
            _check_text(params["text"], "outPaintingParams/text", text_max, 1)
        elif not nova:
            raise _invalid("#/outPaintingParams: required key [text] not found")
        if "negativeText" in params:
            _check_text(params["negativeText"], "outPaintingParams/negativeText", text_max, 1)
        if params.get("outPaintingMode", "DEFAULT") not in ("DEFAULT", "PRECISE"):
            raise _invalid("#/outPaintingParams/outPaintingMode: must be DEFAULT or PRECISE")
        config = body.get("imageGenerationConfig", {})
        _check_keys(
            config,
            set(),
            {"numberOfImages", "quality", "cfgScale", "seed", "width", "height"},
            "/imageGenerationConfig",
        )
        count = _check_int(config.get("numberOfImages", 1), "imageGenerationConfig/numberOfImages", 1, 5)
        if config.get("quality", "standard") not in ("standard", "premium"):
            raise _invalid("#/imageGenerationConfig/quality: must be standard or premium")
        cfg = config.get("cfgScale", 8.0)
        if not isinstance(cfg, (int, float)) or not 1.1 <= cfg <= 10.0:
            raise _invalid(f"#/imageGenerationConfig/cfgScale: expected 1.1..10.0, actual: {cfg!r}")
        seed = _check_int(
            config.get("seed", 0), "imageGenerationConfig/seed", 0, 858_993_459 if nova else 2_147_483_646
        )
        img = _decode_image(params["image"], "outPaintingParams/image")
        w, h = img.size
        if nova:
            if not (320 <= w <= 4096 and 320 <= h <= 4096) or w * h > 4_194_304 or not 0.25 <= w / h <= 4:
                raise _invalid(f"#/outPaintingParams/image: unsupported size {w}x{h}")
            if img.mode in ("RGBA", "LA") and img.getchannel("A").getextrema()[0] < 255:
                raise _invalid("#/outPaintingParams/image: transparent pixels are not allowed")
        elif (w, h) not in TITAN_SIZES:
            raise _invalid(f"#/outPaintingParams/image: {w}x{h} is not a supported size")
        if "maskImage" in params:
            keep = _check_mask(_decode_image(params["maskImage"], "outPaintingParams/maskImage"), img.size, "maskImage")
            keep = keep.point(lambda v: 255 - v)  # black = the masked region, which OUTPAINTING keeps
        else:
            _check_text(params["maskPrompt"], "outPaintingParams/maskPrompt", text_max, 1)
            keep = self.cutout.alpha(img)
        for which, error in AMAZON_FILTER_ERRORS.items():
            if f"[filter:{which}]" in texts:
                return {"images": [], "error": error}
        prompt = params.get("text", "")
        produced_by = self.produced_by("OUTPAINTING")
        images = [
            _png(Image.composite(img.convert("RGB"), _backdrop(img.size, prompt, seed, i), keep), produced_by)
            for i in range(count)
        ]
        return {"images": images, "error": None}


def offered_regions(model_id: str) -> frozenset[str] | None:
    """The Regions models.json says a model id (as this deployment names it) can be called from;
    None for an id it does not record Regions for."""
    from chalicelib.models import registry

    for spec in registry.all_models():
        if model_id in spec.model_ids.values():
            # an id from BACKDROP_MODEL_IDS is the deployer's word: models.json's Regions describe its own
            return None if registry.ids_overridden(spec) or not spec.regions else frozenset(spec.regions)
    return None


def _texts(body: Any) -> list[str]:
    """Every human text field in a request (prompts), where fault triggers may be written."""
    out: list[str] = []
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("prompt", "negative_prompt", "text", "negativeText") and isinstance(value, str):
                out.append(value)
            elif isinstance(value, dict):
                out.extend(_texts(value))
    return out


LIFECYCLE_UNAVAILABLE = (
    "the local stack has no Bedrock control plane (GetFoundationModel): model lifecycles come from "
    "chalicelib/models/models.json"
)


def install_control_plane() -> Callable[[], None]:
    """Answer Bedrock GetFoundationModel on the local moto server with a plain 404.

    moto does not implement it (docs/aws-notes.md#n37-moto-bedrock-control-plane), so each call
    would be a 500 with a server traceback, retried by the SDK; the app's lifecycle check falls back
    to the registry on any error, so a clean ResourceNotFoundException gives the same answer
    quietly (`make run` says so once, at start)."""
    from moto.bedrock.exceptions import ResourceNotFoundException
    from moto.bedrock.responses import BedrockResponse

    def get_foundation_model(self: Any) -> str:
        raise ResourceNotFoundException(LIFECYCLE_UNAVAILABLE)

    previous = getattr(BedrockResponse, "get_foundation_model", None)
    BedrockResponse.get_foundation_model = get_foundation_model  # type: ignore[attr-defined]

    def uninstall() -> None:
        if previous is None:
            del BedrockResponse.get_foundation_model  # type: ignore[attr-defined]
        else:
            BedrockResponse.get_foundation_model = previous  # type: ignore[attr-defined]

    return uninstall
