"""The CLI prints users' text as text: an ANSI escape, a carriage return or a line break in a file
name, prompt or server message is shown as an escape, never acted on by the terminal (issue #26)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from frontend import cli
from frontend.safe_text import terminal

# clears the screen, moves to the top and writes "OK" in green; a CR rewrites the line;
# a line break forges a line; a bidi override reverses what follows; a bell and a backspace
HOSTILE = "\x1b[2J\x1b[H\x1b[32mall 3 SUCCEEDED\x1b[0m\rok\nforged line\u202egnp.exe\x07\x08"
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _view() -> dict[str, Any]:
    return {
        "jobId": "20261125T050000Z-0123456789ab",
        "status": "PARTIAL",
        "model": "stability-inpaint",
        "cause": f"could not read {HOSTILE}",
        "counts": {"SUCCEEDED": 1, "FAILED": 1},
        "images": [
            {"name": HOSTILE, "status": "SUCCEEDED", "outputs": [{"key": "k", "variant": 1}]},
            {"name": "b.png", "status": "FAILED", "errorCode": "INVALID_IMAGE", "cause": f"bad {HOSTILE}"},
        ],
    }


def test_terminal_shows_every_control_character_as_an_escape() -> None:
    shown = terminal(HOSTILE)
    assert not CONTROL.search(shown) and "\n" not in shown
    assert shown.startswith(r"\x1b[2J\x1b[H\x1b[32mall 3 SUCCEEDED\x1b[0m\x0dok\x0aforged line\u202egnp.exe")
    assert terminal("Ünïcödé 写真.png") == "Ünïcödé 写真.png"  # printable text is untouched


def test_status_prints_a_hostile_name_and_causes_on_their_own_lines(capsys: pytest.CaptureFixture[str]) -> None:
    cli._print(SimpleNamespace(json=False), _view(), cli._status_text(_view()))
    out = capsys.readouterr().out
    assert not CONTROL.search(out)
    lines = out.splitlines()
    # the program's lines only: the header, the cause, one line per image, the summary
    assert not any(line.startswith("forged line") for line in lines)
    assert sum("forged line" in line for line in lines) == 3  # the cause, the name, the image's cause
    assert any(line.startswith(r"  \x1b[2J") for line in lines)


def test_jobs_notes_and_errors_escape_control_characters(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Client:
        def jobs(self, limit: int, cursor: str | None) -> dict[str, Any]:
            job = {"jobId": "20261125T050000Z-0123456789ab", "status": "RUNNING", "imageCount": 1}
            return {"jobs": [{**job, "prompt": HOSTILE}], "nextCursor": None}

    monkeypatch.setattr(cli, "_client", lambda args: Client())
    assert cli.main(["jobs"]) == cli.EXIT_OK
    # _say keeps the line breaks its caller wrote (callers escape the names they quote)
    cli._say(SimpleNamespace(json=False), f"note: {HOSTILE.split(chr(10))[0]}\n")
    cli._error(False, "VALIDATION_FAILED", f"unknown field {HOSTILE!r}")
    captured = capsys.readouterr()
    assert not CONTROL.search(captured.out) and not CONTROL.search(captured.err)
    assert len(captured.out.splitlines()) == 1 and len(captured.err.splitlines()) == 2
    assert "\\x1b[2J" in captured.out and "\\x1b[2J" in captured.err
