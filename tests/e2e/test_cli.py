"""The `backdrop` command line against the local stack, as a script would use it."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import make_photo
from e2e_support import Gate, on_shared_stack, shared_local_stack, wait_until

from backend.local.stack import LocalStack
from frontend import cli

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


_USERS = itertools.count(1)
PASSWORD = "Cli-local-2026!"


@pytest.fixture(scope="module")
def cli_stack() -> Iterator[LocalStack]:
    """One stack for the module; each test signs in as a user of its own (`user`), so no test sees
    another's jobs, and leaves the stack as it found it."""
    with shared_local_stack("cli") as stack:
        yield stack


@pytest.fixture
def user(cli_stack: LocalStack) -> str:
    name = f"cli-{next(_USERS)}@example.com"
    cli_stack.create_user(name, PASSWORD)
    return name


@pytest.fixture
def signed_in(
    cli_stack: LocalStack, user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalStack]:
    monkeypatch.setenv("BACKDROP_CONFIG_DIR", str(tmp_path / "config"))
    with on_shared_stack(cli_stack, monkeypatch) as stack:
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        code = cli.main(
            [
                "login",
                "--api",
                stack.api_url,
                "--client-id",
                stack.outputs["client_id"],
                "--cognito-endpoint",
                stack.endpoint,
                "--username",
                user,
                "--password-stdin",
            ]
        )
        assert code == 0
        try:
            yield stack
        finally:  # the model as the next test expects it, and no call left waiting in a gate
            if isinstance(stack.bedrock.sleep, Gate):
                stack.bedrock.sleep.open()
            stack.bedrock.latency_s, stack.bedrock.sleep = 0.0, time.sleep


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_submit_wait_download_status_and_jobs(signed_in, user, tmp_path, capsys) -> None:
    capsys.readouterr()
    out = tmp_path / "results"
    photos = [str(SAMPLES / "coffee.jpg"), str(SAMPLES / "rocket.jpg")]
    code = cli.main(
        [
            "submit",
            *photos,
            "--prompt",
            "a pastel studio",
            "--seed",
            "11",
            "--wait",
            "--poll",
            "0.2",
            "--out",
            str(out),
            "--json",
        ]
    )
    view = _json(capsys)
    assert code == 0, view
    assert view["status"] == "COMPLETED" and view["counts"]["SUCCEEDED"] == 2
    # JPEG photos, no --format: the results are JPEGs too
    assert sorted(p.suffix for p in out.iterdir()) == [".csv", ".jpg", ".jpg", ".json"]
    config = json.loads((tmp_path / "config" / "config.json").read_text())["profiles"]["default"]
    assert config["username"] == user
    assert oct((tmp_path / "config" / "config.json").stat().st_mode & 0o777) == "0o600", config["api"]
    assert cli.main(["status", view["jobId"], "--json"]) == 0
    assert _json(capsys)["settings"]["seed"] == 11
    assert cli.main(["jobs", "--json"]) == 0
    assert [j["jobId"] for j in _json(capsys)["jobs"]] == [view["jobId"]]
    # nothing failed: retry says so, with the server's code, and exits 2
    assert cli.main(["retry", view["jobId"], "--json"]) == 2
    assert _json(capsys)["error"]["code"] == "BAD_REQUEST"


def test_a_failed_image_makes_the_exit_code_non_zero(signed_in, capsys) -> None:
    capsys.readouterr()
    code = cli.main(
        [
            "submit",
            str(SAMPLES / "chelsea.jpg"),
            "--prompt",
            "a meadow [filter:prompt]",
            "--wait",
            "--poll",
            "0.2",
            "--json",
        ]
    )
    view = _json(capsys)
    assert code == 1
    assert view["status"] == "FAILED" and view["images"][0]["errorCode"] == "CONTENT_FILTERED"
    assert cli.main(["retry", view["jobId"], "--json"]) == 0
    assert _json(capsys)["retryOf"] == view["jobId"]


def test_every_bad_file_is_listed_at_once_and_the_rest_go_on(signed_in, tmp_path, capsys) -> None:
    capsys.readouterr()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(make_photo(70, 70))  # processable, but too small for label detection
    photos = [str(SAMPLES / "coffee.jpg"), str(notes), str(tmp_path / "missing.png"), str(empty), str(tiny)]
    code = cli.main(["submit", *photos, "--prompt", "a pastel studio", "--wait", "--poll", "0.2"])
    captured = capsys.readouterr()
    assert code == 1  # the job ran, but not every file made it: a script must notice
    assert "3 of 5 file(s) were not uploaded:" in captured.err  # all problems in one go
    assert "notes.txt: content type 'text/plain' is not accepted" in captured.err
    assert "missing.png: cannot be read" in captured.err
    assert "empty.png: size is 0 bytes" in captured.err
    assert "no labels for tiny.png" in captured.err and "at least 80 px" in captured.err
    assert "2 succeeded, 0 failed" in captured.out and "3 of 5 file(s) were not uploaded" in captured.out
    assert cli.main(["submit", str(notes), str(empty), "--prompt", "x", "--json"]) == 2
    error = _json(capsys)["error"]
    assert error["code"] == "NOTHING_UPLOADED" and [r["name"] for r in error["details"]] == ["notes.txt", "empty.png"]


def test_errors_are_clear_and_exit_2(signed_in, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert cli.main(["submit", str(tmp_path / "nope.png"), "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "NOTHING_UPLOADED" in err and "nope.png: cannot be read" in err
    assert cli.main(["status", "20260101T000000Z-0123456789ab"]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
    assert cli.main(["submit", str(SAMPLES / "coffee.jpg"), "--prompt", "x", "--model", "nova-canvas"]) == 2
    assert "MODEL_UNAVAILABLE" in capsys.readouterr().err  # before any upload


def test_cancel_a_running_job_then_watch_and_delete_it(signed_in, capsys) -> None:
    # model calls wait in a gate until the cancel: the job is still running when cancelled
    gate = Gate()
    signed_in.bedrock.latency_s, signed_in.bedrock.sleep = 1.0, gate
    capsys.readouterr()
    photos = [str(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    assert cli.main(["submit", *photos, "--prompt", "a pastel studio", "--json"]) == 0
    job_id = _json(capsys)["jobId"]
    _wait_until_running(job_id, capsys)  # its images written, its workflow started
    assert cli.main(["cancel", job_id, "--json"]) == 0
    gate.open()
    cancelled = _json(capsys)
    assert cancelled["status"] == "CANCELLED" and cancelled["counts"]["CANCELLED"] >= 1
    # re-attach: it has finished (cancelled), so watch returns at once, exit 1 as nothing was made of some images
    assert cli.main(["watch", job_id, "--json", "--poll", "0.2"]) == 1
    assert _json(capsys)["status"] == "CANCELLED"
    assert cli.main(["delete", job_id, "--yes", "--json"]) == 0
    assert _json(capsys)["deleted"] is True
    assert cli.main(["status", job_id]) == 2
    assert capsys.readouterr().err.startswith("error: NOT_FOUND:")


def _wait_until_running(job_id: str, capsys: pytest.CaptureFixture[str], timeout_s: float = 60.0) -> None:
    def running() -> bool:
        cli.main(["status", job_id, "--json"])
        return bool(_json(capsys)["status"] == "RUNNING")

    wait_until(running, f"job {job_id} to be RUNNING", timeout_s, every_s=0.1)


def test_a_cancel_right_after_submit_ends_every_image_cancelled_with_its_report(signed_in, capsys) -> None:
    """Accept first: the cancel may come before the starter has written the images; then they are
    written CANCELLED and the report follows (chalicelib/workflow/starter.py)."""
    capsys.readouterr()
    photos = [str(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    assert cli.main(["submit", *photos, "--prompt", "a pastel studio", "--json"]) == 0
    job_id = _json(capsys)["jobId"]
    assert cli.main(["cancel", job_id, "--json"]) == 0
    assert _json(capsys)["status"] == "CANCELLED"

    def closed() -> dict | None:
        cli.main(["status", job_id, "--json"])
        view = _json(capsys)
        return view if view.get("reports") else None

    view = wait_until(closed, f"the cancelled job {job_id} to be closed (its reports written)", 60, every_s=0.1)
    assert view["counts"]["CANCELLED"] + view["counts"]["SUCCEEDED"] == len(photos)
    assert view["counts"]["PENDING"] == view["counts"]["RUNNING"] == 0


def test_a_stopped_local_stack_is_one_line_and_exit_2(signed_in, capsys) -> None:
    capsys.readouterr()
    signed_in.stop_app()  # the API is gone (as after Ctrl-C on `make run`)
    try:
        assert cli.main(["jobs"]) == 2
        err = capsys.readouterr().err
    finally:
        signed_in.start_app()  # the module's stack, for the tests that follow
    assert err.startswith("error: UNREACHABLE: cannot reach the Backdrop API") and err.count("\n") == 1
    assert "Traceback" not in err
    assert cli.main(["jobs", "--json"]) == 0


def test_backgrounds_and_presets_from_the_command_line(signed_in, tmp_path, capsys) -> None:
    from PIL import Image

    capsys.readouterr()
    studio = tmp_path / "studio.png"
    Image.new("RGB", (900, 900), (30, 60, 120)).save(studio)
    photo_job = [str(SAMPLES / "coffee.jpg"), "--background-photo", str(studio), "--size", "800x800", "--fill", "70"]
    code = cli.main(["submit", *photo_job, "--anchor", "bottom", "--wait", "--poll", "0.2", "--json"])
    view = _json(capsys)
    assert code == 0, view
    assert view["settings"]["background"]["source"] == "image"
    assert view["settings"]["placement"]["fill"] == 70 and view["settings"]["placement"]["anchor"] == "bottom"
    assert view["images"][0]["outputs"][0]["background"] == "image"
    # a sample photo is too small for Amazon's 85% of 2,000 px: the image fails, and says why
    code = cli.main(["submit", str(SAMPLES / "coffee.jpg"), "--preset", "amazon-main", "--wait", "--poll", "0.2"])
    captured = capsys.readouterr()
    assert code == 1
    assert "PRESET_UNMET" in captured.out and "allowUpscale" in captured.out
    # ... unless the user accepts an enlarged subject: then every rule is checked and shown
    code = cli.main(
        ["submit", str(SAMPLES / "coffee.jpg"), "--preset", "amazon-main", "--allow-upscale", "--wait", "--poll", "0.2"]
    )
    captured = capsys.readouterr()
    assert "amazon-main: " in captured.out and "note: re-framed for preset amazon-main" in captured.out
    assert "enlarged" in captured.out
    assert cli.main(["submit", str(SAMPLES / "coffee.jpg"), "--color", "white"]) == 2
    assert "'white' is not a hex colour like #FFFFFF" in capsys.readouterr().err


def test_download_gives_each_images_delivered_variant_or_with_all_variants_every_one(
    signed_in, tmp_path, capsys
) -> None:
    capsys.readouterr()
    photos = [str(SAMPLES / "coffee.jpg"), str(SAMPLES / "rocket.jpg")]
    args = ["submit", *photos, "--prompt", "a pastel studio", "--variants", "2", "--re-rolls", "0"]
    assert cli.main([*args, "--wait", "--poll", "0.2", "--json"]) == 0
    view = _json(capsys)
    job_id = view["jobId"]
    delivered = {i["imageId"][:8]: next(o["variant"] for o in i["outputs"] if o["delivered"]) for i in view["images"]}
    assert all(len(i["outputs"]) == 2 for i in view["images"])

    def results(out: Path) -> dict[str, list[int]]:
        """The downloaded results by image, each file's variant from its name."""
        found: dict[str, list[int]] = {}
        for path in sorted(out.glob("*.jpg")):
            *_, image, variant = path.stem.split("-")
            found.setdefault(image, []).append(int(variant))
        return found

    assert cli.main(["download", job_id, "--out", str(tmp_path / "delivered"), "--json"]) == 0
    assert len(_json(capsys)["files"]) == 2 + 2  # one result per photo, and the two reports
    assert results(tmp_path / "delivered") == {image: [variant] for image, variant in delivered.items()}

    assert cli.main(["download", job_id, "--out", str(tmp_path / "all"), "--all-variants", "--json"]) == 0
    assert len(_json(capsys)["files"]) == 4 + 2
    assert results(tmp_path / "all") == {image: [1, 2] for image in delivered}

    # the owner picks the other variant of one photo: the next download delivers that one
    image = view["images"][0]
    other = 3 - delivered[image["imageId"][:8]]
    assert cli.main(["pick", job_id, image["imageId"], str(other), "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["download", job_id, "--out", str(tmp_path / "picked"), "--json"]) == 0
    assert results(tmp_path / "picked") == {**{i: [v] for i, v in delivered.items()}, image["imageId"][:8]: [other]}
