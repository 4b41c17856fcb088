"""`python -m backend.local run|demo`: the local stack, interactive or as a headless demo.

run   start everything on 127.0.0.1 and serve until Ctrl-C (--port, --ui-port choose the ports)
demo  start everything, act as a real HTTP client on the sample photos (sign in, presigned
      upload, labels, submit), wait with a progress bar, print the report, stop; exit 0 only
      if every image SUCCEEDED

Exit status 2 with one line on stderr when a port is taken or an argument is wrong.

What the app's Lambdas log (JSON log lines and EMF metrics, which CloudWatch would hold) goes to
a file, not the terminal: `run` prints its path; `demo` keeps it only when the demo fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _progress(console: TextIO, view: dict[str, Any]) -> None:
    counts = view.get("counts", {})
    total = sum(counts.values()) or 1
    done = counts.get("SUCCEEDED", 0) + counts.get("FAILED", 0)
    width = 30
    bar = "#" * (width * done // total) + "." * (width - width * done // total)
    console.write(f"\r[{bar}] {done}/{total} images  {view['status']:<9}")
    console.flush()


def _app_logs_to(log: TextIO) -> None:
    """The app's logger ("backdrop": Chalice's app log and the Lambdas' Powertools logger share
    it) writes to the log file, as a Lambda's log stream goes to CloudWatch, not to a terminal."""
    for handler in logging.getLogger("backdrop").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is not log:
            handler.setStream(log)


def curl_exports(stack: Any) -> str:
    """The shell variables docs/api.md's commands read, for this stack."""
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER

    values = {
        "API": stack.api_url,
        "COGNITO": stack.endpoint,
        "CLIENT_ID": stack.outputs["client_id"],
        "BACKDROP_USER": DEMO_USER,
        "BACKDROP_PASSWORD": DEMO_PASSWORD,
    }
    return "export " + " ".join(f"{name}='{value}'" for name, value in values.items())


def demo(args: argparse.Namespace) -> int:
    from backend.local.cutout import engine_named
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack
    from frontend.api_client import BackdropClient, CognitoLogin

    started = time.monotonic()
    paths = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with LocalStack(api_port=0, latency_s=args.latency, cutout=engine_named(args.cutout)) as stack:
        _app_logs_to(args.app_log)
        print(f"local stack up in {time.monotonic() - started:.1f} s: API {stack.api_url}, AWS (moto) {stack.endpoint}")
        print(f"cut-outs and subject boxes by the {stack.cutout.name if stack.cutout else '?'}")
        login = CognitoLogin(client_id=stack.outputs["client_id"], endpoint_url=stack.endpoint)
        login.sign_in(DEMO_USER, DEMO_PASSWORD)
        client = BackdropClient(stack.api_url, login.id_token)
        refs = client.upload_files(paths).uploaded
        print(f"uploaded {len(refs)} sample photos through presigned POSTs")
        labels = client.labels([r["imageRef"] for r in refs])
        images = [{**r, "labels": [label["name"] for label in labels[r["imageRef"]]]} for r in refs]
        job = client.submit({"prompt": args.prompt, "mode": "PRECISE", "images": images})
        print(f"submitted job {job['jobId']} ({job['imageCount']} images, model {job['model']})")
        view = client.wait(
            job["jobId"], poll_s=0.5, timeout_s=args.timeout, progress=functools.partial(_progress, args.console)
        )
        args.console.write("\n")
        report = json.loads(client.download(client.report_url(job["jobId"], "json")))
        counts = report["counts"]
        print(f"job {job['jobId']}: {view['status']}")
        for image in report["images"]:
            where = ", ".join(o["key"] for o in image["outputs"]) or f"{image['errorCode']}: {image['cause']}"
            print(f"  {image['name']:<16} {image['status']:<10} {where}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            for image in client.job_images(job["jobId"], status="SUCCEEDED"):
                for output in image["outputs"]:
                    target = args.out / f"{Path(image['name']).stem}-{output['variant']}{Path(output['key']).suffix}"
                    target.write_bytes(client.download(output["url"]))
            print(f"results saved in {args.out}")
        print(f"{counts['SUCCEEDED']} succeeded, {counts['FAILED']} failed")
        print(
            f"outputs: s3://{stack.outputs['bucket']}/results/ on the local moto S3 "
            "(backgrounds by the inpaint stand-in, not generated art)"
        )
        deadline = time.monotonic() + 5
        while not stack.emails and time.monotonic() < deadline:
            time.sleep(0.1)
        if stack.emails:
            print(f"email sent to {stack.emails[-1]['To']}: {stack.emails[-1]['Subject']}")
        print(f"demo took {time.monotonic() - started:.1f} s")
        return 0 if counts["FAILED"] == 0 and counts["SUCCEEDED"] == len(paths) else 1


def run(args: argparse.Namespace) -> int:
    from backend.local.bedrock_standin import LIFECYCLE_UNAVAILABLE
    from backend.local.cutout import engine_named
    from backend.local.stack import DEMO_PASSWORD, DEMO_USER, LocalStack, ensure_port_free

    def on_email(email: dict[str, Any]) -> None:
        print(f"\n--- email to {email.get('To')}: {email.get('Subject')}\n{email.get('Message')}\n---", flush=True)

    if not args.no_ui:  # before anything starts: a taken UI port is said at once
        ensure_port_free("127.0.0.1", args.ui_port, "web UI", "--ui-port (make run UI_PORT=...)")
    stack = LocalStack(
        api_port=args.port,
        latency_s=args.latency,
        images_per_minute=args.quota,
        # at a stand-in quota, the Map's concurrency follows from it as a deployment's does
        max_concurrency=None if args.quota else 4,
        cutout=engine_named(args.cutout),
        on_email=on_email,
        region=args.region,
    ).start()
    _app_logs_to(args.app_log)
    try:
        ui = "(not started: --no-ui)" if args.no_ui else stack.start_ui(args.ui_port)
    except BaseException:
        stack.stop()
        raise
    print(
        f"Backdrop is running locally. {stack.banner()}\n"
        f"  Note:       {LIFECYCLE_UNAVAILABLE}.\n"
        f"  Web UI:     {ui}\n"
        f"  API:        {stack.api_url}   (try: curl {stack.api_url}/health)\n"
        f"  AWS (moto): {stack.endpoint}\n"
        f"  App logs:   {args.app_log.name}   (the Lambdas' log lines and metrics, as CloudWatch would hold them)\n"
        f"  User pool:  {stack.outputs['user_pool_id']}   app client: {stack.outputs['client_id']}\n"
        f"  Sign in:    {DEMO_USER} / {DEMO_PASSWORD}\n"
        f"  API docs:   {stack.api_url}/openapi.json   (walk-through with curl: docs/api.md)\n"
        f"  CLI:        source .venv/bin/activate   (puts `backdrop` on the PATH), then\n"
        f"              backdrop login --api {stack.api_url} --client-id {stack.outputs['client_id']} "
        f"--cognito-endpoint {stack.endpoint} --username {DEMO_USER}\n"
        f"  For curl:   {curl_exports(stack)}\n"
        "Ctrl-C stops everything, and a restart begins empty: every job is lost and the CLI signs in again.",
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


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535; 0 = any free port)")
    return port


def main(argv: list[str] | None = None) -> int:
    from backend.local.cutout import ENGINE_NAMES

    parser = argparse.ArgumentParser(
        prog="python -m backend.local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="serve the whole stack on 127.0.0.1 until Ctrl-C")
    run_parser.add_argument("--port", type=_port, default=8000, help="API port (default 8000)")
    run_parser.add_argument("--latency", type=float, default=0.5, help="stand-in model latency in seconds")
    run_parser.add_argument("--quota", type=float, default=None, help="stand-in model quota, images per minute")
    run_parser.add_argument("--ui-port", type=_port, default=8501, help="Streamlit UI port (default 8501)")
    run_parser.add_argument("--no-ui", action="store_true", help="API only, no Streamlit UI")
    run_parser.add_argument(
        "--region",
        default="us-east-1",
        help="the Region the local stack plays (default us-east-1); us-west-2 offers scene backgrounds, whose model "
        "runs there only, as on AWS",
    )
    demo_parser = sub.add_parser("demo", help="headless end-to-end demo on the sample photos")
    demo_parser.add_argument("--latency", type=float, default=0.1)
    demo_parser.add_argument("--timeout", type=float, default=150.0)
    demo_parser.add_argument("--prompt", default="a sunlit studio with a soft blue backdrop")
    demo_parser.add_argument("--out", type=Path, default=None, help="save the results in this folder")
    for each in (run_parser, demo_parser):
        each.add_argument(
            "--cutout",
            choices=ENGINE_NAMES,
            default="auto",
            help="cut-out engine: the local model, the classical estimate (cheap: for runs about "
            "orchestration), or auto = the model if installed (default)",
        )
    args = parser.parse_args(argv)
    console = sys.stderr
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=console)
    for noisy in ("werkzeug", "moto"):  # request logs and moto's notes on its own interpreter
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from backend.local.cutout import CutoutUnavailable
    from backend.local.stack import PortInUse

    # whatever the app writes to stderr (its log lines and metrics) goes to the log file; the
    # stack's own messages and the progress bar go to the console
    app_log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept after exit for `run`
        "w", prefix=f"backdrop-local-{args.command}-", suffix=".log", delete=False, encoding="utf-8"
    )
    args.console, args.app_log = console, app_log
    sys.stderr = app_log
    try:
        code = {"run": run, "demo": demo}[args.command](args)
    except (PortInUse, CutoutUnavailable) as exc:
        print(f"error: {exc}", file=console)
        code = 2
    finally:
        sys.stderr = console
        app_log.close()
    if args.command == "demo" and code == 1:
        print(f"the app's logs: {app_log.name}", file=console)
    elif args.command == "demo" or code == 2:
        Path(app_log.name).unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
