"""The local stack's memory after jobs with a 30 MP photo (issue #29.8): RSS must follow what the
stored objects need, not the largest image ever processed.

Runs in its own process (`python -m bench.local_memory`; `make bench` runs it as `local-memory`):
a local stack with the classical cut-out estimate, then JOBS one-photo jobs with a 30.1 MP JPEG
(6336 x 4752, about 7 MB) on a colour background, one after the other. It prints the RSS after
each and what S3 holds; the target: RSS after the last job at most the RSS at start plus twice
what S3 holds plus SLACK_MB. Before backend/local/memory.py the same run went 337 MB at start to
882, 907, 1,007, 1,074 MB while S3 held 35 MB (glibc kept the freed image buffers); with it 329 to
444, 393, 430, 465 MB.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = 4
WIDTH, HEIGHT = 6336, 4752  # 30.1 MP
SLACK_MB = 192  # the modules and caches the first image loads (Pillow's codecs, numpy, the stand-ins)
SETTLE_S = 2.0


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _photo(path: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    pixels = np.full((HEIGHT, WIDTH, 3), 230, np.int16)
    pixels[((xx - WIDTH / 2) ** 2 / (WIDTH * 0.25) ** 2 + (yy - HEIGHT / 2) ** 2 / (HEIGHT * 0.3) ** 2) < 1] = (
        200,
        30,
        40,
    )
    pixels += rng.integers(-12, 12, pixels.shape, dtype=np.int16)  # texture, so the JPEG is photo-sized
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def measure() -> dict[str, object]:
    from backend.local.cutout import engine_named
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from frontend.api_client import BackdropClient, CognitoLogin

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "30mp.jpg"
        _photo(photo)
        stack = LocalStack(api_port=0, stage="membench", cutout=engine_named("estimate")).start()
        try:
            login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
            login.sign_in(DEMO_USER, DEMO_PASSWORD)
            client = BackdropClient(stack.api_url, login.id_token)
            gc.collect()
            rss = [_rss_mb()]
            stored = []
            s3 = stack.client("s3")
            for _ in range(JOBS):
                refs = client.upload_files([photo]).uploaded
                job = client.submit(
                    {"background": {"source": "color", "color": "#FFFFFF"}, "images": [{**refs[0], "labels": []}]}
                )
                client.wait(job["jobId"], poll_s=0.5, timeout_s=900)
                time.sleep(SETTLE_S)  # the job's email and the reconciler's look at its end
                gc.collect()
                rss.append(_rss_mb())
                listed = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.outputs["bucket"])
                stored.append(sum(o["Size"] for page in listed for o in page.get("Contents", [])) / 2**20)
        finally:
            stack.stop()
    return {"megapixels": WIDTH * HEIGHT / 1e6, "rss": rss, "stored": stored}


def run(row: Callable[[str, str, str, bool | None], None]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.local_memory"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    r = json.loads(done.stdout.strip().splitlines()[-1])
    rss, stored = r["rss"], r["stored"]
    allowed = rss[0] + 2 * stored[-1] + SLACK_MB
    row(
        "local stack RSS, 30 MP jobs",
        f"{rss[0]:.0f} MB at start; after each of {JOBS} jobs "
        + ", ".join(f"{v:.0f}" for v in rss[1:])
        + f" MB; S3 holds {stored[-1]:.0f} MB",
        f"<= {allowed:.0f} MB after the last",
        rss[-1] <= allowed,
    )


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    print(json.dumps(measure()))
