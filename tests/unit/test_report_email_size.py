"""The job email's text within its cap as it travels: SNS counts its UTF-8 bytes, and the
workflow's state (where "Email the summary" reads it) counts its JSON string, escapes included."""

from __future__ import annotations

import json

from chalicelib.core import contracts
from chalicelib.delivery.report import TRUNCATED, fit_message


def _state_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def test_a_short_message_is_unchanged() -> None:
    assert fit_message("done\nall 3 images") == "done\nall 3 images"


def test_a_message_of_quotes_and_backslashes_fits_as_a_json_string() -> None:
    """Under the raw-byte cap (190,000 bytes) but 380,000 as JSON: cut until the state can carry it."""
    message = '"\\' * 95_000
    assert len(message.encode()) < contracts.SNS_MESSAGE_MAX_BYTES < _state_bytes(message)
    fitted = fit_message(message)
    assert fitted.endswith(TRUNCATED) and _state_bytes(fitted) <= contracts.SNS_MESSAGE_MAX_BYTES
    assert _state_bytes(fitted) > contracts.SNS_MESSAGE_MAX_BYTES - 1_000  # cut no more than needed


def test_multibyte_text_is_cut_on_a_character() -> None:
    fitted = fit_message("é" * 150_000)
    assert fitted.endswith(TRUNCATED) and len(fitted.encode()) <= contracts.SNS_MESSAGE_MAX_BYTES
    assert "\ufffd" not in fitted
