"""Per-image Lambda work: prepare + finalize beside a hand-written Pillow floor, in CPU time.

Each case runs in its own child process. Backdrop runs once first, alone, so the process's peak
RSS is Backdrop's (reported against the memory the finalize Lambda is configured with); then the
floor and Backdrop alternate, SAMPLES times each (which goes first alternates too), and the median
of each step's CPU seconds (time.process_time: this process's own, so another engineer's load on
the machine moves it far less than wall time) is reported with the ratio per step.

The floor is the least any implementation of the same design must do for one image on the
Stability path in PRECISE mode, written as plain Pillow calls, independently of chalicelib:
- prepare: decode the original (DCT-scaled when it is much larger than the model canvas), resize
  it to the canvas, encode the request image, base64 it into the request JSON;
- finalize: parse the model's answer (JSON, base64, PNG), decode the original again (finalize is
  another Lambda), resize the answer to the original size, upscale the subject alpha and paste
  the original subject back, encode the result in the output format with the delivered file's
  quality, chroma subsampling and Huffman optimisation (JPEG_SETTINGS).
The model's answers and the subject alpha are Backdrop's own, from its first run. build-mask has
no counterpart in the floor and is reported on its own.

Inputs are photo-like (bench/photos.py): a real photo upscaled with grain and texture.
"""

from __future__ import annotations

import base64
import io
import json
import resource
import statistics
import sys
import time
from typing import Any

from PIL import Image

from bench.photos import photo_like

# name: (width, height, input format, output format): the result follows the original's format
CASES = {
    "24MP JPEG": (6000, 4000, "JPEG", "jpeg"),
    "12MP JPEG": (4000, 3000, "JPEG", "jpeg"),
    "4MP PNG": (2309, 1732, "PNG", "png"),
    "1MP JPEG": (1155, 866, "JPEG", "jpeg"),
}
# enough interleaved samples that the median holds still under another process's load
SAMPLES = 7
# the floor's encoder: the delivered file's quality, subsampling and Huffman optimisation
# (chalicelib.imaging.images.JPEG_QUALITY: 4:4:4, `optimize`), written out here so the floor does not
# move when Backdrop's encoder changes. `optimize` is the product's necessary work, not overhead:
# without it the delivered file is 12-16 % larger (docs/performance.md, the encoder table).
JPEG_SETTINGS = {"quality": 95, "subsampling": 0, "optimize": True}
FINALIZE_MEMORY_MB = 1769  # chalicelib/core/functions.py: finalize's memory_mb
JOB_ID, IMAGE_ID, OWNER, BUCKET = "20261124T000000Z-000000000000", "a" * 32, "owner", "bench"


class MemoryS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # boto3's parameter names
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = Body
        return {}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        import datetime

        self.objects[(Bucket, Key)]  # a KeyError for a missing object, as S3's 404
        return {"LastModified": datetime.datetime.now(datetime.UTC)}

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        for item in Delete["Objects"]:
            self.objects.pop((Bucket, item["Key"]), None)
        return {}


class NoStore:
    """The job store's image transitions, recorded nowhere: the figure is the image work alone."""

    def start_image(self, *_: Any) -> bool:
        return True

    def set_image_status(self, *_: Any, **__: Any) -> bool:
        return True

    def get_image(self, *_: Any) -> None:
        return None


def _event(key: str, output_format: str) -> dict[str, Any]:
    return {
        "jobId": JOB_ID,
        "owner": OWNER,
        "bucket": BUCKET,
        "settings": {
            "model": "stability-inpaint",
            "prompt": "a studio",
            "mode": "PRECISE",
            "seed": 3,
            "outputFormat": output_format,
            "reRolls": 0,  # one finalize: the figure is one attempt's work
        },
        "image": {"imageId": IMAGE_ID, "key": key, "name": "bench"},
    }


def backdrop(data: bytes, output_format: str) -> tuple[dict[str, float], dict[tuple[str, str], bytes]]:
    """CPU seconds per step (the stand-in's work excluded) and the scratch objects it left behind
    before finalize discarded them (the model's answers, the subject alpha)."""
    from backend.local.bedrock_standin import StandInBedrock
    from chalicelib.core import contracts
    from chalicelib.workflow.steps import Steps

    s3 = MemoryS3()
    key = contracts.upload_key(OWNER, contracts.image_ref_of("b" * 32, IMAGE_ID, "jpg"))
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    event = _event(key, output_format)
    steps = Steps(s3, NoStore())  # type: ignore[arg-type]
    spent: dict[str, float] = {}

    def timed(step: Any) -> Any:
        started = time.process_time()
        result = step(event)
        spent[step.__name__] = time.process_time() - started
        return result

    standin = StandInBedrock()

    def answer(call: dict[str, str]) -> None:  # Bedrock's work: outside the measured steps
        body = json.loads(s3.objects[contracts.split_s3_uri(call["requestUri"])])
        s3.objects[contracts.split_s3_uri(call["responseUri"])] = json.dumps(standin(call["modelId"], body)).encode()

    answer(timed(steps.prepare)["call"])
    answer(timed(steps.build_mask)["call"])
    scratch = dict(s3.objects)
    timed(steps.finalize)
    return spent, scratch


def floor_prepare(data: bytes, canvas: tuple[int, int]) -> bytes:
    original = Image.open(io.BytesIO(data))
    if original.format == "JPEG":
        original.draft("RGB", canvas)  # DCT scaling: decode at no less than the canvas size
    small = original.convert("RGB").resize(canvas, Image.Resampling.LANCZOS)
    png = io.BytesIO()
    small.save(png, "PNG", compress_level=1)
    return json.dumps({"image": base64.b64encode(png.getvalue()).decode("ascii")}).encode()


def floor_finalize(data: bytes, response: bytes, alpha_png: bytes, output_format: str) -> bytes:
    answer = Image.open(io.BytesIO(base64.b64decode(json.loads(response)["images"][0])))
    original = Image.open(io.BytesIO(data)).convert("RGB")
    result = answer.convert("RGB").resize(original.size, Image.Resampling.LANCZOS)
    alpha = Image.open(io.BytesIO(alpha_png)).convert("L").resize(original.size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    if output_format == "jpeg":
        Image.composite(original, result, alpha).save(out, "JPEG", **JPEG_SETTINGS)
    else:
        Image.composite(original, result, alpha).save(out, "PNG")
    return out.getvalue()


def child(case: str, samples: int = SAMPLES) -> None:
    """Measure one case; print JSON."""
    from chalicelib.core import contracts
    from chalicelib.imaging import images as imaging
    from chalicelib.models import registry
    from chalicelib.workflow.steps import SUBJECT_ALPHA

    width, height, fmt, output_format = CASES[case]
    data = photo_like(width, height, fmt)
    spec = registry.get_model("stability-inpaint")
    geometry = imaging.fit_canvas(width, height, spec.image_limits)
    canvas = (geometry.canvas_width, geometry.canvas_height)
    first, scratch = backdrop(data, output_format)  # alone: the peak RSS so far is Backdrop's
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    response = scratch[(BUCKET, contracts.response_key(JOB_ID, IMAGE_ID, registry.adapter_for(spec).steps[-1]))]
    alpha = scratch[(BUCKET, contracts.work_key(JOB_ID, IMAGE_ID, SUBJECT_ALPHA))]

    def floor() -> tuple[float, float]:
        started = time.process_time()
        floor_prepare(data, canvas)
        middle = time.process_time()
        floor_finalize(data, response, alpha, output_format)
        return middle - started, time.process_time() - middle

    floors: list[tuple[float, float]] = []
    ours: list[dict[str, float]] = []
    for round_ in range(samples):
        for which in ("floor", "backdrop") if round_ % 2 == 0 else ("backdrop", "floor"):
            if which == "floor":
                floors.append(floor())
            else:
                ours.append(backdrop(data, output_format)[0])
    median = statistics.median
    print(
        json.dumps(
            {
                "input_mb": len(data) / 2**20,
                "samples": samples,
                "floor_prepare": median(f[0] for f in floors),
                "floor_finalize": median(f[1] for f in floors),
                "floor_total": median(f[0] + f[1] for f in floors),
                "prepare": median(o["prepare"] for o in ours),
                "finalize": median(o["finalize"] for o in ours),
                "total": median(o["prepare"] + o["finalize"] for o in ours),
                "finalize_ratios": sorted(o["finalize"] / f[1] for o, f in zip(ours, floors, strict=True)),
                "build_mask": median([first["build_mask"]] + [o["build_mask"] for o in ours]),
                "peak_mb": peak_mb,
                "memory_mb": FINALIZE_MEMORY_MB,
            }
        )
    )


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else SAMPLES)
