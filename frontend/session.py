"""Streamlit session plumbing: one API client per browser session, configured from env.

No AWS credentials on the Streamlit host: everything goes through the API with the user's token.
Tests put a fake client in st.session_state["api"] before the first run.

Staying signed in across a reload: Streamlit's session state is lost when the page reloads, so
the signed-in client (its Cognito tokens) is kept in this process's memory, under a random
256-bit id that the page carries in its address (`?session=`). The tokens never reach the
browser (a cookie written from Streamlit would need JavaScript that can read it, and so could
any script on the page); the id alone is worth nothing after sign-out, after SESSION_IDLE_SECONDS
without use, or once the Streamlit process restarts. The entry is also tied to the browser's
`_streamlit_xsrf` cookie when there is one, so an address copied with its id into another
browser does not sign anyone in.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from frontend.api_client import ApiError, BackdropClient, CognitoLogin
from frontend.safe_text import md

BANNER_ENV = "BACKDROP_UI_BANNER"


def settings() -> dict[str, str | None]:
    return {
        "api": os.environ.get("BACKDROP_API_URL", "http://127.0.0.1:8000"),
        "client_id": os.environ.get("BACKDROP_COGNITO_CLIENT_ID"),
        "region": os.environ.get("BACKDROP_REGION", "us-east-1"),
        "client_secret": os.environ.get("BACKDROP_COGNITO_CLIENT_SECRET"),
        "cognito_endpoint": os.environ.get("BACKDROP_COGNITO_ENDPOINT"),  # the local stack only
    }


SESSION_PARAM = "session"
SESSION_IDLE_SECONDS = 12 * 3600
MAX_SESSIONS = 1000  # the oldest are forgotten first
_BROWSER_COOKIE = "_streamlit_xsrf"


@dataclass
class _Kept:
    api: Any
    user: str
    browser: str | None
    last_used: float
    state: dict[str, Any] = field(default_factory=dict)  # page state that outlives a reload


# What the New batch page keeps across a reload or a page error: the uploaded photos (refs and
# bytes), the kept labels and prompts per photo, the files that were not added, and each file's
# upload state (frontend/upload_queue.py: the failed ones can be sent again after a reload).
BATCH_STATE = ("batch", "kept", "prompts", "upload_problems", "upload_queue")


_kept: dict[str, _Kept] = {}
_kept_lock = threading.Lock()


def _browser() -> str | None:
    """A digest of this browser's XSRF secret (Streamlit sets the cookie on the first page load).

    The cookie is re-masked on every page load ("2|mask|masked token|time", the token XOR the
    repeated mask), so the unmasked token is what stays the same across reloads.
    """
    try:
        cookie = st.context.cookies.get(_BROWSER_COOKIE)
    except Exception:  # no request context (tests, bare mode)
        return None
    if not cookie:
        return None
    secret = cookie.strip("\"'").encode()
    parts = cookie.strip("\"'").split("|")
    if len(parts) == 4 and parts[0] == "2":
        try:
            mask, masked = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            return None
        if not mask:
            return None
        secret = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
    return hashlib.sha256(secret).hexdigest()


def _keep(api: Any, user: str) -> None:
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    with _kept_lock:
        for stale in [k for k, v in _kept.items() if now - v.last_used > SESSION_IDLE_SECONDS]:
            del _kept[stale]
        while len(_kept) >= MAX_SESSIONS:
            del _kept[min(_kept, key=lambda k: _kept[k].last_used)]
        _kept[session_id] = _Kept(api, user, _browser(), now)
    st.session_state["session_id"] = session_id
    st.query_params[SESSION_PARAM] = session_id


def _resume() -> None:
    """After a reload: the client kept under the address's session id, if it is still valid here."""
    session_id = st.query_params.get(SESSION_PARAM)
    if not session_id:
        return
    now = time.time()
    with _kept_lock:
        kept = _kept.get(session_id)
        if kept is None or now - kept.last_used > SESSION_IDLE_SECONDS or kept.browser != _browser():
            kept = None
        else:
            kept.last_used = now
    if kept is None:
        del st.query_params[SESSION_PARAM]
        return
    st.session_state["api"] = kept.api
    st.session_state["user"] = kept.user
    st.session_state["session_id"] = session_id
    for name, value in kept.state.items():
        st.session_state.setdefault(name, value)


def keep_state(*names: str) -> None:
    """Keep these session-state values with the signed-in session, so a reload finds them."""
    with _kept_lock:
        kept = _kept.get(st.session_state.get("session_id") or "")
        if kept is not None:
            kept.state.update({name: st.session_state[name] for name in names if name in st.session_state})


def forget_state(*names: str) -> None:
    """Drop these values from the page and from what a reload finds."""
    with _kept_lock:
        kept = _kept.get(st.session_state.get("session_id") or "")
        if kept is not None:
            for name in names:
                kept.state.pop(name, None)
    for name in names:
        st.session_state.pop(name, None)


def client() -> Any:
    if "api" not in st.session_state:
        _resume()
    session_id = st.session_state.get("session_id")
    if session_id and st.query_params.get(SESSION_PARAM) != session_id:
        st.query_params[SESSION_PARAM] = session_id  # switching pages drops the query string
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
    api = BackdropClient(config["api"] or "", login.id_token)
    st.session_state["api"] = api
    st.session_state["user"] = username
    _keep(api, username)


def sign_out() -> None:
    with _kept_lock:
        _kept.pop(st.session_state.get("session_id") or "", None)
    for key in ("api", "user", "job_id", "session_id", *BATCH_STATE):
        if key in st.session_state:
            del st.session_state[key]
    st.query_params.clear()


def show_error(exc: ApiError) -> None:
    # messages quote requests (field names, file names): shown as text, never as markup; the
    # error's code is for programs (the CLI prints it), not for the people reading this page
    st.error(md(exc.message))
    details = exc.details if isinstance(exc.details, list) else []
    for detail in details[:20]:
        if not isinstance(detail, dict):
            continue
        where = detail.get("field") or detail.get("name") or detail.get("imageRef") or ""
        st.caption(f"• {md(where)}: {md(detail.get('message', ''))}")


def banner() -> None:
    """A notice from whoever started this front end, on every page (the local stack says there
    what answers in place of AWS's models); nothing when BACKDROP_UI_BANNER is unset."""
    text = os.environ.get(BANNER_ENV, "").strip()
    if text:
        st.warning(text, icon=":material/science:")
