"""Backdrop's Streamlit front end: `streamlit run frontend/streamlit_app.py`."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` starts in frontend/

from frontend import session

st.set_page_config(page_title="Backdrop", page_icon="🖼️", layout="wide")
PAGES = Path(__file__).resolve().parent / "pages"

if session.signed_in():
    with st.sidebar:
        st.caption(f"Signed in as {st.session_state.get('user', '')}")
        if st.button("Sign out", key="sign_out"):
            session.sign_out()
            st.rerun()
    pages = [
        st.Page(PAGES / "new_batch.py", title="New batch", icon=":material/add_photo_alternate:", default=True),
        st.Page(PAGES / "jobs.py", title="Jobs", icon=":material/list:"),
        st.Page(PAGES / "job.py", title="Job", icon=":material/image:"),
    ]
else:
    pages = [st.Page(PAGES / "sign_in.py", title="Sign in", icon=":material/login:", default=True)]
st.navigation(pages).run()
