"""Throughput at the Bedrock quota: 200 images through the local stack.

The stand-in answers every model call after a fixed latency L and allows Q calls per minute
(more are throttled, as Bedrock would). MaxConcurrency is derived the way docs/deploy.md tells
deployers: images in flight = (images per second at the quota) × (seconds one image takes).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable

IMAGES = 200
QUOTA_CALLS_PER_MINUTE = 600.0
LATENCY_S = 0.25
CALLS_PER_IMAGE = 2  # remove-background + inpaint
LAMBDA_SECONDS_PER_IMAGE = 1.7  # prepare + build-mask + finalize + the local stack's own overhead, measured here


def max_concurrency(quota_per_minute: float, latency_s: float, calls: int, lambda_s: float) -> int:
    images_per_second = quota_per_minute / 60 / calls
    seconds_per_image = calls * latency_s + lambda_s
    return max(1, math.ceil(images_per_second * seconds_per_image * 1.25))  # 25% headroom


def run(row: Callable[[str, str, str, bool | None], None]) -> None:
    from PIL import Image, ImageDraw

    from backend.local.cutout import ForegroundEstimate
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from chalicelib import contracts
    from frontend.api_client import BackdropClient, CognitoLogin

    concurrency = max_concurrency(QUOTA_CALLS_PER_MINUTE, LATENCY_S, CALLS_PER_IMAGE, LAMBDA_SECONDS_PER_IMAGE)
    img = Image.new("RGB", (160, 120), (235, 235, 230))
    ImageDraw.Draw(img).ellipse((50, 30, 110, 100), fill=(200, 30, 40))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    with LocalStack(
        api_port=0,
        stage="bench",
        latency_s=LATENCY_S,
        images_per_minute=QUOTA_CALLS_PER_MINUTE,
        max_concurrency=concurrency,
        cutout=ForegroundEstimate(),  # orchestration at the quota, not the local model's CPU time
    ) as stack:
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(DEMO_USER, DEMO_PASSWORD)
        client = BackdropClient(stack.api_url, login.id_token)
        s3 = stack.client("s3")
        owner = (
            client.models
            and login.tokens
            and __import__("json").loads(
                __import__("base64").urlsafe_b64decode(login.tokens.id_token.split(".")[1] + "==")
            )["sub"]
        )
        images = []
        for i in range(IMAGES):  # straight to S3: the benchmark is about the workflow, not uploads
            ref = contracts.image_ref_of(contracts.new_opaque_id(), contracts.new_opaque_id(), "png")
            s3.put_object(Bucket=stack.outputs["bucket"], Key=contracts.upload_key(owner, ref), Body=buf.getvalue())
            images.append({"imageRef": ref, "name": f"img{i:03d}.png", "labels": []})
        started = time.monotonic()
        job = client.submit({"prompt": "a plain studio", "images": images})
        view = client.wait(job["jobId"], poll_s=0.5, timeout_s=600)
        elapsed = time.monotonic() - started
        failed = client.job_images(view["jobId"], status="FAILED")
        throttled = sum(1 for image in failed if image.get("errorCode") == "MODEL_THROTTLED")
    calls_per_minute = IMAGES * CALLS_PER_IMAGE / elapsed * 60
    ratio = calls_per_minute / QUOTA_CALLS_PER_MINUTE
    row(
        "MaxConcurrency derived", f"{concurrency} (Q={QUOTA_CALLS_PER_MINUTE:.0f} calls/min, L={LATENCY_S}s)", "-", None
    )
    row(
        "throughput / quota",
        f"{calls_per_minute:.0f} calls/min = {ratio:.2f} of quota ({elapsed:.0f} s for {IMAGES})",
        ">= 0.95",
        ratio >= 0.95,
    )
    row("images failed by throttling", f"{throttled} (job {view['status']})", "0", throttled == 0)
