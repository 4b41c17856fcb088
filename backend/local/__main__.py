"""`python -m backend.local run|demo`: the local stack, interactive or as a headless demo.

run   start everything on 127.0.0.1 and serve until Ctrl-C
demo  start everything, act as a real HTTP client on the sample photos (sign in, presigned
      upload, labels, submit), wait with a progress bar, print the report, stop; exit 0 only
      if every image SUCCEEDED
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _progress(view: dict[str, Any]) -> None:
    counts = view.get("counts", {})
    total = sum(counts.values()) or 1
    done = counts.get("SUCCEEDED", 0) + counts.get("FAILED", 0)
    width = 30
    bar = "#" * (width * done // total) + "." * (width - width * done // total)
    sys.stderr.write(f"\r[{bar}] {done}/{total} images  {view['status']:<9}")
    sys.stderr.flush()


def demo(args: argparse.Namespace) -> int:
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from frontend.api_client import BackdropClient, CognitoLogin

    started = time.monotonic()
    paths = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with LocalStack(api_port=0, latency_s=args.latency) as stack:
        print(f"local stack up in {time.monotonic() - started:.1f} s: API {stack.api_url}, AWS (moto) {stack.endpoint}")
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(DEMO_USER, DEMO_PASSWORD)
        client = BackdropClient(stack.api_url, login.id_token)
        refs = client.upload_files(paths).uploaded
        print(f"uploaded {len(refs)} sample photos through presigned POSTs")
        labels = client.labels([r["imageRef"] for r in refs])
        images = [{**r, "labels": [label["name"] for label in labels[r["imageRef"]]]} for r in refs]
        job = client.submit({"prompt": args.prompt, "mode": "PRECISE", "images": images})
        print(f"submitted job {job['jobId']} ({job['imageCount']} images, model {job['model']})")
        view = client.wait(job["jobId"], poll_s=0.5, timeout_s=args.timeout, progress=_progress)
        sys.stderr.write("\n")
        report = json.loads(client.download(client.report_url(job["jobId"], "json")))
        counts = report["counts"]
        print(f"job {job['jobId']}: {view['status']}")
        for image in report["images"]:
            where = ", ".join(o["key"] for o in image["outputs"]) or f"{image['errorCode']}: {image['cause']}"
            print(f"  {image['name']:<16} {image['status']:<10} {where}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            for image in view["images"]:
                for output in image["outputs"]:
                    target = args.out / f"{Path(image['name']).stem}-{output['variant']}{Path(output['key']).suffix}"
                    target.write_bytes(client.download(output["url"]))
            print(f"results saved in {args.out}")
        print(f"{counts['SUCCEEDED']} succeeded, {counts['FAILED']} failed")
        print(f"outputs: s3://{stack.outputs['bucket']}/results/ on the local moto S3 (made by the Bedrock stand-in)")
        deadline = time.monotonic() + 5
        while not stack.emails and time.monotonic() < deadline:
            time.sleep(0.1)
        if stack.emails:
            print(f"email sent to {stack.emails[-1]['To']}: {stack.emails[-1]['Subject']}")
        print(f"demo took {time.monotonic() - started:.1f} s")
        return 0 if counts["FAILED"] == 0 and counts["SUCCEEDED"] == len(paths) else 1


def run(args: argparse.Namespace) -> int:
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack

    def on_email(email: dict[str, Any]) -> None:
        print(f"\n--- email to {email.get('To')}: {email.get('Subject')}\n{email.get('Message')}\n---", flush=True)

    stack = LocalStack(
        api_port=args.port, latency_s=args.latency, images_per_minute=args.quota, on_email=on_email
    ).start()
    ui = "(not started: --no-ui)" if args.no_ui else stack.start_ui(args.ui_port)
    print(
        "Backdrop is running locally (Bedrock and Rekognition are stand-ins: outputs are not generated art).\n"
        f"  Web UI:     {ui}\n"
        f"  API:        {stack.api_url}   (try: curl {stack.api_url}/health)\n"
        f"  AWS (moto): {stack.endpoint}\n"
        f"  User pool:  {stack.outputs['user_pool_id']}   app client: {stack.outputs['client_id']}\n"
        f"  Sign in:    {DEMO_USER} / {DEMO_PASSWORD}\n"
        f"  CLI:        backdrop login --api {stack.api_url} --client-id {stack.outputs['client_id']} "
        f"--cognito-endpoint {stack.endpoint} --username {DEMO_USER}\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    stopped = False

    def stop(*_: Any) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopped:
            time.sleep(0.2)
    finally:
        stack.stop()
        print("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend.local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="serve the whole stack on 127.0.0.1 until Ctrl-C")
    run_parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    run_parser.add_argument("--latency", type=float, default=0.5, help="stand-in model latency in seconds")
    run_parser.add_argument("--quota", type=float, default=None, help="stand-in model quota, images per minute")
    run_parser.add_argument("--ui-port", type=int, default=8501, help="Streamlit UI port (default 8501)")
    run_parser.add_argument("--no-ui", action="store_true", help="API only, no Streamlit UI")
    demo_parser = sub.add_parser("demo", help="headless end-to-end demo on the sample photos")
    demo_parser.add_argument("--latency", type=float, default=0.1)
    demo_parser.add_argument("--timeout", type=float, default=150.0)
    demo_parser.add_argument("--prompt", default="a sunlit studio with a soft blue backdrop")
    demo_parser.add_argument("--out", type=Path, default=None, help="save the results in this folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "moto"):  # request logs and moto's notes on its own interpreter
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return {"run": run, "demo": demo}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
