"""The `backdrop` command through its own entry point (`cli.main`), against the real app on moto:
HTTP calls to the API go through Chalice's test client, presigned S3 uploads to moto."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import pytest
import requests
from builders import BUCKET
from chalice.test import Client
from harness import write_job_images

import app as backdrop_app
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.delivery import webhooks
from frontend import cli
from frontend.api_client import BackdropClient

API = "http://api.backdrop.test"


class _Answer:
    """What requests.Response offers the API client, from a Chalice test response."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.text = body.decode("utf-8", "replace")
        self.reason = ""
        self.content = body

    def json(self) -> Any:
        return json.loads(self.text)


class ChaliceSession(requests.Session):
    """API calls into the app through Chalice's test client; anything else (S3) as usual."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if not url.startswith(API):
            return super().request(method, url, **kwargs)
        path = urlsplit(url).path
        params = {k: v for k, v in (kwargs.get("params") or {}).items() if v is not None}
        self.calls.append((method, path))
        body = json.dumps(kwargs["json"]).encode() if kwargs.get("json") is not None else b""
        answer = self.client.http.request(
            method, path + (f"?{urlencode(params)}" if params else ""), headers=kwargs.get("headers") or {}, body=body
        )
        return _Answer(answer.status_code, answer.body)


@pytest.fixture
def api(
    resources: dict[str, Any], rekognition: Any, token_for: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ChaliceSession]:
    with Client(backdrop_app.app, stage_name="dev") as test_client:
        session = ChaliceSession(test_client)
        token = token_for("owner-1")
        monkeypatch.setattr(cli, "_client", lambda args: BackdropClient(API, lambda: token, session=session))
        monkeypatch.setattr(webhooks, "resolve_host", lambda host, port: ["93.184.215.14"])
        yield session


@pytest.fixture
def photos(tmp_path: Path, photo: Any) -> Any:
    def make(count: int) -> list[str]:
        paths = []
        for i in range(count):
            path = tmp_path / f"p{i}.png"
            path.write_bytes(photo(96, 96))
            paths.append(str(path))
        return paths

    return make


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    try:
        parsed = json.loads(out) if out.strip() else None
    except ValueError:
        parsed = out
    return code, parsed, err


def _uploads() -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=contracts.UPLOADS_PREFIX)
    return [o["Key"] for o in listed.get("Contents", [])]


# ------------------------------------------------------------------------------ flags before uploads


def test_every_bad_flag_is_refused_at_once_before_any_upload(api, photos, capsys) -> None:
    code, out, _ = _run(
        capsys,
        "submit",
        *photos(2),
        "--prompt",
        "x" * 10_001,
        "--model",
        "stability-inpaint",
        "--variants",
        "9",
        "--seed",
        "-1",
        "--style",
        "watercolour",
        "--webhook",
        "http://hooks.example.com/b",
        "--json",
    )
    assert code == 2
    error = out["error"]
    assert error["code"] == "VALIDATION_FAILED" and error["message"].startswith("nothing was uploaded")
    assert {d["field"] for d in error["details"]} == {"--prompt", "--variants", "--seed", "--style", "--webhook"}
    assert _uploads() == [] and ("POST", "/uploads") not in api.calls


@pytest.mark.parametrize(
    ("argv", "code", "field", "why"),
    [
        (["--model", "nova-canvas"], "MODEL_UNAVAILABLE", "--model", "end of life"),
        (["--model", "dall-e"], "MODEL_UNAVAILABLE", "--model", "unknown model 'dall-e'"),
        (["--out", "somewhere"], "VALIDATION_FAILED", "--out", "needs --wait"),
        # us-east-1: the scene model runs in us-west-2 only (GET /models says so), so no upload is wasted
        (["--scene", "a pale oak table"], "VALIDATION_FAILED", "--scene", "us-west-2 only"),
    ],
)
def test_a_bad_model_is_refused_before_any_upload(api, photos, capsys, argv, code, field, why) -> None:
    exit_code, out, _ = _run(capsys, "submit", *photos(1), "--prompt", "a studio", *argv, "--json")
    error = out["error"]
    assert exit_code == 2 and error["code"] == code
    assert error["details"][0]["field"] == field and why in error["message"]
    assert _uploads() == []


def test_more_photos_than_a_job_takes_are_refused_before_any_upload(api, photos, capsys, monkeypatch) -> None:
    monkeypatch.setattr(contracts, "MAX_IMAGES_PER_JOB", 3)
    code, _, err = _run(capsys, "submit", *photos(4), "--prompt", "a studio")
    assert code == 2 and "error: VALIDATION_FAILED: nothing was uploaded: photos: 4 photos" in err
    assert "\n" not in err.strip() and _uploads() == []


def test_a_bad_format_is_one_usage_line(api, photos, capsys) -> None:
    code, out, err = _run(capsys, "submit", *photos(1), "--prompt", "x", "--format", "gif")
    assert code == 2 and out is None
    assert err.startswith("error: USAGE: argument --format: invalid choice: 'gif'") and err.count("\n") == 1
    code, out, _ = _run(capsys, "--json", "submit", *photos(1), "--prompt", "x", "--format", "gif")
    assert code == 2 and out["error"]["code"] == "USAGE"


# ------------------------------------------------------------------------------ submit, progress, labels


def test_more_photos_than_one_labels_request_are_labelled_and_submitted(api, photos, capsys, monkeypatch) -> None:
    monkeypatch.setattr("frontend.api_client.LABEL_REFS_PER_REQUEST", 2)
    code, out, err = _run(capsys, "submit", *photos(5), "--prompt", "a studio", "--style", "photographic", "--json")
    assert code == 0, out
    assert out["imageCount"] == 5 and [c for c in api.calls if c == ("POST", "/labels")] == [("POST", "/labels")] * 3
    assert err == ""  # --json: nothing but the answer
    code, _, err = _run(capsys, "submit", *photos(3), "--prompt", "a studio")
    assert code == 0 and "uploading 3/3" in err and "uploading 1/3" in err


def test_submit_cancel_status_and_delete_from_the_command_line(api, photos, capsys, store) -> None:
    code, submitted, _ = _run(
        capsys, "submit", *photos(2), "--prompt", "a studio", "--webhook", "https://hooks.example.com/b", "--json"
    )
    assert code == 0
    job_id = submitted["jobId"]
    write_job_images(job_id)  # its stream record reaches the starter: the images are written
    code, cancelled, _ = _run(capsys, "cancel", job_id, "--json")
    assert (code, cancelled["status"], cancelled["counts"]["CANCELLED"]) == (0, "CANCELLED", 2)
    code, view, _ = _run(capsys, "status", job_id, "--json")
    assert code == 1 and view["status"] == "CANCELLED"  # nothing was made: a script must notice
    assert view["webhook"]["url"] == "https://hooks.example.com/b"
    code, text, _ = _run(capsys, "status", job_id)
    assert "0 succeeded, 0 failed, 2 cancelled" in text
    code, out, _ = _run(capsys, "delete", job_id, "--json")
    assert code == 2 and out["error"]["code"] == "CONFIRMATION_REQUIRED"  # not a terminal: no prompt, no delete
    assert store.get_job(job_id) is not None
    code, deleted, _ = _run(capsys, "delete", job_id, "--yes", "--originals", "--json")
    assert code == 0 and deleted["removed"]["originals"] == 2 and deleted["alreadyDeleted"] is False
    code, again, _ = _run(capsys, "delete", job_id, "--yes", "--json")
    assert code == 0 and again["alreadyDeleted"] is True
    code, out, err = _run(capsys, "cancel", job_id)
    assert code == 2 and err.startswith("error: NOT_FOUND:")


def test_delete_of_a_large_job_says_it_goes_on_in_the_background(api, photos, capsys, store, monkeypatch) -> None:
    from chalicelib.jobs import control as job_control

    monkeypatch.setattr(job_control, "SYNC_DELETE_LIMIT", 1)
    started: list[Any] = []
    monkeypatch.setattr(backdrop_app, "start_background", started.append)
    code, submitted, _ = _run(capsys, "submit", *photos(2), "--prompt", "a studio", "--json")
    job_id = submitted["jobId"]
    write_job_images(job_id)
    assert _run(capsys, "cancel", job_id, "--json")[0] == 0
    code, text, _ = _run(capsys, "delete", job_id, "--yes")
    assert code == 0 and f"job {job_id} is being deleted in the background (2 image(s)" in text
    assert "run the same delete again" in text and len(started) == 1
    code, view, _ = _run(capsys, "status", job_id, "--json")
    assert view["status"] == "DELETING" and view["deletion"]["deletingBy"] == "BACKGROUND"


def test_watch_re_attaches_and_ctrl_c_says_how(api, photos, capsys, store, monkeypatch) -> None:
    code, submitted, _ = _run(capsys, "submit", *photos(1), "--prompt", "a studio", "--json")
    job_id = submitted["jobId"]
    write_job_images(job_id)

    # Ctrl-C while waiting: the job keeps running, and the way back is printed
    def ctrl_c(self: BackdropClient, *args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(BackdropClient, "wait", ctrl_c)
    code, _, err = _run(capsys, "watch", job_id)
    assert code == 130 and f"`backdrop watch {job_id}` re-attaches" in err
    monkeypatch.undo()
    monkeypatch.setattr(cli, "_client", lambda args: BackdropClient(API, lambda: _token(), session=api))
    [image] = store.images(job_id)
    store.set_image_status(job_id, image["imageId"], ImageStatus.SUCCEEDED, outputs=[])
    from chalicelib.delivery.report import Reporter

    Reporter(boto3.client("s3"), store).write(job_id, "owner-1", BUCKET)
    code, view, _ = _run(capsys, "watch", job_id, "--json", "--poll", "0.01")
    assert code == 0 and view["status"] == "COMPLETED"


def _token() -> str:
    from builders import make_id_token

    return make_id_token("owner-1")


def test_the_webhook_secret_and_a_received_webhook_can_be_checked(api, capsys, tmp_path) -> None:
    code, secret, _ = _run(capsys, "webhook-secret", "--json")
    assert code == 0 and secret["secret"].startswith("whsec_")
    body = tmp_path / "body.json"
    body.write_bytes(b'{"event":"job.finished"}')
    header = webhooks.signature_header(secret["secret"], int(time.time()), body.read_bytes())
    code, answer, _ = _run(capsys, "verify-webhook", "--body-file", str(body), "--signature", header, "--json")
    assert code == 0 and answer["valid"] is True
    body.write_bytes(b'{"event":"job.finished","status":"forged"}')
    code, answer, _ = _run(capsys, "verify-webhook", "--body-file", str(body), "--signature", header, "--json")
    assert code == 1 and "does not match" in answer["reason"]


def test_review_decides_and_approves_through_the_api(api, capsys, store, monkeypatch) -> None:
    job_id = "20261124T120000Z-0123456789ab"
    ref = contracts.image_ref_of("a" * 32, "0" * 32, "png")
    image = store_image = {"id": "0" * 32}
    from chalicelib.store.jobs import NewImage

    store.put_job(
        job_id=job_id,
        owner="owner-1",
        model="stability-inpaint",
        settings={"prompt": "x", "reviewSeconds": 3600},
        images=[NewImage(store_image["id"], ref, contracts.upload_key("owner-1", ref), "a.png", (), ())],
    )
    code, out, _ = _run(capsys, "review", job_id, "--approve", "--json")
    assert code == 2 and "nothing to review now" in out["error"]["message"]  # not waiting yet
    store.set_image_status(job_id, image["id"], ImageStatus.SUCCEEDED, outputs=[])
    from datetime import UTC, datetime, timedelta

    from chalicelib.core import wording

    # the words say how long is left: read against a clock stopped when the deadline is set, not
    # the wall clock, they do not depend on how fast the machine gets there
    now = datetime.now(UTC).replace(microsecond=0)

    class Stopped(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Stopped:
            return cls.fromtimestamp(now.timestamp(), tz)

    monkeypatch.setattr(wording, "datetime", Stopped)
    deadline = now + timedelta(hours=23, minutes=30)
    store.open_review(job_id, "token-1", deadline.isoformat().replace("+00:00", "Z"))
    # the deadline in plain words, in the status and when review is asked to do nothing
    in_words = f"Review by {deadline:%a} {deadline.day} {deadline:%b}, {deadline:%H:%M} UTC (in 23 h)"
    _, out, _ = _run(capsys, "status", job_id)  # not finished: its exit code says so
    assert f"waiting for your review. {in_words}: backdrop review {job_id}" in out
    code, out, _ = _run(capsys, "review", job_id)
    assert code == 0 and out == f"nothing to do: give --reject, --keep or --approve; {in_words}\n"
    code, out, _ = _run(capsys, "review", job_id, "--reject", image["id"], "--json")
    assert code == 0 and out["decisions"] == {image["id"]: "REJECTED"}
    assert store.images(job_id)[0]["reviewDecision"] == "REJECTED"
    assert ("POST", f"/jobs/{job_id}/review") in api.calls


def test_pick_and_regenerate_a_variant_from_the_command_line(api, capsys, store, photo) -> None:
    job_id = "20261124T120000Z-0123456789ac"
    image_id = "1" * 32
    ref = contracts.image_ref_of("a" * 32, image_id, "png")
    boto3.client("s3").put_object(Bucket=BUCKET, Key=contracts.upload_key("owner-1", ref), Body=photo(96, 96))
    from chalicelib.store.jobs import NewImage

    store.put_job(
        job_id=job_id,
        owner="owner-1",
        model="stability-inpaint",
        settings={"model": "stability-inpaint", "prompt": "a beach", "seed": 3, "variants": 2},
        images=[NewImage(image_id, ref, contracts.upload_key("owner-1", ref), "a.png", (), ())],
    )
    code, out, _ = _run(capsys, "pick", job_id, image_id, "2", "--json")
    assert code == 2 and out["error"]["code"] == "CONFLICT"  # not finished: nothing to pick yet
    outputs = [
        {"key": f"results/a-{v}.png", "variant": v, "seed": v, "delivered": v == 1, "quality": {"outcome": o}}
        for v, o in ((1, "PASS"), (2, "WARN"))
    ]
    store.set_image_status(job_id, image_id, ImageStatus.SUCCEEDED, outputs=outputs, verdict="PASS")
    code, out, _ = _run(capsys, "status", job_id)
    assert "variant 1 (seed 1) PASS, delivered" in out and "variant 2 (seed 2) WARN" in out
    code, out, _ = _run(capsys, "pick", job_id, image_id, "3", "--json")
    assert code == 2 and out["error"]["details"][0]["field"] == "variant"
    code, out, _ = _run(capsys, "pick", job_id, image_id, "2")
    assert code == 0 and "variant 2 is delivered" in out
    code, out, _ = _run(capsys, "status", job_id)
    assert "variant 2 (seed 2) WARN, delivered (picked by you)" in out and store.images(job_id)[0]["verdict"] == "WARN"
    code, out, _ = _run(
        capsys, "regenerate", job_id, image_id, "--seed", "12", "--prompt", "a pale oak table", "--json"
    )
    assert code == 0 and out["seed"] == 12 and out["regenerateOf"] == {"jobId": job_id, "imageId": image_id}
    assert store.get_job(out["jobId"])["settings"]["regenerates"] == {"jobId": job_id, "imageId": image_id}
    assert ("POST", f"/jobs/{job_id}/images/{image_id}/regenerate") in api.calls


# ------------------------------------------------------------------------------ failures, one line each


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BACKDROP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("BACKDROP_PROFILE", raising=False)
    return tmp_path / "config"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _profile(api_url: str, expires_in: float = 3600, endpoint: str | None = None) -> dict[str, Any]:
    return {
        "api": api_url,
        "clientId": "client",
        "region": "us-east-1",
        "cognitoEndpoint": endpoint,
        "username": "someone@example.com",
        "tokens": {"idToken": "a.b.c", "refreshToken": "refresh", "expiresAt": time.time() + expires_in},
    }


def test_a_stopped_api_or_cognito_is_one_line_with_exit_2(config_dir, capsys) -> None:
    down = f"http://127.0.0.1:{_closed_port()}"
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text(
        json.dumps({"profiles": {"default": _profile(down), "stale": _profile(down, expires_in=-60, endpoint=down)}})
    )
    code, _, err = _run(capsys, "jobs")
    assert code == 2 and err.startswith("error: UNREACHABLE: cannot reach the Backdrop API") and err.count("\n") == 1
    assert "Traceback" not in err
    code, out, err = _run(capsys, "--profile", "stale", "status", "20260101T000000Z-0123456789ab", "--json")
    assert code == 2 and out["error"]["code"] == "UNREACHABLE" and "sign in again" in out["error"]["message"]
    assert err == ""


def test_an_unexpected_error_is_one_line_unless_debugging(api, capsys, monkeypatch) -> None:
    monkeypatch.setattr(BackdropClient, "jobs", lambda self, **kwargs: {}["jobs"])
    code, _, err = _run(capsys, "jobs")
    assert code == 2 and err.startswith("error: INTERNAL: KeyError") and "Traceback" not in err
    code, _, err = _run(capsys, "--debug", "jobs")
    assert code == 2 and "Traceback" in err


def test_profiles_keep_several_deployments_apart(config_dir, capsys, monkeypatch, aws_mock) -> None:
    cognito = boto3.client("cognito-idp")
    pool = cognito.create_user_pool(PoolName="p")["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="c", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    )["UserPoolClient"]["ClientId"]
    cognito.admin_create_user(UserPoolId=pool, Username="me@example.com", MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool, Username="me@example.com", Password="Passw0rd!x", Permanent=True)
    for profile, api_url in (("default", "https://dev.example.com/api"), ("prod", "https://prod.example.com/api")):
        monkeypatch.setattr("sys.stdin", io.StringIO("Passw0rd!x\n"))
        login = ["login", "--api", api_url, "--client-id", client_id, "--username", "me@example.com"]
        code, out, _ = _run(capsys, "--profile", profile, *login, "--password-stdin", "--json")
        assert code == 0 and out["profile"] == profile
    assert oct((config_dir / "config.json").stat().st_mode & 0o777) == "0o600"
    code, out, _ = _run(capsys, "profiles", "--json")
    assert [(p["profile"], p["api"], p["current"]) for p in out["profiles"]] == [
        ("default", "https://dev.example.com/api", True),
        ("prod", "https://prod.example.com/api", False),
    ]
    monkeypatch.setenv("BACKDROP_PROFILE", "prod")
    assert [p["profile"] for p in _run(capsys, "profiles", "--json")[1]["profiles"] if p["current"]] == ["prod"]
    code, out, _ = _run(capsys, "--profile", "staging", "jobs", "--json")
    assert code == 2 and "staging" in out["error"]["message"] and "default, prod" in out["error"]["message"]
    code, out, _ = _run(capsys, "--profile", "prod", "logout", "--json")
    assert out == {"profile": "prod", "removed": True}


def test_a_config_file_from_before_profiles_is_the_default_profile(config_dir, capsys) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text(json.dumps(_profile("https://old.example.com/api")))
    code, out, _ = _run(capsys, "profiles", "--json")
    assert code == 0 and out["profiles"][0]["profile"] == "default"
    assert out["profiles"][0]["api"] == "https://old.example.com/api"


def test_the_installed_command_is_the_entry_point(config_dir) -> None:
    """`backdrop` sits next to the interpreter of the virtualenv `make install` creates."""
    command = shutil.which("backdrop", path=str(Path(sys.executable).parent))
    assert command, f"no backdrop command in {Path(sys.executable).parent}"
    done = subprocess.run(
        [command, "--json", "jobs"], capture_output=True, text=True, env={**os.environ}, timeout=60, check=False
    )
    assert done.returncode == 2 and json.loads(done.stdout)["error"]["code"] == "NOT_SIGNED_IN"
    assert done.stderr == ""
