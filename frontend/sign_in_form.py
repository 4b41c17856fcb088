"""The sign-in form, shown at the app's root and at any page's address while signed out."""

from __future__ import annotations

import streamlit as st

from frontend import session
from frontend.api_client import ApiError


def show() -> None:
    st.title("Backdrop")
    st.write("Change the background of many photos at once. Sign in with the user your administrator created.")
    with st.form("sign_in_form"):
        username = st.text_input("Email", key="username")
        password = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        try:
            session.sign_in(username, password)
        except ApiError as exc:
            session.show_error(exc)
        else:
            st.rerun()
