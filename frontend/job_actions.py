"""Cancel and Delete, with a confirmation that says what they do, on the job page and the Jobs list.

Cancel stops a running job: photos not finished are never made (no further charge), those done
are kept and the report is written. Delete removes a finished job's results, reports and
records for good (and the original photos too, if asked). A large job's cancel is closed, and
its delete done, in the background: the pages keep refreshing until the job view says so
(`closing`, `DELETING`, then 404).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from chalicelib.core import contracts
from frontend import session
from frontend.api_client import ApiError

TERMINAL = {status.value for status in contracts.TERMINAL_JOB_STATUSES}
NOTE = "job_action_note"
PENDING = "job_action_pending"  # (kind, job view) of a click whose confirmation is open
ERROR = "job_action_error"


def can_cancel(view: Mapping[str, Any]) -> bool:
    return view.get("status") in (contracts.JobStatus.SUBMITTED.value, contracts.JobStatus.RUNNING.value)


def can_delete(view: Mapping[str, Any]) -> bool:
    """A finished job, once a cancel's closing is done (the API refuses it before: the closing
    would write the report after the delete)."""
    return view.get("status") in TERMINAL and not view.get("closing")


def cancel_words(view: Mapping[str, Any]) -> str:
    counts = view.get("counts") or {}
    finished = sum(int(counts.get(s.value, 0)) for s in contracts.TERMINAL_IMAGE_STATUSES)
    total = int(view.get("imageCount") or sum(int(n) for n in counts.values()))
    left = max(0, total - finished)
    return (
        f"The {left:,} photo(s) not finished yet will not be made, and cost nothing more. "
        f"The {finished:,} already finished are kept, with a report. This cannot be undone."
    )


def delete_words(view: Mapping[str, Any]) -> str:
    counts = view.get("counts") or {}
    results = int(counts.get(contracts.ImageStatus.SUCCEEDED.value, 0))
    return (
        f"Deletes this job for good: its {results:,} result(s), its reports (JSON and CSV), any zip, and its "
        "records. Your original photos stay unless you tick the box below."
    )


def _cancel(api: Any, job_id: str) -> None:
    try:
        answer = api.cancel(job_id)
    except ApiError as exc:
        st.session_state[ERROR] = exc
        return
    later = " The unfinished photos are being stopped; this page follows it." if answer.get("closing") else ""
    st.session_state[NOTE] = f"Cancelled.{later}"


def _delete(api: Any, job_id: str, originals: bool) -> bool:
    try:
        answer = api.delete(job_id, originals=originals)
    except ApiError as exc:
        st.session_state[ERROR] = exc
        return False
    more = " It is being removed in the background." if answer.get("deleting") else ""
    st.session_state[NOTE] = f"The job was deleted.{more}"
    return True


def _forget() -> None:
    st.session_state.pop(PENDING, None)


@st.dialog("Cancel this job?", on_dismiss=_forget)
def confirm_cancel(api: Any, view: Mapping[str, Any]) -> None:
    st.write(cancel_words(view))
    keep, stop = st.columns(2)
    if keep.button("Keep it running", key="cancel_no"):
        _forget()
        st.rerun()
    if stop.button("Cancel the job", key="cancel_yes", type="primary"):
        _forget()
        _cancel(api, str(view["jobId"]))
        st.rerun()


@st.dialog("Delete this job?", on_dismiss=_forget)
def confirm_delete(api: Any, view: Mapping[str, Any], after: str | None = None) -> None:
    """`after`: the page to open once deleted (the job page goes to the Jobs list)."""
    st.write(delete_words(view))
    originals = st.checkbox("Also delete the original photos I uploaded for it", key="delete_originals")
    keep, delete = st.columns(2)
    if keep.button("Keep it", key="delete_no"):
        _forget()
        st.rerun()
    if delete.button("Delete for good", key="delete_yes", type="primary"):
        _forget()
        if _delete(api, str(view["jobId"]), originals) and after:
            st.switch_page(after)
        st.rerun()


def messages() -> None:
    """What the last action did (kept across the rerun that closed its dialog)."""
    if st.session_state.get(ERROR):
        session.show_error(st.session_state.pop(ERROR))
    if st.session_state.get(NOTE):
        st.success(st.session_state.pop(NOTE))


def buttons(view: Mapping[str, Any], *, key: str) -> None:
    """Cancel or Delete, whichever can work now; nothing while a cancel is still closing. The
    click asks for the whole page again and `confirm_pending` opens the confirmation there: a
    dialog opened inside a fragment that refreshes itself stops answering after its next refresh
    (docs/aws-notes.md#n92-streamlit-dialogs-fragments-and-stale-elements)."""
    if can_cancel(view):
        if st.button("Cancel job", key=f"cancel-{key}", icon=":material/stop_circle:"):
            st.session_state[PENDING] = ("cancel", dict(view))
            st.rerun(scope="app")
    elif can_delete(view) and st.button("Delete job", key=f"delete-{key}", icon=":material/delete:"):
        st.session_state[PENDING] = ("delete", dict(view))
        st.rerun(scope="app")


def confirm_pending(api: Any, *, after_delete: str | None = None) -> None:
    """The confirmation a Cancel or Delete click asked for (call it outside any fragment)."""
    # kept until answered or dismissed: the dialog is drawn again on every run until then
    pending = st.session_state.get(PENDING)
    if not pending:
        return
    kind, view = pending
    if kind == "cancel":
        confirm_cancel(api, view)
    else:
        confirm_delete(api, view, after_delete)
