"""Backdrop's Streamlit front end: `streamlit run frontend/streamlit_app.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` starts in frontend/

from chalicelib.core import contracts
from frontend import session

st.set_page_config(page_title="Backdrop", page_icon="🖼️", layout="wide")
PAGES = Path(__file__).resolve().parent / "pages"
session.banner()

JOB_PAGE = st.Page(PAGES / "job.py", title="Job", icon=":material/image:", url_path=contracts.JOB_PAGE_PATH)

if session.signed_in():
    with st.sidebar:
        st.caption(f"Signed in as {st.session_state.get('user', '')}")
        if st.button("Sign out", key="sign_out"):
            session.sign_out()
            st.rerun()
    pages = [
        st.Page(PAGES / "new_batch.py", title="New batch", icon=":material/add_photo_alternate:", default=True),
        st.Page(PAGES / "jobs.py", title="Jobs", icon=":material/list:"),
        JOB_PAGE,
    ]
    st.navigation(pages).run()
else:
    # a job link opened while signed out shows the sign-in form at its own address (not "Page not
    # found"), and the job once signed in
    pages = [st.Page(PAGES / "sign_in.py", title="Sign in", icon=":material/login:", default=True), JOB_PAGE]
    st.navigation(pages, position="hidden").run()
