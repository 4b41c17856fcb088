"""Your jobs, newest first, with progress that refreshes by itself."""

from __future__ import annotations

import streamlit as st

from chalicelib.core import contracts
from frontend import session
from frontend.api_client import ApiError
from frontend.safe_text import md

st.title("Jobs")


PAGE_SIZE = 20


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
        counts = job.get("counts") or {}
        total = max(1, job.get("imageCount") or sum(counts.values()))
        done = sum(counts.get(s.value, 0) for s in contracts.TERMINAL_IMAGE_STATUSES)
        with st.container(border=True):
            left, right = st.columns([3, 1])
            left.markdown(f"**{job['jobId']}** · {job['status']} · {job.get('imageCount', 0)} photo(s)")
            left.caption(md(job.get("prompt") or ""))
            left.progress(done / total, text=f"{done}/{total} finished · {counts.get('FAILED', 0)} failed")
            if right.button("Open", key=f"open-{job['jobId']}"):
                st.session_state["job_id"] = job["jobId"]
                st.switch_page("pages/job.py", query_params={contracts.JOB_QUERY_PARAM: job["jobId"]})
    newer, older = st.columns(2)
    if trail and newer.button("← Newer jobs", key="jobs_newer"):
        trail.pop()
        st.rerun(scope="fragment")
    if page.get("nextCursor") and older.button("Older jobs →", key="jobs_older"):
        trail.append(page["nextCursor"])
        st.rerun(scope="fragment")


job_list()
