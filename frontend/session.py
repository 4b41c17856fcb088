"""Streamlit session plumbing: one API client per browser session, configured from env.

No AWS credentials on the Streamlit host: everything goes through the API with the user's token.
Tests put a fake client in st.session_state["api"] before the first run.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from frontend.api_client import ApiError, BackdropClient, CognitoLogin


def settings() -> dict[str, str | None]:
    return {
        "api": os.environ.get("BACKDROP_API_URL", "http://127.0.0.1:8000"),
        "client_id": os.environ.get("BACKDROP_COGNITO_CLIENT_ID"),
        "region": os.environ.get("BACKDROP_REGION", "us-east-1"),
        "client_secret": os.environ.get("BACKDROP_COGNITO_CLIENT_SECRET"),
        "cognito_endpoint": os.environ.get("BACKDROP_COGNITO_ENDPOINT"),  # the local stack only
    }


def client() -> Any:
    return st.session_state.get("api")


def signed_in() -> bool:
    return client() is not None


def sign_in(username: str, password: str) -> None:
    config = settings()
    if not config["client_id"]:
        raise ApiError(0, "MISCONFIGURED", "BACKDROP_COGNITO_CLIENT_ID is not set for this front end")
    login = CognitoLogin(
        client_id=config["client_id"],
        region=config["region"] or "us-east-1",
        client_secret=config["client_secret"],
        endpoint_url=config["cognito_endpoint"],
    )
    login.sign_in(username, password)
    st.session_state["api"] = BackdropClient(config["api"] or "", login.id_token)
    st.session_state["user"] = username


def sign_out() -> None:
    for key in ("api", "user", "batch", "job_id"):
        st.session_state.pop(key, None)


def show_error(exc: ApiError) -> None:
    st.error(f"{exc.message} ({exc.code})")
    details = exc.details if isinstance(exc.details, list) else []
    for detail in details[:20]:
        where = detail.get("field") or detail.get("name") or detail.get("imageRef") or ""
        st.caption(f"• {where}: {detail.get('message', '')}")


def stand_in_banner() -> None:
    """A visible warning when the backend answers with the local stand-ins."""
    api = client()
    if api is None:
        return
    if "stand_in" not in st.session_state:
        try:
            st.session_state["stand_in"] = bool(api.health().get("standIn"))
        except ApiError:
            st.session_state["stand_in"] = False
    if st.session_state["stand_in"]:
        st.warning("Local stand-in backend: images are made by a deterministic stand-in, not by a Bedrock model.")
