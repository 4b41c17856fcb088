"""`backdrop`: the command-line client for Backdrop's API.

  backdrop login --api URL --client-id ID [--region R] [--cognito-endpoint URL] --username U
  backdrop submit PHOTO... --prompt TEXT [--negative T] [--mode PRECISE|DEFAULT] [--model KEY] [--no-email]
                  [--variants N] [--seed S] [--format png|jpeg|webp] [--no-labels] [--wait] [--out DIR]
                  (without --format each result follows its original: JPEG in, JPEG out; PNG otherwise)
  backdrop jobs | status JOB [--only STATUS] | download JOB --out DIR | retry JOB [--wait]

Every command takes --json for scripts. Exit codes: 0 done; 1 the job finished but some image
FAILED, or some file was not uploaded (or, for `status`, the job is not finished yet); 2 a usage,
sign-in or API error (its code and message are printed). `submit` lists every file it could not
upload, with the reason, at once, and goes on with the others.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from chalicelib.contracts import TERMINAL_JOB_STATUSES, ImageStatus
from chalicelib.quality import Scorecard, worst
from frontend.api_client import ApiError, BackdropClient, CognitoLogin, Tokens

EXIT_OK, EXIT_IMAGES_FAILED, EXIT_ERROR = 0, 1, 2


def config_path() -> Path:
    base = os.environ.get("BACKDROP_CONFIG_DIR") or Path.home() / ".config" / "backdrop"
    return Path(base) / "config.json"


def _load() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        raise ApiError(0, "NOT_SIGNED_IN", "run `backdrop login` first")
    return json.loads(path.read_text())


def _save(data: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)  # tokens inside: readable by this user only
    path.write_text(json.dumps(data, indent=2))


def _login_from(config: dict[str, Any]) -> CognitoLogin:
    login = CognitoLogin(
        client_id=config["clientId"],
        region=config.get("region", "us-east-1"),
        client_secret=config.get("clientSecret"),
        endpoint_url=config.get("cognitoEndpoint"),
    )
    login.username = config.get("username")
    tokens = config.get("tokens")
    if tokens:
        login.tokens = Tokens(tokens["idToken"], tokens.get("refreshToken"), tokens["expiresAt"])
    return login


def _client() -> tuple[BackdropClient, CognitoLogin, dict[str, Any]]:
    config = _load()
    login = _login_from(config)

    def token() -> str:
        value = login.id_token()
        if login.tokens and login.tokens.id_token != config.get("tokens", {}).get("idToken"):
            config["tokens"] = {
                "idToken": login.tokens.id_token,
                "refreshToken": login.tokens.refresh_token,
                "expiresAt": login.tokens.expires_at,
            }
            _save(config)  # refreshed: keep it for the next command
        return value

    return BackdropClient(config["api"], token), login, config


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def _progress(view: dict[str, Any]) -> None:
    counts = view.get("counts", {})
    total = sum(counts.values()) or 1
    done = counts.get(ImageStatus.SUCCEEDED.value, 0) + counts.get(ImageStatus.FAILED.value, 0)
    bar = "#" * (30 * done // total)
    sys.stderr.write(f"\r[{bar:<30}] {done}/{total} {view['status']:<9}")
    sys.stderr.flush()


def _exit_code(view: dict[str, Any]) -> int:
    if view["status"] not in {s.value for s in TERMINAL_JOB_STATUSES}:
        return EXIT_IMAGES_FAILED
    return EXIT_IMAGES_FAILED if view.get("counts", {}).get(ImageStatus.FAILED.value) else EXIT_OK


def _quality_text(outputs: list[dict[str, Any]]) -> str:
    """The worst scorecard among an image's outputs, as one line ("" if none was scored)."""
    cards = [Scorecard.from_dict(o["quality"]) for o in outputs if o.get("quality")]
    if not cards:
        return ""
    outcome = worst(c.outcome for c in cards)
    return f", quality {next(c for c in cards if c.outcome == outcome).summary()}"


def _status_text(view: dict[str, Any]) -> str:
    lines = [f"job {view['jobId']}: {view['status']}  ({view.get('model')})"]
    if view.get("cause"):
        lines.append(f"  {view['cause']}")
    for image in view.get("images", []):
        outputs = image.get("outputs") or []
        detail = (
            f"{image['errorCode']}: {image['cause']}"
            if image.get("errorCode")
            else f"{len(outputs)} output(s){_quality_text(outputs)}"
        )
        lines.append(f"  {image['name']:<30} {image['status']:<10} {detail}")
    counts = view.get("counts", {})
    lines.append(f"{counts.get('SUCCEEDED', 0)} succeeded, {counts.get('FAILED', 0)} failed")
    return "\n".join(lines)


def _download(client: BackdropClient, view: dict[str, Any], out: Path) -> list[str]:
    """Every result of the job (its succeeded images, page by page) and its reports."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for image in client.job_images(view["jobId"], status=ImageStatus.SUCCEEDED.value):
        for output in image.get("outputs") or []:
            target = (
                out
                / f"{Path(image['name']).stem}-{image['imageId'][:8]}-{output['variant']}{Path(output['key']).suffix}"
            )
            target.write_bytes(client.download(output["url"]))
            written.append(str(target))
    if view.get("reports"):
        for fmt, url in view["reports"].items():
            target = out / f"report-{view['jobId']}.{fmt}"
            target.write_bytes(client.download(url))
            written.append(str(target))
    return written


# ------------------------------------------------------------------------------ commands


def cmd_login(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    login = CognitoLogin(
        client_id=args.client_id,
        region=args.region,
        client_secret=args.client_secret,
        endpoint_url=args.cognito_endpoint,
    )
    tokens = login.sign_in(args.username, password)
    _save(
        {
            "api": args.api,
            "clientId": args.client_id,
            "region": args.region,
            "clientSecret": args.client_secret,
            "cognitoEndpoint": args.cognito_endpoint,
            "username": args.username,
            "tokens": {
                "idToken": tokens.id_token,
                "refreshToken": tokens.refresh_token,
                "expiresAt": tokens.expires_at,
            },
        }
    )
    _print(args, {"signedIn": args.username, "api": args.api}, f"signed in as {args.username} to {args.api}")
    return EXIT_OK


def _rejected_text(rejected: list[dict[str, Any]], total: int) -> str:
    lines = [f"{len(rejected)} of {total} file(s) were not uploaded:"]
    lines += [f"  {r['name']}: {r['message']}" for r in rejected]
    return "\n".join(lines)


def cmd_submit(args: argparse.Namespace) -> int:
    client, _, _ = _client()
    paths = [Path(p) for p in args.photos]
    catalogue = client.models()
    chosen = next((m for m in catalogue["models"] if m["key"] == (args.model or catalogue["default"])), None)
    if chosen and chosen["lifecycle"]["status"] == "LEGACY":
        sys.stderr.write(
            f"warning: {chosen['key']} is Legacy on Bedrock and reaches end of life on {chosen['lifecycle']['eolDate']}\n"
        )
    uploaded = client.upload_files(paths)
    if uploaded.rejected and not args.json:
        sys.stderr.write(_rejected_text(uploaded.rejected, len(paths)) + "\n")
    if not uploaded.uploaded:
        names = "; ".join(f"{r['name']}: {r['message']}" for r in uploaded.rejected[:3])
        raise ApiError(
            0, "NOTHING_UPLOADED", f"none of the {len(paths)} file(s) could be uploaded ({names})", uploaded.rejected
        )
    answer = {"labels": {}, "unavailable": {}} if args.no_labels else client.label_results(uploaded.refs)
    names = {u["imageRef"]: u["name"] for u in uploaded.uploaded}
    if not args.json:
        for ref, why in answer.get("unavailable", {}).items():
            sys.stderr.write(f"no labels for {names[ref]}: {why['message']}\n")
    labels = answer["labels"]
    job: dict[str, Any] = {
        "prompt": args.prompt,
        "mode": args.mode,
        "variants": args.variants,
        "notify": not args.no_email,
        "images": [
            {**u, "labels": [label["name"] for label in labels.get(u["imageRef"], [])]} for u in uploaded.uploaded
        ],
    }
    for key, value in (
        ("negativePrompt", args.negative),
        ("model", args.model),
        ("seed", args.seed),
        ("outputFormat", args.format),
    ):
        if value is not None:
            job[key] = value
    submitted = client.submit(job)
    skipped = EXIT_IMAGES_FAILED if uploaded.rejected else EXIT_OK
    if not args.wait:
        if uploaded.rejected:
            submitted["rejected"] = uploaded.rejected
        _print(args, submitted, f"submitted job {submitted['jobId']} ({submitted['imageCount']} images)")
        return skipped
    sys.stderr.write(f"job {submitted['jobId']}\n")
    view = client.wait(submitted["jobId"], poll_s=args.poll, progress=None if args.json else _progress)
    if not args.json:
        sys.stderr.write("\n")
    view = client.job_with_images(view["jobId"])  # the summary was polled; now every image, once
    if args.out:
        view["downloaded"] = _download(client, view, Path(args.out))
    text = _status_text(view)
    if uploaded.rejected:
        view["rejected"] = uploaded.rejected
        text += "\n" + _rejected_text(uploaded.rejected, len(paths))
    _print(args, view, text)
    return max(_exit_code(view), skipped)


def cmd_jobs(args: argparse.Namespace) -> int:
    client, _, _ = _client()
    page = client.jobs(limit=args.limit)
    lines = [
        f"{j['jobId']}  {j['status']:<9} {j.get('imageCount', 0):>5} images  {j.get('prompt') or ''}"[:120]
        for j in page["jobs"]
    ]
    _print(args, page, "\n".join(lines) or "no jobs yet")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    client, _, _ = _client()
    view = client.job_with_images(args.job, status=args.only)
    _print(args, view, _status_text(view))
    return _exit_code(view)


def cmd_download(args: argparse.Namespace) -> int:
    client, _, _ = _client()
    view = client.job_summary(args.job)
    written = _download(client, view, Path(args.out))
    _print(args, {"jobId": args.job, "files": written}, f"{len(written)} file(s) written to {args.out}")
    return _exit_code(view)


def cmd_retry(args: argparse.Namespace) -> int:
    client, _, _ = _client()
    submitted = client.retry(args.job)
    if not args.wait:
        _print(args, submitted, f"retrying {submitted['imageCount']} failed image(s) as job {submitted['jobId']}")
        return EXIT_OK
    client.wait(submitted["jobId"], progress=None if args.json else _progress)
    view = client.job_with_images(submitted["jobId"])
    _print(args, view, _status_text(view))
    return _exit_code(view)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    p = argparse.ArgumentParser(
        prog="backdrop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    login = sub.add_parser("login", parents=[common], help="sign in with your Cognito user")
    login.add_argument("--api", required=True, help="the API URL the deploy (or `make run`) printed")
    login.add_argument("--client-id", required=True, help="the Cognito app client id")
    login.add_argument("--region", default="us-east-1")
    login.add_argument("--client-secret", default=None, help="only if the app client has a secret")
    login.add_argument("--cognito-endpoint", default=None, help="the local stack's moto endpoint (local use only)")
    login.add_argument("--username", required=True)
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.set_defaults(run=cmd_login)
    submit = sub.add_parser("submit", parents=[common], help="upload photos and start a job")
    submit.add_argument("photos", nargs="+")
    submit.add_argument("--prompt", required=True, help="the new background, in words")
    submit.add_argument("--negative", default=None, help="what the background must not have")
    submit.add_argument(
        "--mode", default="PRECISE", choices=["PRECISE", "DEFAULT"], help="PRECISE keeps subject pixels unchanged"
    )
    submit.add_argument("--model", default=None, help="model key (see GET /models); default: the deployment's")
    submit.add_argument("--variants", type=int, default=1)
    submit.add_argument("--seed", type=int, default=None, help="lock the seed to reproduce a result")
    submit.add_argument(
        "--format",
        default=None,
        choices=["png", "jpeg", "webp"],
        help="result format (default: as the original: JPEG in, JPEG out; PNG otherwise)",
    )
    submit.add_argument(
        "--no-labels", action="store_true", help="keep the whole detected subject, not only labelled objects"
    )
    submit.add_argument("--no-email", action="store_true", help="no email when this job is done")
    submit.add_argument("--wait", action="store_true", help="wait for the job, with a progress bar")
    submit.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    submit.add_argument("--out", default=None, help="with --wait: download results and reports here")
    submit.set_defaults(run=cmd_submit)
    jobs = sub.add_parser("jobs", parents=[common], help="your jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(run=cmd_jobs)
    status = sub.add_parser("status", parents=[common], help="per-image status of a job")
    status.add_argument("job")
    status.add_argument(
        "--only", default=None, choices=[s.value for s in ImageStatus], help="list only the images in this status"
    )
    status.set_defaults(run=cmd_status)
    download = sub.add_parser("download", parents=[common], help="download a job's results and reports")
    download.add_argument("job")
    download.add_argument("--out", required=True)
    download.set_defaults(run=cmd_download)
    retry = sub.add_parser("retry", parents=[common], help="re-run the failed images of a finished job")
    retry.add_argument("job")
    retry.add_argument("--wait", action="store_true")
    retry.set_defaults(run=cmd_retry)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ApiError as exc:
        if args.json:
            print(json.dumps({"error": {"code": exc.code, "message": exc.message, "details": exc.details}}))
        else:
            print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
