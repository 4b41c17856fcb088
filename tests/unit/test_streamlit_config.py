"""The Streamlit settings users meet: the real upload limit, and no "Deploy" button."""

from __future__ import annotations

import tomllib
from pathlib import Path

from chalicelib.core import contracts

ROOT = Path(__file__).resolve().parents[2]


def test_the_uploader_limit_is_the_api_limit_and_the_toolbar_is_minimal() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == contracts.MAX_UPLOAD_BYTES
    assert config["client"]["toolbarMode"] == "minimal"


def test_the_local_stack_starts_streamlit_with_the_same_options() -> None:
    source = (ROOT / "backend" / "local" / "stack.py").read_text()
    assert '"--server.maxUploadSize",\n                str(contracts.MAX_UPLOAD_BYTES // 2**20)' in source
    assert '"--client.toolbarMode",\n                "minimal"' in source
