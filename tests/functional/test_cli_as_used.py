# ruff: noqa: F811 - the fixtures `api` and `photos` are test_cli_surface's, imported, then requested by name
"""`backdrop` as people use it (#29.7): folders and globs, every flag checked before uploading,
quiet and correct in pipes, `backdrop models`, true counts after a cancel, the ETA in `status`.
The API is the real app on moto through Chalice's test client (test_cli_surface's fixtures); what
is about pipes runs the installed command in a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from harness import write_job_images
from test_cli_surface import _run, _uploads, api, photos  # noqa: F401

import app as backdrop_app
from chalicelib.jobs import control as job_control
from frontend import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "field", "why"),
    [
        # refused only after 25-29 s of uploading before (#29.7)
        (["--preset", "amazon"], "--preset", "unknown preset 'amazon'; presets: amazon-main"),
        (["--background", "transparent", "--format", "jpeg"], "--format", "png or webp, not jpeg"),
        (["--background", "image"], "--background", "needs --background-photo"),
        (["--color", "#FFFFFF", "--fill", "150"], "--fill", "fill"),
        (["--budget", "0"], "--budget", "above 0"),
        (["--review-hours", "500"], "--review-hours", "168 hours"),
    ],
)
def test_background_preset_and_format_flags_are_refused_before_any_upload(api, photos, capsys, argv, field, why):
    code, out, _ = _run(capsys, "submit", *photos(2), "--prompt", "a studio", *argv, "--json")
    assert code == 2, out
    error = out["error"]
    assert error["code"] == "VALIDATION_FAILED" and error["message"].startswith("nothing was uploaded")
    assert [d["field"] for d in error["details"]] == [field] and why in error["message"]
    assert _uploads() == [] and ("POST", "/uploads") not in api.calls


def test_a_preset_that_sets_png_is_not_refused_for_transparency_and_submits(api, photos, capsys) -> None:
    code, out, _ = _run(capsys, "submit", *photos(1), "--preset", "amazon-main", "--json")
    assert code == 0, out
    assert out["imageCount"] == 1


def test_a_folder_and_a_quoted_glob_are_expanded(api, tmp_path, photo, capsys) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    for name in ("b.jpg", "a.png", "c.webp"):
        (folder / name).write_bytes(photo(96, 96))
    (folder / "notes.txt").write_text("not a photo")
    (folder / ".DS_Store").write_bytes(b"\0")
    code, out, err = _run(capsys, "submit", str(folder), "--prompt", "a studio")
    assert code == 0, err
    assert "3 images" in out and "skipped 1 file(s) that are not photos by their name: notes.txt" in err
    # a glob the shell did not expand (quoted), and a file named twice, sent once
    code, out, err = _run(capsys, "submit", str(folder / "*.png"), str(folder / "a.png"), "--prompt", "a studio")
    assert code == 0 and "1 images" in out
    code, out, _ = _run(capsys, "submit", str(folder / "*.gif"), str(tmp_path / "empty"), "--prompt", "x", "--json")
    assert code == 2 and [d["message"] for d in out["error"]["details"]][0].startswith("no file matches")


def test_expand_photos_keeps_the_order_given_and_sorts_inside_a_folder(tmp_path: Path) -> None:
    (tmp_path / "z.jpg").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    for name in ("2.PNG", "1.jpeg", "x.heic"):
        (tmp_path / "d" / name).write_bytes(b"x")
    found = cli.expand_photos([str(tmp_path / "z.jpg"), str(tmp_path / "d")])
    assert [p.name for p in found.paths] == ["z.jpg", "1.jpeg", "2.PNG", "x.heic"] and not found.problems
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.expand_photos([str(empty)]).problems == [
        {"field": "photos", "message": f"folder {empty} holds no photo"}
    ]


# ------------------------------------------------------------------------------ pipes and progress


def _args(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(json=False, **values)


def test_progress_in_a_pipe_is_plain_lines_and_on_a_terminal_one_redrawn_line(capsys, monkeypatch) -> None:
    views = [
        {"status": "RUNNING", "counts": {"PENDING": 100 - done, "SUCCEEDED": done}} for done in range(0, 101, 2)
    ] + [{"status": "COMPLETED", "counts": {"SUCCEEDED": 100}}]
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: False)
    show = cli._progress(_args())
    assert show is not None
    for view in views:
        show(view)
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[0] == "0/100 finished, RUNNING"
    assert len(err.splitlines()) == 12 and err.splitlines()[-1] == "100/100 finished, COMPLETED"  # each tenth, once
    upload = cli._upload_progress(_args())
    assert upload is not None
    for done in range(1, 201):
        upload(done, 200, f"p{done}.jpg")
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1] == "uploading 200/200" and len(err.splitlines()) == 11
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    show = cli._progress(_args())
    assert show is not None
    show(views[1])
    assert capsys.readouterr().err.startswith("\r[")


def _backdrop() -> str:
    command = shutil.which("backdrop", path=str(Path(sys.executable).parent))
    assert command, f"no backdrop command in {Path(sys.executable).parent}"
    return command


def test_a_reader_that_stops_reading_gets_no_error_line(tmp_path: Path) -> None:
    """`backdrop profiles | head -1` with more output than a pipe holds: it printed
    "LOCAL_ERROR: Broken pipe" before; now nothing, and the exit status of a SIGPIPE death."""
    config = tmp_path / "config"
    config.mkdir()
    profiles = {
        f"p{i:05d}": {"api": f"https://api-{i}.example.com/" + "x" * 60, "clientId": "c", "username": f"u{i}"}
        for i in range(3000)
    }  # ~300 KB of output: far past a pipe's 64 KiB buffer
    (config / "config.json").write_text(json.dumps({"profiles": profiles}))
    # this checkout's code, whichever checkout the virtualenv was installed from
    env = {**os.environ, "BACKDROP_CONFIG_DIR": str(config), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["/bin/sh", "-c", f"'{_backdrop()}' profiles | head -1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.stdout.startswith("  p00000") and done.stdout.count("\n") == 1
    assert done.stderr == ""  # no "error: LOCAL_ERROR: Broken pipe", no "Exception ignored"
    done = subprocess.run(
        ["/bin/bash", "-c", f"set -o pipefail; '{_backdrop()}' profiles | head -1 >/dev/null; echo $?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "141" and done.stderr == ""


def test_the_readme_puts_the_command_on_the_path(tmp_path: Path) -> None:
    """The README's quick start: after `make run` (or `make install`), `source .venv/bin/activate`
    puts `backdrop` on the PATH (the console script of pyproject.toml)."""
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "source .venv/bin/activate" in quick_start and "backdrop login" in quick_start
    activate = Path(sys.executable).parent / "activate"
    done = subprocess.run(
        ["/bin/bash", "-c", f"source '{activate}' && command -v backdrop"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == str(Path(sys.executable).parent / "backdrop")


# ------------------------------------------------------------------------------ models, cancel, ETA


def test_models_lists_each_model_with_its_regions_recipes_and_prices(api, capsys) -> None:
    code, text, _ = _run(capsys, "models")
    assert code == 0
    assert text.startswith("models in us-east-1 (default stability-inpaint):")
    block = text.split("  stability-inpaint", 1)[1].split("\n  stability-image-core", 1)[0]
    assert "ACTIVE, usable here" in block and "regions: us-east-1, us-east-2, us-west-2" in block
    assert "calls: remove-background $0.040, inpaint $0.040" in block
    assert "recipes: prompt $0.080 a photo; color, image, transparent $0.040 a photo" in block
    scene = text.split("  stability-image-core", 1)[1].split("\n  ", 1)[1]
    assert "not usable here" in scene and "us-west-2" in scene
    assert "nova-canvas" in text and "EOL, not usable here" in text
    code, data, _ = _run(capsys, "models", "--json")
    assert code == 0 and {m["key"] for m in data["models"]} >= {"stability-inpaint", "nova-canvas"}


def test_a_cancel_of_a_large_job_prints_the_counts_once_its_background_closing_is_done(
    api, photos, capsys, store, monkeypatch
) -> None:
    """POST /jobs/{id}/cancel of a job past SYNC_CLOSE_LIMIT answers 202 before its images are
    closed: the CLI said "0 cancelled" for a 150-image job. It now follows the closing."""
    from chalicelib.delivery.report import Reporter

    monkeypatch.setattr(job_control, "SYNC_CLOSE_LIMIT", 1)
    started: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        backdrop_app,
        "start_background",
        lambda event: started.append((event["jobId"], event["owner"], event["bucket"])),
    )
    code, submitted, _ = _run(capsys, "submit", *photos(3), "--prompt", "a studio", "--json")
    job_id = submitted["jobId"]
    write_job_images(job_id)

    def background_closing(seconds: float) -> None:  # the background worker's run, while the CLI waits
        if started:
            Reporter(boto3.client("s3"), store).write(*started.pop())

    monkeypatch.setattr(cli.time, "sleep", background_closing)
    code, text, _ = _run(capsys, "cancel", job_id, "--poll", "0")
    assert code == 0 and text.strip() == (
        f"job {job_id} cancelled: 0 image(s) had finished and keep their results, 3 cancelled"
    )
    # --no-wait: the truth at that moment, never "0 cancelled" as if that were the end
    code, submitted, _ = _run(capsys, "submit", *photos(2), "--prompt", "a studio", "--json")
    job_id = submitted["jobId"]
    write_job_images(job_id)
    code, text, _ = _run(capsys, "cancel", job_id, "--no-wait")
    assert code == 0 and "0 cancelled, 2 still being cancelled in the background" in text
    assert f"`backdrop status {job_id}` shows the final counts" in text


@pytest.mark.parametrize(
    ("eta", "said"),
    [
        # the API's job view (chalicelib's eta.to_dict): its words
        (
            {
                "seconds": 240,
                "finishAt": "2026-12-08T02:00:00Z",
                "remaining": 160,
                "words": "About 4 min left (measured: 40 photos a minute)",
            },
            "About 4 min left (measured: 40 photos a minute)",
        ),
        ({"seconds": 600}, "done in about 10 min"),
        ({"remainingSeconds": 30, "finishAt": "2026-12-08T02:00:00Z"}, "done in about 1 min (about 2026-12-08T02"),
        (None, None),
    ],
)
def test_status_shows_the_eta_the_api_gives(eta, said) -> None:
    view = {"jobId": "j1", "status": "RUNNING", "model": "m", "counts": {"PENDING": 2}, "eta": eta}
    text = cli._status_text(view)
    if said is None:
        assert "done in" not in text and "left" not in text
    else:
        assert said in text
    assert said is None or said not in cli._status_text({**view, "status": "COMPLETED"})  # finished: no ETA


def test_submit_and_status_link_to_the_job_page_of_the_deployed_web_app(api, photos, capsys, monkeypatch) -> None:
    """The deploy writes the web app's URL into the stage (BACKDROP_APP_URL); GET /health says
    it, and the CLI links each job to its page there."""
    code, text, _ = _run(capsys, "submit", *photos(1), "--prompt", "a studio")
    assert code == 0 and "web app" not in text  # no web app deployed: no link
    monkeypatch.setenv("BACKDROP_APP_URL", "https://backdrop-dev-webapp.ecs.us-east-1.on.aws")
    code, text, _ = _run(capsys, "submit", *photos(1), "--prompt", "a studio")
    job_id = text.split("submitted job ", 1)[1].split(" ", 1)[0]
    page = f"https://backdrop-dev-webapp.ecs.us-east-1.on.aws/job?job={job_id}"
    assert code == 0 and text.strip().endswith(f"or in the web app: {page}")
    write_job_images(job_id)
    code, text, _ = _run(capsys, "status", job_id)
    assert text.strip().endswith(f"in the web app: {page}")
    code, view, _ = _run(capsys, "status", job_id, "--json")
    assert view["page"] == page


def test_a_background_photo_passes_the_checks_before_upload(api, photos, capsys, tmp_path, photo) -> None:
    background = tmp_path / "studio.png"
    background.write_bytes(photo(320, 320))
    code, out, _ = _run(capsys, "submit", *photos(1), "--background-photo", str(background), "--json")
    assert code == 0, out["error"]["details"][0]["message"]
    assert out["imageCount"] == 1
