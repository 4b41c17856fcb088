"""docs/api.md stays true to the code: every error code, every style preset, the webhook contract."""

from __future__ import annotations

from pathlib import Path

from chalicelib.core import contracts
from chalicelib.core.contracts import ErrorCode
from chalicelib.models import registry

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_error_code_is_documented() -> None:
    text = API_DOC.read_text()
    assert [c.value for c in ErrorCode if f"`{c.value}`" not in text] == []


def test_every_style_preset_a_model_offers_is_documented() -> None:
    text = API_DOC.read_text()
    presets = {p for spec in registry.all_models() for p in spec.style_presets}
    assert presets and [p for p in sorted(presets) if f"`{p}`" not in text] == []


def test_the_webhook_numbers_in_the_doc_are_the_contracts() -> None:
    text = " ".join(API_DOC.read_text().split())
    assert f"more than {contracts.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS} s" in text
    assert f"Answer `2xx` within {contracts.WEBHOOK_TIMEOUT_SECONDS} s" in text
    waits = ", ".join(
        str(int(contracts.WEBHOOK_BACKOFF_BASE_SECONDS * 4**n)) for n in range(contracts.WEBHOOK_ATTEMPTS - 1)
    )
    assert f"up to {waits.rsplit(', ', 1)[0]} and {waits.rsplit(', ', 1)[1]} s" in text
