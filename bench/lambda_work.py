"""Per-image Lambda work: prepare + finalize beside the bare Pillow floor, time and peak RSS.

Each case runs in a fresh child process (so peak RSS is that case's alone) with in-memory
stand-ins for S3 and the job store, so the figure is Backdrop's own work, not moto's. The floor is
the least any implementation must do for one image: decode the original, resize it to the model
canvas, encode it; then decode the model's answer, resize it back to the original size, encode
the result.
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
from typing import Any

from PIL import Image, ImageDraw

CASES = {"12MP JPEG": (4000, 3000, "JPEG"), "4MP PNG": (2309, 1732, "PNG"), "1MP JPEG": (1155, 866, "JPEG")}
REPEATS = 3


def make_photo(width: int, height: int, fmt: str) -> bytes:
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.3, height * 0.2, width * 0.7, height * 0.9), fill=(200, 30, 40))
    buf = io.BytesIO()
    img.save(buf, fmt, quality=90) if fmt == "JPEG" else img.save(buf, fmt, compress_level=6)
    return buf.getvalue()


class MemoryS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # boto3's parameter names
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = Body
        return {}


class NoStore:
    """The job store's image transitions, recorded nowhere: the figure is the image work alone."""

    def start_image(self, *_: Any) -> bool:
        return True

    def set_image_status(self, *_: Any, **__: Any) -> bool:
        return True


def floor(data: bytes, canvas: tuple[int, int]) -> float:
    original = Image.open(io.BytesIO(data))
    original.load()
    small = original.convert("RGB").resize(canvas, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "PNG", compress_level=1)  # the request image, as Backdrop encodes it
    answer = Image.open(io.BytesIO(buf.getvalue()))
    answer.load()
    from chalicelib import imaging

    imaging.encode(answer.resize(original.size, Image.Resampling.LANCZOS), "png")  # the same encoder settings
    return 0.0  # timed by the caller


def backdrop(data: bytes, spent_by_step: dict[str, float] | None = None) -> float:
    """Seconds spent in prepare + finalize (the issue's measure; build-mask is recorded in
    `spent_by_step`, and the stand-in's work is excluded)."""
    from backend.local.bedrock_standin import StandInBedrock
    from chalicelib import contracts
    from chalicelib.workflow import Steps

    s3, bucket = MemoryS3(), "bench"
    job_id, image_id = "20261124T000000Z-000000000000", "a" * 32
    key = contracts.upload_key("owner", contracts.image_ref_of("b" * 32, image_id, "jpg"))
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    event = {
        "jobId": job_id,
        "owner": "owner",
        "bucket": bucket,
        "settings": {
            "model": "stability-inpaint",
            "prompt": "a studio",
            "mode": "PRECISE",
            "seed": 3,
            "outputFormat": "png",
            "reRolls": 0,  # one finalize: the figure is one attempt's work
        },
        "image": {"imageId": image_id, "key": key, "name": "bench.jpg"},
    }
    steps = Steps(s3, NoStore())
    spent = {} if spent_by_step is None else spent_by_step

    def timed(step: Any) -> Any:
        started = time.perf_counter()
        result = step(event)
        spent[step.__name__] = time.perf_counter() - started
        return result

    prepared = timed(steps.prepare)
    # the model's answers are prepared outside the measured steps' work (they are Bedrock's)
    standin = StandInBedrock()

    def answer(call: dict[str, str]) -> None:
        body = json.loads(s3.objects[contracts.split_s3_uri(call["requestUri"])])
        s3.objects[contracts.split_s3_uri(call["responseUri"])] = json.dumps(standin(call["modelId"], body)).encode()

    answer(prepared["call"])
    answer(timed(steps.build_mask)["call"])
    timed(steps.finalize)
    return spent["prepare"] + spent["finalize"]


def child(case: str, which: str) -> None:
    """Run one measurement; print JSON {ms, peak_mb}."""
    width, height, fmt = CASES[case]
    data = make_photo(width, height, fmt)
    from chalicelib import imaging
    from chalicelib.models.registry import get_model

    geometry = imaging.fit_canvas(width, height, get_model("stability-inpaint").image_limits)
    canvas = (geometry.canvas_width, geometry.canvas_height)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best, mask_best = float("inf"), float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        by_step: dict[str, float] = {}
        spent = floor(data, canvas) if which == "floor" else backdrop(data, by_step)
        best = min(best, spent or time.perf_counter() - started)
        mask_best = min(mask_best, by_step.get("build_mask", 0.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"ms": best * 1000, "build_mask_ms": mask_best * 1000, "peak_mb": peak / 1024, "base_mb": base_rss / 1024}
        )
    )


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
