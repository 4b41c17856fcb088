"""`backdrop`: the command-line client for Backdrop's API.

  backdrop login --api URL --client-id ID [--region R] [--cognito-endpoint URL] --username U
  backdrop submit PHOTO|FOLDER|'GLOB'... --prompt TEXT [--negative T] [--mode PRECISE|DEFAULT] [--model KEY] [--no-email]
                  [--variants N] [--seed S] [--format png|jpeg|webp] [--style PRESET] [--re-rolls N]
                  [--webhook https://...] [--no-labels] [--wait] [--out DIR]
                  (without --format each result follows its original: JPEG in, JPEG out; PNG otherwise)
  backdrop watch JOB [--out DIR]          re-attach to a job: progress until it finishes
  backdrop jobs | status JOB [--only STATUS] | download JOB --out DIR [--all-variants] | retry JOB [--wait]
  backdrop cancel JOB [--no-wait] | delete JOB [--originals] [--yes]
  backdrop models                         the models and background recipes, their Regions and prices
  backdrop pick JOB IMAGE VARIANT         deliver another variant of an image (archive and report follow)
  backdrop regenerate JOB IMAGE [--seed N] [--prompt TEXT] [--wait]   one more variant of an image
  backdrop webhook-secret [--rotate] | verify-webhook --body-file F --signature HEADER
  backdrop profiles                       the deployments you are signed in to

Global options (before or after the command): --profile NAME (or BACKDROP_PROFILE) picks one of
several deployments, each signed in with `backdrop --profile NAME login ...`; --json prints
machine-readable output, errors included; --debug shows a traceback for an unexpected error.

Every flag is checked (against the deployment's model limits too) before any photo is uploaded.
Exit codes: 0 done; 1 the job finished but some image FAILED or was CANCELLED, or some file was not
uploaded (for `status`, the job is not finished yet; for `verify-webhook`, the signature is not
valid); 2 a usage, sign-in, connection or API error, printed on one line with its stable code;
130 interrupted (a job keeps running: `backdrop watch JOB` re-attaches); 141 the reader of the output
went away (`backdrop jobs | head`), silently. Progress goes to stderr: a redrawn line on a terminal,
plain lines (no carriage returns) in a pipe or a log.
"""

from __future__ import annotations

import argparse
import getpass
import glob
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn

from chalicelib.core import contracts, webhook_rules, wording
from chalicelib.core.backgrounds import ANCHORS, parse_background, parse_color, parse_placement
from chalicelib.core.contracts import TERMINAL_IMAGE_STATUSES, TERMINAL_JOB_STATUSES, BackgroundSource, ImageStatus
from chalicelib.core.outputs import delivered_outputs
from chalicelib.core.scorecard import Scorecard, attempts_summary, worst
from chalicelib.core.validation import Problems, summarise
from chalicelib.core.wording import deadline_words
from frontend.api_client import CONTENT_TYPES, UNREACHABLE, ApiError, BackdropClient, CognitoLogin, Tokens
from frontend.safe_text import terminal

EXIT_OK, EXIT_IMAGES_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away
DEFAULT_PROFILE = "default"


class UsageError(Exception):
    """A command line argparse refuses: one line with its code, not argparse's usage dump."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ------------------------------------------------------------------------------ profiles


def config_path() -> Path:
    base = os.environ.get("BACKDROP_CONFIG_DIR") or Path.home() / ".config" / "backdrop"
    return Path(base) / "config.json"


def _read_config() -> dict[str, Any]:
    """{"profiles": {name: {...}}}; a file from before profiles is the default profile."""
    path = config_path()
    if not path.exists():
        return {"profiles": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ApiError(
            0, "CONFIG_INVALID", f"{path} cannot be read ({exc}); sign in again with `backdrop login`"
        ) from exc
    if "profiles" not in data:
        data = {"profiles": {DEFAULT_PROFILE: data} if data.get("api") else {}}
    return data


def _write_config(data: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)  # tokens inside: readable by this user only
    path.chmod(0o600)
    path.write_text(json.dumps(data, indent=2))


def profile_name(args: argparse.Namespace) -> str:
    return getattr(args, "profile", None) or os.environ.get("BACKDROP_PROFILE") or DEFAULT_PROFILE


def _load(profile: str) -> dict[str, Any]:
    data = _read_config()
    if profile not in data["profiles"]:
        known = ", ".join(sorted(data["profiles"])) or "none yet"
        flag = "" if profile == DEFAULT_PROFILE else f"--profile {profile} "
        raise ApiError(
            0, "NOT_SIGNED_IN", f"profile {profile!r} is not signed in (profiles: {known}); run `backdrop {flag}login`"
        )
    return dict(data["profiles"][profile])


def _save(profile: str, values: dict[str, Any]) -> None:
    data = _read_config()
    data["profiles"][profile] = values
    _write_config(data)


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


def _tokens_dict(tokens: Tokens) -> dict[str, Any]:
    return {"idToken": tokens.id_token, "refreshToken": tokens.refresh_token, "expiresAt": tokens.expires_at}


def _client(args: argparse.Namespace) -> BackdropClient:
    profile = profile_name(args)
    config = _load(profile)
    login = _login_from(config)

    def token() -> str:
        value = login.id_token()
        if login.tokens and login.tokens.id_token != config.get("tokens", {}).get("idToken"):
            config["tokens"] = _tokens_dict(login.tokens)
            _save(profile, config)  # refreshed: keep it for the next command
        return value

    return BackdropClient(config["api"], token)


# ------------------------------------------------------------------------------ output


def _screen(text: str) -> str:
    """Text for a terminal: the line breaks this program wrote stay; every other control
    character (an ANSI escape sequence, CR, BS, BEL in a file name, prompt or server message) is
    shown as an escape, so what users named cannot rewrite the terminal. JSON is escaped by
    json.dumps already."""
    return "\n".join(terminal(line) for line in text.split("\n"))


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else _screen(text))


def _say(args: argparse.Namespace, text: str) -> None:
    """Progress and notes for a person: on stderr, and not at all with --json."""
    if not args.json:
        sys.stderr.write(_screen(text))
        sys.stderr.flush()


def _finished_images(counts: dict[str, int]) -> int:
    return sum(counts.get(s.value, 0) for s in TERMINAL_IMAGE_STATUSES)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _progress(args: argparse.Namespace) -> Callable[[dict[str, Any]], None] | None:
    """The job's progress on stderr: one redrawn line (`\r`) on a terminal; elsewhere (a pipe, a
    log file, CI) a plain line only when the status changes or another tenth of the images is
    done, so a log holds a handful of lines and no carriage returns."""
    if args.json:
        return None
    redraw = _stderr_is_terminal()
    last: list[tuple[str, int]] = []

    def show(view: dict[str, Any]) -> None:
        counts = view.get("counts", {})
        total = sum(counts.values()) or 1
        done = _finished_images(counts)
        if redraw:
            bar = "#" * (30 * done // total)
            sys.stderr.write(f"\r[{bar:<30}] {done}/{total} {view['status']:<9}")
        else:
            step = (view["status"], 10 * done // total)
            if last and last[-1] == step:
                return
            last.append(step)
            sys.stderr.write(f"{done}/{total} finished, {view['status']}\n")
        sys.stderr.flush()

    return show


def _upload_progress(args: argparse.Namespace) -> Callable[[int, int, str], None] | None:
    """Upload progress on stderr: a redrawn line on a terminal; elsewhere a line per tenth."""
    if args.json:
        return None
    redraw = _stderr_is_terminal()
    shown: list[int] = []

    def show(done: int, total: int, name: str) -> None:
        if redraw:
            sys.stderr.write(f"\ruploading {done}/{total} {terminal(name)[:40]:<40}")
            if done == total:
                sys.stderr.write("\n")
        else:
            tenth = 10 * done // total
            if shown and shown[-1] == tenth and done != total:
                return
            shown.append(tenth)
            sys.stderr.write(f"uploading {done}/{total}\n")
        sys.stderr.flush()

    return show


def _exit_code(view: dict[str, Any]) -> int:
    if view["status"] not in {s.value for s in TERMINAL_JOB_STATUSES}:
        return EXIT_IMAGES_FAILED
    counts = view.get("counts", {})
    unfinished = counts.get(ImageStatus.FAILED.value, 0) + counts.get(ImageStatus.CANCELLED.value, 0)
    return EXIT_IMAGES_FAILED if unfinished else EXIT_OK


def _quality_text(outputs: list[dict[str, Any]]) -> str:
    """The worst scorecard among an image's outputs, as one line ("" if none was scored)."""
    cards = [Scorecard.from_dict(o["quality"]) for o in outputs if o.get("quality")]
    if not cards:
        return ""
    outcome = worst(c.outcome for c in cards)
    return f", quality {next(c for c in cards if c.outcome == outcome).summary()}"


def _variant_text(output: dict[str, Any]) -> str:
    """ "variant 2 (seed 104738) PASS $0.04, delivered (picked by you)": one line per variant."""
    outcome = (output.get("quality") or {}).get("outcome") or "not scored"
    text = f"variant {output.get('variant')} (seed {output.get('seed')}) {outcome}"
    if output.get("costUsd") is not None:
        text += f" ${float(output['costUsd']):.2f}"
    if output.get("source") == contracts.VariantSource.REGENERATED.value:
        text += f", regenerated by job {output.get('jobId')}"
    if output.get("delivered"):
        text += ", delivered" + (" (picked by you)" if output.get("pickedBy") == contracts.PickedBy.OWNER.value else "")
    return text


def _compliance_lines(output: dict[str, Any]) -> list[str]:
    """A preset's verdict on one output, its failed rules, and what Backdrop did (notes)."""
    lines = []
    compliance = output.get("compliance")
    if compliance:
        lines.append(f"      {compliance['preset']}: {compliance['outcome']}")
        lines += [
            f"        FAIL {c['rule']}: {c['reason']} ({c['requirement']})"
            for c in compliance["checks"]
            if c["outcome"] == "FAIL"
        ]
    lines += [f"      note: {note}" for note in output.get("notes") or []]
    return lines


def background_request(args: argparse.Namespace, background_ref: str | None) -> dict[str, Any]:
    """The job's background, placement and preset from the submit flags (chalicelib.core.backgrounds)."""
    job: dict[str, Any] = {}
    source = args.background
    if args.scene:
        source = "scene"
    elif args.color and source is None:
        source = "color"
    elif background_ref and source is None:
        source = "image"
    if source == "color":
        job["background"] = {"source": "color", "color": args.color or "#FFFFFF"}
    elif source == "image":
        if not background_ref:
            raise ApiError(0, "BAD_ARGUMENTS", "--background image needs --background-photo PATH", None)
        job["background"] = {"source": "image", "imageRef": background_ref}
    elif source == "scene":
        if not args.scene:
            raise ApiError(0, "BAD_ARGUMENTS", "--background scene needs --scene 'what the shared scene shows'", None)
        job["background"] = {"source": "scene", "prompt": args.scene}
    elif source is not None:
        job["background"] = {"source": source}
    placement: dict[str, Any] = {}
    if args.size:
        width, _, height = args.size.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise ApiError(
                0, "BAD_ARGUMENTS", f"--size must be WIDTHxHEIGHT in pixels, such as 2000x2000, not {args.size!r}", None
            )
        placement.update(width=int(width), height=int(height))
    for key, value in (("aspect", args.aspect), ("fill", args.fill), ("anchor", args.anchor), ("margin", args.margin)):
        if value is not None:
            placement[key] = value
    if args.allow_upscale:
        placement["allowUpscale"] = True
    if placement:
        job["placement"] = placement
    if args.preset:
        job["preset"] = args.preset
    return job


def _eta_text(view: dict[str, Any]) -> str:
    """The API's estimate of when a running job will be done (its `eta`), if it gives one: its
    own sentence, else the seconds left or the time it expects to finish."""
    eta = view.get("eta")
    if not eta or view.get("status") in {s.value for s in TERMINAL_JOB_STATUSES}:
        return ""
    if isinstance(eta, int | float) and not isinstance(eta, bool):
        eta = {"seconds": eta}
    if not isinstance(eta, dict):
        return f"done in about {terminal(str(eta))}"
    said = eta.get("words") or eta.get("sentence")  # the API's own words (chalicelib's eta.words())
    if said:
        return terminal(str(said))
    seconds = next((eta[k] for k in ("seconds", "remainingSeconds", "secondsLeft") if eta.get(k) is not None), None)
    if isinstance(seconds, int | float):
        minutes = max(1, round(float(seconds) / 60))
        text = f"done in about {minutes} min"
    else:
        text = ""
    at = eta.get("finishAt") or eta.get("finishesAt")
    if at:
        text = (text + f" (about {terminal(str(at))})") if text else f"done at about {terminal(str(at))}"
    return text


def _status_text(view: dict[str, Any]) -> str:
    lines = [f"job {view['jobId']}: {view['status']}  ({view.get('model')})"]
    if view.get("cause"):
        lines.append(f"  {terminal(view['cause'])}")
    for image in view.get("images", []):
        outputs = image.get("outputs") or []
        detail = (
            f"{image['errorCode']}: {terminal(image['cause'])}"
            if image.get("errorCode")
            else f"{len(outputs)} output(s){_quality_text(outputs)}"
        )
        lines.append(f"  {terminal(image['name']):<30} {image['status']:<10} {detail}")
        for output in outputs:
            lines += _compliance_lines(output)
        if len(outputs) > 1:
            lines += [f"  {'':<30} {'':<10} {_variant_text(o)}" for o in outputs]
        if len(image.get("attempts") or []) > 1:
            lines.append(f"  {'':<30} {'':<10} {attempts_summary(image['attempts'])}")
    counts = view.get("counts", {})
    summary = f"{counts.get('SUCCEEDED', 0)} succeeded, {counts.get('FAILED', 0)} failed"
    if counts.get("CANCELLED"):
        summary += f", {counts['CANCELLED']} cancelled"
    lines.append(summary)
    eta = _eta_text(view)
    if eta:
        lines.append(eta)
    spent = wording.cost_words(
        view.get("cost") or {}, finished=view["status"] in {s.value for s in TERMINAL_JOB_STATUSES}
    )
    if spent:
        lines.append(spent)
    rewrite = view.get("reportRewrite") or {}
    if rewrite:  # a large job's pick: the report follows in the background
        waiting = f" (waiting to be started: {rewrite.get('lastError')})" if rewrite.get("status") == "FAILED" else ""
        lines.append(f"the report is being updated with your picks{waiting}")
    if (view.get("review") or {}).get("status") == "WAITING":
        deadline = deadline_words(str(view["review"].get("deadline")))
        lines.append(f"waiting for your review. {deadline}: backdrop review {view['jobId']}")
    if view.get("retriedAs"):
        lines.append(f"its failed images were sent again as job {view['retriedAs']}")
    webhook = view.get("webhook")
    if webhook:
        lines.append(
            f"webhook {webhook['url']}: {webhook['status']}"
            + (f" ({webhook['lastError']})" if webhook.get("lastError") else "")
        )
    return "\n".join(lines)


# NAME_MAX: most Linux and macOS file systems hold a name of at most 255 *bytes* (a UTF-8 "é" is
# two), while the API accepts names of 255 characters (contracts.MAX_FILE_NAME_LENGTH); the
# directory's own limit is asked for where the system can tell.
NAME_MAX_BYTES = 255


def _name_max(out: Path) -> int:
    try:
        return int(os.pathconf(out, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # Windows has no pathconf; 255 is NTFS's limit too
        return NAME_MAX_BYTES


def _fit_name(stem: str, tail: str, limit: int) -> str:
    """`stem + tail`, the stem cut (whole characters, never half a UTF-8 sequence) so the name
    fits `limit` bytes; the tail (image id, variant, extension) is what tells files apart."""
    budget = limit - len(os.fsencode(tail))
    encoded = os.fsencode(stem)
    if len(encoded) <= budget:
        return stem + tail
    cut = encoded[: max(0, budget)].decode("utf-8", "ignore") if budget > 0 else ""
    while cut and len(os.fsencode(cut)) > budget:  # a surrogate-escaped byte can count twice
        cut = cut[:-1]
    return cut.rstrip(" .") + tail


@dataclass
class Downloaded:
    """What `_download` wrote, and the files whose name was too long to keep (name: the image's
    own name, file: what it was written as)."""

    written: list[str] = field(default_factory=list)
    renamed: list[dict[str, str]] = field(default_factory=list)


def _download(client: BackdropClient, view: dict[str, Any], out: Path, *, all_variants: bool = False) -> Downloaded:
    """The job's results (its succeeded images, page by page) and its reports: each image's
    delivered variant, as the zip and the report deliver it, or with `all_variants` every
    variant. A file's name ends with its variant's number either way; a name the file system
    cannot hold is shortened (keeping that ending) and reported, so every file is written."""
    out.mkdir(parents=True, exist_ok=True)
    limit = _name_max(out)
    done = Downloaded()
    used: set[str] = set()
    for image in client.job_images(view["jobId"], status=ImageStatus.SUCCEEDED.value):
        outputs = (image.get("outputs") or []) if all_variants else delivered_outputs(image)
        for output in outputs:
            stem = Path(image["name"]).stem
            tail = f"-{image['imageId'][:8]}-{output['variant']}{Path(output['key']).suffix}"
            name = _fit_name(stem, tail, limit)
            if name in used:  # two images whose ids share 8 characters: the whole id tells them apart
                name = _fit_name(stem, f"-{image['imageId']}-{output['variant']}{Path(output['key']).suffix}", limit)
            used.add(name)
            target = out / name
            target.write_bytes(client.download(output["url"]))
            done.written.append(str(target))
            if name != stem + tail:
                done.renamed.append({"name": str(image["name"]), "file": str(target)})
    if view.get("reports"):
        for fmt, url in view["reports"].items():
            target = out / f"report-{view['jobId']}.{fmt}"
            target.write_bytes(client.download(url))
            done.written.append(str(target))
    return done


def _renamed_text(renamed: list[dict[str, str]]) -> str:
    if not renamed:
        return ""
    lines = [f"{len(renamed)} file name(s) were too long for the file system and were shortened:"]
    lines += [f"  {terminal(item['name'])} -> {terminal(Path(item['file']).name)}" for item in renamed]
    return "\n" + "\n".join(lines)


def _watch(args: argparse.Namespace, client: BackdropClient, job_id: str, poll_s: float) -> dict[str, Any]:
    """Follow a job to its end; Ctrl-C leaves it running and says how to come back."""
    try:
        client.wait(job_id, poll_s=poll_s, progress=_progress(args))
    except KeyboardInterrupt as exc:
        raise Interrupted(job_id) from exc
    if _stderr_is_terminal():  # ends the redrawn progress line
        _say(args, "\n")
    return client.job_with_images(job_id)  # the summary was polled; now every image, once


class Interrupted(Exception):
    def __init__(self, job_id: str | None) -> None:
        super().__init__(job_id)
        self.job_id = job_id


# ------------------------------------------------------------------------------ checks before uploading


def _prompt_background(args: argparse.Namespace) -> bool:
    """Whether the job's background is generated from --prompt (no other background chosen)."""
    chosen = args.color or args.background_photo or args.scene or args.preset
    return not chosen and args.background in (None, BackgroundSource.PROMPT.value)


GLOB_CHARACTERS = frozenset("*?[")


@dataclass
class Photos:
    """The photos a submit names, after folders and globs are expanded: `paths` in the order
    given (a folder's photos and a glob's matches sorted by name, each file once), `skipped` the
    files of a folder that are not photos by their extension, `problems` what names nothing."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)


def _is_photo_name(path: Path) -> bool:
    return path.suffix.lower() in CONTENT_TYPES and not path.name.startswith(".")


def expand_photos(arguments: list[str]) -> Photos:
    """`submit`'s PHOTO arguments: a file as it is (the API judges its bytes, whatever its name),
    a folder as the photos directly in it (PNG, JPEG, WEBP, HEIC/HEIF, AVIF by extension; other
    files are listed as skipped), a glob the shell did not expand (quoted, or on Windows) as its
    matches. Nothing is read here."""
    found = Photos()
    seen: set[Path] = set()

    def take(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.paths.append(path)

    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            entries = sorted((p for p in path.iterdir() if p.is_file()), key=lambda p: p.name)
            photos = [p for p in entries if _is_photo_name(p)]
            found.skipped += [p for p in entries if not _is_photo_name(p) and not p.name.startswith(".")]
            if not photos:
                found.problems.append({"field": "photos", "message": f"folder {argument} holds no photo"})
            for photo in photos:
                take(photo)
        elif not path.exists() and GLOB_CHARACTERS & set(argument):
            matches = [Path(m) for m in sorted(glob.glob(argument)) if Path(m).is_file()]
            if not matches:
                found.problems.append({"field": "photos", "message": f"no file matches {argument}"})
            for match in matches:
                take(match)
        else:
            take(path)  # a missing or unreadable file is listed by the upload with its reason
    return found


# a well-formed image ref (contracts.IMAGE_REF_RE) standing for the background photo, which is
# checked for being readable here and uploaded after the photos
PLACEHOLDER_REF: Final = f"{'0' * 32}/{'0' * 32}.png"


def _flag_of(field: str) -> str:
    """The submit flag behind a field of the job request ("placement.fill" is --fill)."""
    head, _, rest = field.partition(".")
    if head == "placement" and rest:
        name = rest.split(".")[0]
        return "--size" if name in ("width", "height") else f"--{name.replace('allowUpscale', 'allow-upscale')}"
    return {"background": "--background"}.get(head, f"--{head}")


def _check_background_flags(
    args: argparse.Namespace, presets: list[dict[str, Any]] | None, add: Callable[[str, str], None]
) -> None:
    """The background, placement, preset and format flags, as POST /jobs will judge them (the same
    chalicelib parsers for the background and the placement; the preset against the deployment's
    GET /presets), so nothing is uploaded for a job the API would refuse."""
    preset: dict[str, Any] | None = None
    if args.preset is not None:
        known = {p["key"]: p for p in presets or []}
        preset = known.get(args.preset)
        if preset is None:
            add("--preset", f"unknown preset {args.preset!r}; presets: {', '.join(sorted(known)) or 'none'}")
    try:
        # a placeholder ref: the background photo is checked for being readable above, uploaded later
        request = background_request(args, PLACEHOLDER_REF if args.background_photo else None)
    except ApiError as exc:
        add(f"--{'background' if 'background' in exc.message else 'size'}", exc.message)
        return
    problems = Problems("the submit flags are not valid")
    parsed = parse_background("background", request.get("background"), problems)
    parse_placement(request.get("placement"), problems)
    for problem in problems.items:
        add(_flag_of(problem["field"]), problem["message"])
    source = parsed.source if parsed else None
    if source is None and request.get("background") is None:
        source = BackgroundSource.COLOR if preset else BackgroundSource.PROMPT
    output_format = args.format or ((preset or {}).get("apply") or {}).get("outputFormat")
    if source is BackgroundSource.TRANSPARENT and output_format == contracts.OutputFormat.JPEG.value:
        add("--format", "a transparent background needs a format with alpha: png or webp, not jpeg")


def check_submit(
    args: argparse.Namespace,
    photos: list[Path],
    catalogue: dict[str, Any],
    presets: list[dict[str, Any]] | None = None,
    photo_problems: list[dict[str, str]] | None = None,
) -> None:
    """Every flag of `submit`, against the deployment's models and limits, before any upload:
    all problems at once, as VALIDATION_FAILED (MODEL_UNAVAILABLE when only the model is wrong)
    with one detail per flag."""
    problems: list[dict[str, str]] = list(photo_problems or [])

    def add(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    if not photos and not problems:
        add("photos", "no photo to send")
    if len(photos) > contracts.MAX_IMAGES_PER_JOB:
        add("photos", f"{len(photos):,} photos: a job takes at most {contracts.MAX_IMAGES_PER_JOB:,}")
    models = {m["key"]: m for m in catalogue.get("models", [])}
    key = args.model or catalogue.get("default")
    usable = ", ".join(sorted(k for k, m in models.items() if m.get("selectable"))) or "none"
    model = models.get(key or "")
    if model is None:
        add("--model", f"unknown model {key!r}; models you can use: {usable}")
    elif not model.get("selectable"):
        why = model.get("unavailableHere") or f"{key} has reached end of life"
        add("--model", f"{why}; models you can use: {usable}")
    if model is not None:
        limits = model.get("limits", {})
        prompt = args.prompt or ""
        if limits.get("promptRequired") and _prompt_background(args) and not prompt.strip():
            add("--prompt", f"{key} needs a prompt (or choose --color, --background-photo, --scene or --preset)")
        if len(prompt) > limits.get("promptMax", len(prompt)):
            add("--prompt", f"{len(prompt):,} characters; {key} takes at most {limits['promptMax']:,}")
        negative = args.negative or ""
        if len(negative) > limits.get("negativePromptMax", len(negative)):
            add("--negative", f"{len(negative):,} characters; {key} takes at most {limits['negativePromptMax']:,}")
        most = limits.get("maxVariants", 1)
        if not 1 <= args.variants <= most:
            add("--variants", f"{key} makes 1 to {most} variant(s) per image, not {args.variants}")
        if args.seed is not None and not 0 <= args.seed <= limits.get("seedMax", args.seed):
            add("--seed", f"{key} takes a seed from 0 to {limits['seedMax']:,}")
        styles = limits.get("stylePresets") or []
        if args.style is not None and args.style not in styles:
            offered = ", ".join(styles) if styles else "no style presets"
            add("--style", f"{key} offers {offered}")
    if args.scene or args.background == BackgroundSource.SCENE.value:
        scenes = [m for m in models.values() if m.get("role") == "scene"]
        if scenes and not any(m.get("selectable") for m in scenes):
            # e.g. the scene model is offered on demand in us-west-2 only (GET /models says why)
            why = "; ".join(str(m.get("unavailableHere") or f"{m['key']} has reached end of life") for m in scenes)
            add("--scene", f"no scene background in this deployment: {why}")
    if args.color is not None:
        try:
            parse_color(args.color)
        except ValueError as exc:
            add("--color", str(exc))
    if args.background_photo is not None and not Path(args.background_photo).is_file():
        add("--background-photo", f"{args.background_photo} cannot be read")
    if args.re_rolls is not None and not 0 <= args.re_rolls <= contracts.MAX_RE_ROLLS:
        add("--re-rolls", f"from 0 (no re-rolls) to {contracts.MAX_RE_ROLLS}, not {args.re_rolls}")
    if args.webhook is not None:
        problem = webhook_rules.check_url_syntax(args.webhook)
        if problem:
            add("--webhook", problem)
    if args.out and not args.wait:
        add("--out", "--out needs --wait (or download later: `backdrop download JOB --out DIR`)")
    _check_background_flags(args, presets, add)
    if args.budget is not None and not args.budget > 0:
        add("--budget", f"a budget is a number of US dollars above 0, not {args.budget:g}")
    if args.review_hours is not None and not (
        contracts.MIN_REVIEW_SECONDS <= args.review_hours * 3600 <= contracts.MAX_REVIEW_HOURS * 3600
    ):
        add("--review-hours", f"from 1 minute ({60 / 3600:.3f}) to {contracts.MAX_REVIEW_HOURS} hours")
    if problems:
        # the API's own code when the model is all that is wrong
        only_model = all(p["field"] == "--model" for p in problems)
        code = contracts.ErrorCode.MODEL_UNAVAILABLE if only_model else contracts.ErrorCode.VALIDATION_FAILED
        raise ApiError(0, code.value, summarise("nothing was uploaded", problems), problems)


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
    profile = profile_name(args)
    _save(
        profile,
        {
            "api": args.api,
            "clientId": args.client_id,
            "region": args.region,
            "clientSecret": args.client_secret,
            "cognitoEndpoint": args.cognito_endpoint,
            "username": args.username,
            "tokens": _tokens_dict(tokens),
        },
    )
    _print(
        args,
        {"signedIn": args.username, "api": args.api, "profile": profile},
        f"signed in as {args.username} to {args.api} (profile {profile})",
    )
    return EXIT_OK


def _usd(value: Any) -> str:
    return f"${float(value):.3f}" if value is not None else "?"


def models_text(catalogue: dict[str, Any]) -> str:
    """GET /models for a person: each model, whether this deployment can use it (and why not),
    the Regions it is offered in, its price per call and what each background recipe costs a
    photo (the registry's prices, with their source and date)."""
    lines = [f"models in {catalogue.get('region') or '?'} (default {catalogue.get('default')}):"]
    for model in catalogue.get("models", []):
        lifecycle = (model.get("lifecycle") or {}).get("status", "?")
        usable = (
            "usable here"
            if model.get("selectable")
            else f"not usable here: {model.get('unavailableHere') or lifecycle}"
        )
        lines.append(f"  {model['key']:<22} {terminal(str(model.get('displayName') or ''))}")
        lines.append(f"      {lifecycle}, {usable}")
        lines.append(f"      regions: {', '.join(model.get('regions') or []) or '?'}")
        calls = model.get("callPricesUsd") or {}
        if calls:
            lines.append("      calls: " + ", ".join(f"{name} {_usd(price)}" for name, price in calls.items()))
        if model.get("role") == "scene":
            recipes = f"a scene background: {_usd(model.get('pricePerImageUsd'))} once per batch"
        elif len(calls) >= 2:  # a cut-out model: composed backgrounds are its first call only
            recipes = (
                f"prompt {_usd(model.get('pricePerImageUsd'))} a photo; color, image, transparent "
                f"{_usd(model.get('composePricePerImageUsd'))} a photo; scene "
                f"{_usd(model.get('composePricePerImageUsd'))} a photo plus the scene call; "
                f"re-roll {_usd(model.get('reRollPriceUsd'))}"
            )
        else:
            recipes = f"prompt only, {_usd(model.get('pricePerImageUsd'))} a photo; re-roll {_usd(model.get('reRollPriceUsd'))}"
        lines.append(f"      recipes: {recipes}")
        lines.append(f"      prices: {terminal(str(model.get('priceSource') or '?'))}")
    return "\n".join(lines)


def cmd_models(args: argparse.Namespace) -> int:
    catalogue = _client(args).models()
    _print(args, catalogue, models_text(catalogue))
    return EXIT_OK


def cmd_logout(args: argparse.Namespace) -> int:
    profile = profile_name(args)
    data = _read_config()
    removed = data["profiles"].pop(profile, None) is not None
    _write_config(data)
    _print(
        args,
        {"profile": profile, "removed": removed},
        f"profile {profile} " + ("removed" if removed else "was not signed in"),
    )
    return EXIT_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    current = profile_name(args)
    profiles = [
        {"profile": name, "api": p.get("api"), "username": p.get("username"), "current": name == current}
        for name, p in sorted(_read_config()["profiles"].items())
    ]
    lines = [f"{'*' if p['current'] else ' '} {p['profile']:<12} {p['username']}  {p['api']}" for p in profiles]
    _print(args, {"profiles": profiles}, "\n".join(lines) or "no profiles yet: run `backdrop login`")
    return EXIT_OK


def _job_page(client: BackdropClient, job_id: str) -> str:
    """The job's page in the deployment's web app (GET /health's appUrl), or "" without one."""
    try:
        app_url = client.health().get("appUrl")
    except ApiError:  # the link is a courtesy: never what makes a command fail
        return ""
    return contracts.job_page_url(app_url, job_id) if isinstance(app_url, str) and app_url else ""


def _rejected_text(rejected: list[dict[str, Any]], total: int) -> str:
    lines = [f"{len(rejected)} of {total} file(s) were not uploaded:"]
    lines += [f"  {terminal(r['name'])}: {terminal(r['message'])}" for r in rejected]
    return "\n".join(lines)


def cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    photos = expand_photos(args.photos)
    paths = photos.paths
    catalogue = client.models()
    presets = client.presets()["presets"] if args.preset is not None else None
    check_submit(args, paths, catalogue, presets, photos.problems)  # before any upload
    if photos.skipped:
        names = ", ".join(terminal(p.name) for p in photos.skipped[:5]) + (", ..." if len(photos.skipped) > 5 else "")
        _say(args, f"skipped {len(photos.skipped)} file(s) that are not photos by their name: {names}\n")
    chosen = next((m for m in catalogue["models"] if m["key"] == (args.model or catalogue["default"])), None)
    if chosen and chosen["lifecycle"]["status"] == "LEGACY":
        _say(
            args,
            f"warning: {chosen['key']} is Legacy on Bedrock and reaches end of life on {chosen['lifecycle']['eolDate']}\n",
        )
    uploaded = client.upload_files(paths, progress=_upload_progress(args))
    if uploaded.rejected:
        _say(args, _rejected_text(uploaded.rejected, len(paths)) + "\n")
    if not uploaded.uploaded:
        names = "; ".join(f"{r['name']}: {r['message']}" for r in uploaded.rejected[:3])
        raise ApiError(
            0, "NOTHING_UPLOADED", f"none of the {len(paths)} file(s) could be uploaded ({names})", uploaded.rejected
        )
    answer = {"labels": {}, "unavailable": {}} if args.no_labels else client.label_results(uploaded.refs)
    names = {u["imageRef"]: u["name"] for u in uploaded.uploaded}
    for ref, why in answer.get("unavailable", {}).items():
        _say(args, f"no labels for {terminal(names[ref])}: {terminal(why['message'])}\n")
    labels = answer["labels"]
    background_ref = None
    if args.background_photo:  # the background photo goes up the same presigned way, as its own upload
        photo = client.upload_files([Path(args.background_photo)])
        if not photo.uploaded:
            raise ApiError(
                0,
                "BACKGROUND_INVALID",
                f"the background photo was not uploaded: {photo.rejected[0]['message']}",
                photo.rejected,
            )
        background_ref = photo.uploaded[0]["imageRef"]
    job: dict[str, Any] = {
        **background_request(args, background_ref),
        "prompt": args.prompt or "",
        "mode": args.mode,
        "variants": args.variants,
        "notify": not args.no_email,
        "images": [
            {**u, "labels": [label["name"] for label in labels.get(u["imageRef"], [])]} for u in uploaded.uploaded
        ],
    }
    optional = (
        ("negativePrompt", args.negative),
        ("model", args.model),
        ("seed", args.seed),
        ("outputFormat", args.format),
        ("stylePreset", args.style),
        ("webhookUrl", args.webhook),
        ("budgetUsd", args.budget),
        ("reviewHours", args.review_hours),
        ("reRolls", args.re_rolls),
        ("contentCredentials", False if args.no_credentials else None),
        ("keepLocation", True if args.keep_location else None),
    )
    job.update({key: value for key, value in optional if value is not None})
    submitted = client.submit(job)
    skipped = EXIT_IMAGES_FAILED if uploaded.rejected else EXIT_OK
    if not args.wait:
        if uploaded.rejected:
            submitted["rejected"] = uploaded.rejected
        cost = f"; {submitted['estimate']['sentence']}" if submitted.get("estimate") else ""
        page = _job_page(client, submitted["jobId"])
        if page:
            submitted["page"] = page
        _print(
            args,
            submitted,
            f"submitted job {submitted['jobId']} ({submitted['imageCount']} images{cost}); "
            f"follow it with `backdrop watch {submitted['jobId']}`" + (f" or in the web app: {page}" if page else ""),
        )
        return skipped
    _say(args, f"job {submitted['jobId']}\n")
    view = _watch(args, client, submitted["jobId"], args.poll)
    renamed_text = ""
    if args.out:
        downloaded = _download(client, view, Path(args.out))
        view["downloaded"], view["renamed"] = downloaded.written, downloaded.renamed
        renamed_text = _renamed_text(downloaded.renamed)
    text = _status_text(view) + renamed_text
    if uploaded.rejected:
        view["rejected"] = uploaded.rejected
        text += "\n" + _rejected_text(uploaded.rejected, len(paths))
    _print(args, view, text)
    return max(_exit_code(view), skipped)


def cmd_watch(args: argparse.Namespace) -> int:
    client = _client(args)
    view = _watch(args, client, args.job, args.poll)
    renamed_text = ""
    if args.out:
        downloaded = _download(client, view, Path(args.out))
        view["downloaded"], view["renamed"] = downloaded.written, downloaded.renamed
        renamed_text = _renamed_text(downloaded.renamed)
    _print(args, view, _status_text(view) + renamed_text)
    return _exit_code(view)


def cmd_jobs(args: argparse.Namespace) -> int:
    page = _client(args).jobs(limit=args.limit, cursor=args.cursor)
    lines = [
        f"{j['jobId']}  {j['status']:<9} {j.get('imageCount', 0):>5} images  {terminal(j.get('prompt') or '')}"[:120]
        for j in page["jobs"]
    ]
    if page.get("nextCursor"):
        lines.append(f"(more: backdrop jobs --cursor {page['nextCursor']})")
    _print(args, page, "\n".join(lines) or "no jobs yet")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    view = client.job_with_images(args.job, status=args.only)
    page = _job_page(client, args.job)
    if page:
        view["page"] = page
    _print(args, view, _status_text(view) + (f"\nin the web app: {page}" if page else ""))
    return _exit_code(view)


def cmd_download(args: argparse.Namespace) -> int:
    client = _client(args)
    view = client.job_summary(args.job)
    done = _download(client, view, Path(args.out), all_variants=args.all_variants)
    _print(
        args,
        {"jobId": args.job, "files": done.written, "renamed": done.renamed},
        f"{len(done.written)} file(s) written to {args.out}" + _renamed_text(done.renamed),
    )
    return _exit_code(view)


def cmd_retry(args: argparse.Namespace) -> int:
    client = _client(args)
    submitted = client.retry(args.job)
    if not args.wait:
        _print(args, submitted, f"retrying {submitted['imageCount']} failed image(s) as job {submitted['jobId']}")
        return EXIT_OK
    view = _watch(args, client, submitted["jobId"], args.poll)
    _print(args, view, _status_text(view))
    return _exit_code(view)


def cmd_pick(args: argparse.Namespace) -> int:
    answer = _client(args).pick(args.job, args.image, args.variant)
    report = {
        "REWRITTEN": "the report was written again",
        "REWRITING": "the report is being written again (a large job: see `backdrop status`)",
        "REWRITE_PENDING": f"the report is not updated yet ({answer.get('reportError')}); the next pick or "
        "Backdrop's sweep within the hour updates it",
    }.get(answer["report"], "the report will say so")
    _print(args, answer, f"image {args.image} of job {args.job}: variant {answer['delivered']} is delivered; {report}")
    return EXIT_OK


def cmd_regenerate(args: argparse.Namespace) -> int:
    client = _client(args)
    answer = client.regenerate(args.job, args.image, seed=args.seed, prompt=args.prompt)
    text = (
        f"regenerating image {args.image} as job {answer['jobId']} (seed {answer['seed']}, "
        f"{answer['estimate']['sentence']}); its result becomes one more variant to pick"
    )
    if not args.wait:
        _print(args, answer, f"{text}; follow it: backdrop watch {answer['jobId']}")
        return EXIT_OK
    view = _watch(args, client, answer["jobId"], args.poll)
    _print(args, view, _status_text(view))
    return _exit_code(view)


def _unfinished_images(counts: dict[str, Any]) -> int:
    return sum(int(v or 0) for v in counts.values()) - _finished_images(counts)


def _cancel_text(job_id: str, counts: dict[str, Any], closing: bool) -> str:
    text = (
        f"job {job_id} cancelled: {counts.get('SUCCEEDED', 0)} image(s) had finished and keep their results, "
        f"{counts.get('CANCELLED', 0)} cancelled"
    )
    if counts.get("FAILED"):
        text += f", {counts['FAILED']} failed"
    unfinished = _unfinished_images(counts)
    if closing and unfinished:
        # a large job is closed in the background (POST /jobs/{id}/cancel answers 202 first)
        text += (
            f", {unfinished} still being cancelled in the background: `backdrop status {job_id}` shows the final counts"
        )
    return text


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel, then (unless --no-wait) follow a large job's background closing until every
    unfinished image is CANCELLED and the report is written, so the counts printed are final."""
    client = _client(args)
    answer = client.cancel(args.job)
    counts = dict(answer.get("counts") or {})
    closing = bool(answer.get("closing"))
    deadline = time.monotonic() + args.wait_s
    while closing and not args.no_wait and time.monotonic() < deadline:
        time.sleep(args.poll)
        view = client.job_summary(args.job)
        counts = dict(view.get("counts") or {})
        closing = not view.get("reports") or _unfinished_images(counts) > 0
        if not args.json and _stderr_is_terminal():
            sys.stderr.write(f"\rclosing: {counts.get('CANCELLED', 0)} cancelled, {_unfinished_images(counts)} to go ")
            sys.stderr.flush()
    if not args.no_wait and answer.get("closing") and not args.json and _stderr_is_terminal():
        sys.stderr.write("\n")
    answer = {**answer, "counts": counts, "closing": closing}
    _print(args, answer, _cancel_text(args.job, counts, closing))
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        what = "its results, reports" + (" and uploaded originals" if args.originals else "")
        if not sys.stdin.isatty():
            raise ApiError(0, "CONFIRMATION_REQUIRED", f"deleting job {args.job} removes {what}: pass --yes to confirm")
        reply = input(f"Delete job {args.job}, {what}? [y/N] ")
        if reply.strip().lower() not in ("y", "yes"):
            _print(args, {"jobId": args.job, "deleted": False}, "nothing deleted")
            return EXIT_OK
    answer = _client(args).delete(args.job, originals=args.originals)
    removed = answer["removed"]
    if answer.get("deleting"):  # a large job: removed in the background (202)
        _print(
            args,
            answer,
            f"job {args.job} is being deleted in the background ({answer.get('imageCount', 0)} image(s); so far "
            f"{removed['results']} result(s), {removed['images']} image record(s)): run the same delete again "
            "to see its progress",
        )
        return EXIT_OK
    already = " (it had already been deleted)" if answer.get("alreadyDeleted") else ""
    _print(
        args,
        answer,
        f"job {args.job} deleted{already}: {removed['results']} result(s), {removed['reports']} report(s), "
        f"{removed['originals']} original(s)",
    )
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    """Reject (or keep) results of a job waiting for review, then deliver it with --approve."""
    client = _client(args)
    decisions = {image_id: "REJECTED" for image_id in args.reject} | {image_id: "APPROVED" for image_id in args.keep}
    lines = []
    if decisions:
        client.review(args.job, decisions)
        lines.append(f"recorded {len(decisions)} decision(s) on job {args.job}")
    if args.approve:
        released = client.approve(args.job)
        lines.append(f"job {args.job} approved: delivering, {released['rejected']} result(s) rejected")
    answer: dict[str, Any] = {"jobId": args.job, "decisions": decisions, "approved": args.approve}
    if not lines:  # nothing asked: say how long the owner has
        review_state = client.job(args.job, limit=0).get("review") or {}
        answer["review"] = review_state
        when = f"; {deadline_words(str(review_state['deadline']))}" if review_state.get("deadline") else ""
        lines.append(f"nothing to do: give --reject, --keep or --approve{when}")
    _print(args, answer, "\n".join(lines))
    return EXIT_OK


def cmd_webhook_secret(args: argparse.Namespace) -> int:
    answer = _client(args).webhook_secret(rotate=args.rotate)
    _print(args, answer, answer["secret"])
    return EXIT_OK


def cmd_verify_webhook(args: argparse.Namespace) -> int:
    """Check a received webhook: exit 0 when it is Backdrop's and fresh, 1 when it is not."""
    secret = args.secret or _client(args).webhook_secret()["secret"]
    try:
        body = Path(args.body_file).read_bytes() if args.body_file != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise ApiError(0, "LOCAL_ERROR", f"cannot read {args.body_file}: {exc.strerror or exc}") from exc
    try:
        signed_at = webhook_rules.verify_signature(secret, body, args.signature, tolerance_s=args.tolerance)
    except webhook_rules.WebhookSignatureError as exc:
        _print(args, {"valid": False, "reason": str(exc)}, f"not valid: {exc}")
        return EXIT_IMAGES_FAILED
    _print(args, {"valid": True, "signedAt": signed_at}, f"valid: signed by Backdrop at {signed_at} (unix time)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """What a delivered file says about itself (chalicelib/delivery/provenance_sign.py), in words: exit 0
    when its Content Credentials are intact, 1 when it has none or they fail validation. Runs
    offline: no sign-in, no API."""
    from chalicelib.delivery import provenance, provenance_sign

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ApiError(0, "LOCAL_ERROR", f"cannot read {args.file}: {exc.strerror or exc}") from exc
    try:
        creds = provenance_sign.read(data)
        lines = provenance_sign.describe(data)
        xmp = provenance.read_xmp(data)
    except Exception as exc:  # the library refuses a file it cannot parse: say so, never a traceback
        raise ApiError(0, "LOCAL_ERROR", f"cannot read the credentials of {args.file}: {exc}") from exc
    intact = creds is not None and not creds.tampered
    data_out = {
        "file": args.file,
        "contentCredentials": None
        if creds is None
        else {
            "state": creds.state,
            "signer": creds.signer,
            "trusted": not creds.untrusted,
            "failures": list(creds.failures),
            "claims": dict(creds.result),
            "actions": [dict(a) for a in creds.actions],
        },
        "xmp": provenance.xmp_fields(xmp) if xmp else None,
    }
    _print(args, data_out, "\n".join([args.file, *lines]))
    return EXIT_OK if intact else EXIT_IMAGES_FAILED


# ------------------------------------------------------------------------------ the parser


def parser() -> argparse.ArgumentParser:
    # the global flags may come before or after the command; after it, SUPPRESS keeps the value
    # given before it unless it is repeated
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument("--profile", default=argparse.SUPPRESS, help="the deployment to use (BACKDROP_PROFILE)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p = _Parser(prog="backdrop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", default=False, help="machine-readable output, errors included")
    p.add_argument("--profile", default=None, help="the deployment to use (default: BACKDROP_PROFILE or 'default')")
    p.add_argument("--debug", action="store_true", default=False, help="a traceback for an unexpected error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, run: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        parsed = sub.add_parser(name, parents=[common], help=help_text)
        parsed.set_defaults(run=run)
        return parsed

    login = command("login", cmd_login, "sign in with your Cognito user (into --profile)")
    login.add_argument("--api", required=True, help="the API URL the deploy (or `make run`) printed")
    login.add_argument("--client-id", required=True, help="the Cognito app client id")
    login.add_argument("--region", default="us-east-1")
    login.add_argument("--client-secret", default=None, help="only if the app client has a secret")
    login.add_argument("--cognito-endpoint", default=None, help="the local stack's moto endpoint (local use only)")
    login.add_argument("--username", required=True)
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    command("logout", cmd_logout, "forget a profile's sign-in")
    command("profiles", cmd_profiles, "the deployments you are signed in to")
    command("models", cmd_models, "the models and background recipes, with their Regions and prices")

    submit = command("submit", cmd_submit, "upload photos and start a job")
    submit.add_argument("photos", nargs="+")
    submit.add_argument("--prompt", default=None, help="the new background, in words (a prompt background)")
    submit.add_argument(
        "--background",
        default=None,
        choices=[source.value for source in BackgroundSource],
        help="what goes behind the subject (default: prompt; implied by --color, --background-photo or --scene)",
    )
    submit.add_argument("--color", default=None, help="a colour background, as hex: #FFFFFF")
    submit.add_argument("--background-photo", default=None, help="your own background photo (an image background)")
    submit.add_argument("--scene", default=None, help="one scene generated for the whole batch, in words")
    submit.add_argument(
        "--preset", default=None, help="a marketplace preset: amazon-main, shopify, etsy, ebay, google-merchant"
    )
    submit.add_argument("--size", default=None, help="output size WIDTHxHEIGHT (colour, photo, transparent, scene)")
    submit.add_argument("--aspect", default=None, help="output aspect ratio, such as 1:1 or 4:5")
    submit.add_argument("--fill", type=float, default=None, help="how much of the frame the subject fills, in %%")
    submit.add_argument(
        "--anchor",
        default=None,
        choices=list(ANCHORS),
    )
    submit.add_argument("--margin", type=float, default=None, help="margin on each side, in %% of the canvas")
    submit.add_argument("--allow-upscale", action="store_true", help="let a small subject be enlarged to fill")
    submit.add_argument("--negative", default=None, help="what the background must not have")
    submit.add_argument(
        "--mode", default="PRECISE", choices=[m.value for m in contracts.Mode], help="PRECISE keeps subject pixels"
    )
    submit.add_argument("--model", default=None, help="model key (see GET /models); default: the deployment's")
    submit.add_argument("--variants", type=int, default=1)
    submit.add_argument("--seed", type=int, default=None, help="lock the seed to reproduce a result")
    submit.add_argument(
        "--format",
        default=None,
        choices=[f.value for f in contracts.OutputFormat],
        help="result format (default: as the original: JPEG in, JPEG out; PNG otherwise)",
    )
    submit.add_argument("--style", default=None, help="a style preset of the model (GET /models, stylePresets)")
    submit.add_argument("--webhook", default=None, help="an https:// URL to POST to (signed) when the job finishes")
    submit.add_argument(
        "--no-labels", action="store_true", help="keep the whole detected subject, not only labelled objects"
    )
    submit.add_argument(
        "--budget", type=float, default=None, help="the most this job may spend on model calls, in US dollars"
    )
    submit.add_argument(
        "--review-hours",
        type=float,
        default=None,
        help="wait for your approval (backdrop review) before delivering, at most this many hours",
    )
    submit.add_argument(
        "--re-rolls",
        type=int,
        default=None,
        help=f"remake an image whose quality check fails with a new seed, up to N times "
        f"(0 to {contracts.MAX_RE_ROLLS}; default {contracts.DEFAULT_RE_ROLLS})",
    )
    submit.add_argument("--no-email", action="store_true", help="no email when this job is done")
    submit.add_argument(
        "--no-credentials", action="store_true", help="no signed Content Credentials (C2PA) in the results"
    )
    submit.add_argument("--keep-location", action="store_true", help="keep the originals' GPS position in results")
    submit.add_argument("--wait", action="store_true", help="wait for the job, with a progress bar")
    submit.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    submit.add_argument("--out", default=None, help="with --wait: download results and reports here")

    watch = command("watch", cmd_watch, "follow a job until it finishes (re-attach after Ctrl-C)")
    watch.add_argument("job")
    watch.add_argument("--out", default=None, help="download results and reports here when it finishes")
    watch.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    jobs = command("jobs", cmd_jobs, "your jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--cursor", default=None, help="the next page, as the previous one printed")
    status = command("status", cmd_status, "per-image status of a job")
    status.add_argument("job")
    status.add_argument(
        "--only", default=None, choices=[s.value for s in ImageStatus], help="list only the images in this status"
    )
    download = command("download", cmd_download, "download a job's results and reports")
    download.add_argument("job")
    download.add_argument("--out", required=True)
    download.add_argument(
        "--all-variants",
        action="store_true",
        help="every variant of each image (by default only the one delivered: your pick, or the best)",
    )
    retry = command("retry", cmd_retry, "re-run the failed images of a finished job")
    retry.add_argument("job")
    retry.add_argument("--wait", action="store_true")
    retry.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    pick = command("pick", cmd_pick, "deliver another variant of an image (the archive and report follow)")
    pick.add_argument("job")
    pick.add_argument("image", help="the image id (backdrop status JOB --json lists them)")
    pick.add_argument("variant", type=int, help="one of the image's variants: 1, 2, ...")
    regenerate = command("regenerate", cmd_regenerate, "make one more variant of an image, to pick")
    regenerate.add_argument("job")
    regenerate.add_argument("image", help="the image id")
    regenerate.add_argument("--seed", type=int, default=None, help="default: one derived from the job's seed")
    regenerate.add_argument("--prompt", default=None, help="an edited prompt (default: the image's)")
    regenerate.add_argument("--wait", action="store_true", help="wait for it, with a progress bar")
    regenerate.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    cancel = command("cancel", cmd_cancel, "stop a job: images not finished end CANCELLED")
    cancel.add_argument("job")
    cancel.add_argument(
        "--no-wait", action="store_true", help="do not wait for a large job's closing (the counts are not final)"
    )
    cancel.add_argument("--wait-s", type=float, default=300.0, help=argparse.SUPPRESS)
    cancel.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    delete = command("delete", cmd_delete, "delete a finished job, its results and reports")
    delete.add_argument("job")
    delete.add_argument("--originals", action="store_true", help="also delete the uploaded originals")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    review = command("review", cmd_review, "decide on the results of a job waiting for review, then deliver it")
    review.add_argument("job")
    review.add_argument("--reject", nargs="*", default=[], metavar="IMAGE_ID", help="results not to deliver")
    review.add_argument("--keep", nargs="*", default=[], metavar="IMAGE_ID", help="results to deliver after all")
    review.add_argument("--approve", action="store_true", help="deliver now (the report and the email follow)")
    secret = command("webhook-secret", cmd_webhook_secret, "your webhook signing secret")
    secret.add_argument("--rotate", action="store_true", help="replace it with a new one")
    verify = command("verify-webhook", cmd_verify_webhook, "check a received webhook's signature")
    verify.add_argument("--body-file", required=True, help="the raw body as received ('-': standard input)")
    verify.add_argument("--signature", required=True, help="the Backdrop-Signature header's value")
    verify.add_argument("--secret", default=None, help="default: your secret, from the API")
    verify.add_argument(
        "--tolerance", type=int, default=contracts.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS, help="replay window, seconds"
    )
    check = command("verify", cmd_verify, "what a delivered file says it is: its Content Credentials and XMP")
    check.add_argument("file", help="a result image (JPEG, PNG or WebP)")
    return p


def _error(json_mode: bool, code: str, message: str, details: Any = None) -> None:
    if json_mode:
        print(json.dumps({"error": {"code": code, "message": message, "details": details or []}}))
    else:
        print(f"error: {code}: {_screen(' '.join(message.split()))}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in argv
    try:
        args = parser().parse_args(argv)
    except UsageError as exc:
        _error(json_mode, "USAGE", str(exc))
        return EXIT_ERROR
    debug = args.debug or os.environ.get("BACKDROP_DEBUG") == "1"
    try:
        return int(args.run(args))
    except ApiError as exc:
        _error(args.json, exc.code, exc.message, exc.details)
    except Interrupted as exc:
        if exc.job_id:
            message = f"interrupted; job {exc.job_id} keeps running: `backdrop watch {exc.job_id}` re-attaches"
        else:
            message = "interrupted"
        _error(args.json, "INTERRUPTED", message, [{"jobId": exc.job_id}] if exc.job_id else [])
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _error(args.json, "INTERRUPTED", "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _reader_gone()
    except Exception as exc:  # one line, never a traceback, unless asked for
        if debug:
            traceback.print_exc()
        code, message = _unexpected(exc)
        _error(args.json, code, message)
    return EXIT_ERROR


def _reader_gone() -> int:
    """The reader of our output stopped reading (`backdrop status JOB | head`): nothing to say,
    as for any Unix tool. What is still buffered goes nowhere, so the interpreter's last flush
    at exit cannot fail again; the exit status is a SIGPIPE death's, 128 + 13."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture): nothing is buffered there
        pass
    return EXIT_BROKEN_PIPE


def _unexpected(exc: Exception) -> tuple[str, str]:
    """An error no command turned into an ApiError, as (code, message)."""
    import requests
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, requests.RequestException | BotoCoreError):
        return UNREACHABLE, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ClientError):
        return "AWS_ERROR", str(exc)
    if isinstance(exc, OSError):
        return "LOCAL_ERROR", f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return "INTERNAL", f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
