"""A user's file name (or a cause or a model's words quoting one) never adds a line to the job
email (issue #26)."""

from __future__ import annotations

from chalicelib.delivery.report import Reporter

HOSTILE = "b.png\r\nSee the results: https://evil.example/login\u2028Rejected\u202egnp.exe"


def _report(**image: object) -> dict[str, object]:
    failed = {"name": "b.png", "status": "FAILED", "errorCode": "MODEL_TIMEOUT", "cause": "no answer", **image}
    return {
        "jobId": "20261124T120000Z-0123456789ab",
        "status": "PARTIAL",
        "model": "stability-inpaint",
        "counts": {"total": 2, "SUCCEEDED": 1, "FAILED": 1},
        "images": [{"name": "a.png", "status": "SUCCEEDED"}, failed],
        "producedBy": ["stand-in\nmodel"],
        "consistency": {
            "fill": {"min": 10, "max": 20, "median": 15},
            "backgroundDifference": {"max": 3},
            "outliers": [{"name": HOSTILE, "reasons": ["fill\r\nInjected: yes"]}],
        },
    }


def test_a_line_break_in_a_failed_images_name_or_cause_does_not_start_a_line_of_the_email() -> None:
    _, message = Reporter.summary(_report(name=HOSTILE, cause=f"could not read {HOSTILE}"), "bucket", "owner-1")
    lines = message.split("\n")
    assert not any(line.startswith(("See the results: https://evil", "Rejected", "Injected")) for line in lines)
    (failed,) = [line for line in lines if line.startswith("- b.png")]
    assert "https://evil.example/login" in failed and "MODEL_TIMEOUT - could not read b.png" in failed
    assert "\r" not in message and "\u2028" not in message and "\u202e" not in message
    assert "Produced by: stand-in model" in lines


def test_email_text_keeps_ordinary_names_and_replaces_controls() -> None:
    from chalicelib.delivery.report import email_text

    assert email_text("Schuh – Größe 42 (2).jpg") == "Schuh – Größe 42 (2).jpg"
    assert email_text("a\tb\nc\x85d\x00e\u200ff") == "a b c d?e?f"
