"""Your jobs, newest first: name, state, date, cost and progress that refreshes by itself, with
Open, Cancel and Delete (frontend/job_actions.py asks before either)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from chalicelib.core import contracts
from frontend import job_actions, session, words
from frontend.api_client import ApiError
from frontend.safe_text import md

st.title("Jobs")


PAGE_SIZE = 20


def _when(created: str | None) -> str:
    """ "Tue 8 Dec, 14:05 UTC" from the job's ISO time."""
    try:
        at = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f"{at:%a} {at.day} {at:%b}, {at:%H:%M} UTC"


def _row(job: dict[str, Any]) -> None:
    settled = job["status"] in job_actions.TERMINAL and not job.get("closing")
    with st.container(border=True):
        left, right = st.columns([4, 1])
        name = md(job.get("name") or "Unnamed batch")
        count = int(job.get("imageCount") or 0)
        left.markdown(f"**{name}** · {words.status_words(job)} · {count:,} photo(s) · {_when(job.get('createdAt'))}")
        left.caption(md(job.get("prompt") or "") + f" · job {job['jobId']}")
        bar = words.progress(job)
        left.progress(bar.fraction, text=bar.text)
        sentence = words.cost_sentence(job.get("cost") or {}, finished=settled)
        if sentence:
            left.caption(sentence)
        with right:
            if st.button("Open", key=f"open-{job['jobId']}"):
                st.session_state["job_id"] = job["jobId"]
                st.switch_page("pages/job.py", query_params={contracts.JOB_QUERY_PARAM: job["jobId"]})
            job_actions.buttons(job, key=job["jobId"])


@st.fragment(run_every="3s")
def job_list() -> None:
    trail: list[str] = st.session_state.setdefault("jobs_pages", [])  # cursors of the pages before this one
    try:
        page = session.client().jobs(limit=PAGE_SIZE, cursor=trail[-1] if trail else None)
    except ApiError as exc:
        session.show_error(exc)
        return
    if not page["jobs"]:
        st.info("No jobs yet: start one on the New batch page.")
        return
    for job in page["jobs"]:
        _row(job)
    newer, older = st.columns(2)
    if trail and newer.button("← Newer jobs", key="jobs_newer"):
        trail.pop()
        st.rerun(scope="fragment")
    if page.get("nextCursor") and older.button("Older jobs →", key="jobs_older"):
        trail.append(page["nextCursor"])
        st.rerun(scope="fragment")


job_actions.confirm_pending(session.client())
job_actions.messages()
job_list()
