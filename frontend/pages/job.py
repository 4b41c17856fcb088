"""One job: live counts, its images a page at a time (with causes), downloads, retry.

The job id is in the address (`?job=`), so a reload, a bookmark or the email's link opens it.
A running job refreshes itself every 3 s; a finished one is drawn once and left alone. Only one
page of images is asked for at a time, whatever the job's size.
"""

from __future__ import annotations

import io
import itertools
import zipfile
from pathlib import Path
from typing import Any

import streamlit as st

from chalicelib import contracts
from chalicelib.quality import Outcome, Scorecard
from frontend import session, sign_in_form
from frontend.api_client import ApiError

TERMINAL = {status.value for status in contracts.TERMINAL_JOB_STATUSES}
RETRYABLE = {code.value for code in contracts.RETRYABLE_ERROR_CODES}
PAGE_SIZE = 24
# The zip is built in this browser session's memory: beyond this many results, the CLI's
# `backdrop download` is the way (it writes every page to disk).
ZIP_MAX_IMAGES = 200
SHOW = {"All images": None, **{status.value.title(): status.value for status in contracts.ImageStatus}}
FINISHED_IMAGES = {status.value for status in contracts.TERMINAL_IMAGE_STATUSES}

if not session.signed_in():  # a job link opened while signed out
    sign_in_form.show()
    st.stop()
st.title("Job")
api = session.client()
chosen = st.query_params.get(contracts.JOB_QUERY_PARAM) or st.session_state.get("job_id", "")
# keyed by the chosen job, so opening another job (a retry, the Jobs page) refills the field
job_id = st.text_input("Job id", value=chosen, key=f"job_id_input-{chosen}").strip()
if job_id and job_id != st.query_params.get(contracts.JOB_QUERY_PARAM):
    st.query_params[contracts.JOB_QUERY_PARAM] = job_id
    st.session_state["job_id"] = job_id


def _open(other_job_id: str) -> None:
    st.session_state["job_id"] = other_job_id
    st.query_params[contracts.JOB_QUERY_PARAM] = other_job_id
    st.rerun()


def _zip(view: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for image in api.job_images(view["jobId"], status=contracts.ImageStatus.SUCCEEDED.value):
            for output in image.get("outputs") or []:
                name = (
                    f"{Path(image['name']).stem}-{image['imageId'][:8]}-{output['variant']}{Path(output['key']).suffix}"
                )
                archive.writestr(name, api.download(output["url"]))
    return buf.getvalue()


def _page_query(job_id: str) -> tuple[str | None, str | None]:
    """The status filter and the cursor of the page to show (no cursor: the first page)."""
    left, right = st.columns([2, 3])
    status = SHOW[left.selectbox("Show", list(SHOW), key="job_filter")]
    trail: list[str] = st.session_state.setdefault(f"job_pages-{job_id}-{status}", [])
    right.caption(f"Page {len(trail) + 1}")
    return status, trail[-1] if trail else None


def _page_buttons(view: dict[str, Any], status: str | None) -> None:
    trail: list[str] = st.session_state[f"job_pages-{view['jobId']}-{status}"]
    back, forward = st.columns(2)
    if trail and back.button("← Previous page", key="page_back"):
        trail.pop()
        st.rerun()
    if view.get("nextCursor") and forward.button("Next page →", key="page_next"):
        trail.append(view["nextCursor"])
        st.rerun()


def _view(job_id: str) -> tuple[dict[str, Any], str | None]:
    status, cursor = _page_query(job_id)
    return api.job(job_id, limit=PAGE_SIZE, cursor=cursor, status=status), status


def _gallery(view: dict[str, Any]) -> None:
    counts = view["counts"]
    total = max(1, sum(counts.values()))
    done = sum(counts.get(s, 0) for s in FINISHED_IMAGES)
    st.markdown(f"**{view['status']}** · model {view.get('model')} · {view.get('prompt') or ''}")
    cancelled = f" · {counts['CANCELLED']} cancelled" if counts.get("CANCELLED") else ""
    st.progress(
        done / total,
        text=f"{counts.get('SUCCEEDED', 0)} succeeded · {counts.get('FAILED', 0)} failed{cancelled} · {total - done} to go",
    )
    if view.get("cause"):
        st.error(f"The job could not run: {view['cause']}")
    if view.get("notification", {}).get("status") == "FAILED":
        st.warning(f"The email could not be sent: {view['notification'].get('cause')}")
    if not view["images"]:
        st.caption("No images here.")
    for image in view["images"]:
        with st.container(border=True):
            st.markdown(f"**{image['name']}** · {image['status']}")
            if image.get("errorCode"):
                st.error(f"{image['errorCode']}: {image.get('cause')}")
            before, after = st.columns(2)
            before.image(image["originalUrl"], caption="Before", width="stretch")
            for output in image.get("outputs") or []:
                after.image(
                    output["url"],
                    caption=f"After (variant {output['variant']}, seed {output.get('seed')})",
                    width="stretch",
                )
                if output.get("quality"):
                    card = Scorecard.from_dict(output["quality"])
                    show = {Outcome.FAIL: after.error, Outcome.WARN: after.warning}.get(card.outcome, after.success)
                    show(f"Quality {card.summary()}")
                compliance = output.get("compliance")
                if compliance:
                    failed = [c for c in compliance["checks"] if c["outcome"] == "FAIL"]
                    lines = "\n".join(f"- {c['rule']}: {c['reason']} ({c['requirement']})" for c in failed)
                    if failed:
                        after.error(f"{compliance['preset']}: FAIL\n{lines}")
                    else:
                        after.success(f"{compliance['preset']}: PASS (fill {compliance['fill']}%)")
                for note in output.get("notes") or []:
                    after.caption(note)


def _downloads(view: dict[str, Any]) -> None:
    """Zip on request (built once per job and session), reports by their presigned links."""
    left, middle, right = st.columns(3)
    zips: dict[str, bytes] = st.session_state.setdefault("zips", {})
    succeeded = view["counts"].get("SUCCEEDED", 0)
    if succeeded > ZIP_MAX_IMAGES:
        left.caption(f"{succeeded:,} results: download them with `backdrop download {view['jobId']} --out DIR`.")
    elif succeeded:
        if view["jobId"] in zips:
            left.download_button("Download all (zip)", zips[view["jobId"]], f"backdrop-{view['jobId']}.zip", key="zip")
        elif left.button("Prepare zip", key="prepare_zip", help="Collects every result into one zip file"):
            with st.spinner("Collecting the results…"):
                try:
                    zips[view["jobId"]] = _zip(view)
                except ApiError as exc:
                    session.show_error(exc)
                else:
                    st.rerun()
    for column, fmt in ((middle, "json"), (right, "csv")):
        if view.get("reports", {}).get(fmt):
            column.link_button(f"Report ({fmt.upper()})", view["reports"][fmt])


def _retry(view: dict[str, Any]) -> None:
    """One retry per failed set, offered only when a failure can succeed on a second attempt."""
    if not view["counts"].get("FAILED"):
        return
    # the failed images' codes, from their first pages (enough to tell passing failures apart)
    failed = list(itertools.islice(api.job_images(view["jobId"], status=contracts.ImageStatus.FAILED.value), 500))
    retried: dict[str, str] = st.session_state.setdefault("retried", {})
    if view["jobId"] in retried:
        new_job = retried[view["jobId"]]
        st.success(f"The failed images were sent again as job {new_job}.")
        if st.button(f"Open job {new_job}", key="open_retry"):
            _open(new_job)
        return
    worth_retrying = [image for image in failed if image.get("errorCode") in RETRYABLE]
    if not worth_retrying:
        codes = ", ".join(sorted({image.get("errorCode") or "unknown" for image in failed}))
        st.caption(
            f"No retry: these failures ({codes}) would happen again with the same photo and settings. "
            "Change the photo or the description and submit it as a new batch."
        )
        return
    if st.button(
        f"Retry the failed images ({view['counts']['FAILED']:,})",
        key="retry",
        help=f"{len(worth_retrying)} of them failed for a passing reason (a busy or failing service)",
    ):
        try:
            again = api.retry(view["jobId"])
        except ApiError as exc:
            session.show_error(exc)
        else:
            retried[view["jobId"]] = again["jobId"]
            st.rerun()


@st.fragment(run_every="3s")
def _live(job_id: str) -> None:
    try:
        view, status = _view(job_id)
    except ApiError as exc:
        session.show_error(exc)
        return
    _gallery(view)
    _page_buttons(view, status)
    if view["status"] in TERMINAL:
        st.rerun(scope="app")  # finished: draw the page once more, without the timer and with the downloads


def job_page(job_id: str) -> None:
    try:
        summary = api.job_summary(job_id)
    except ApiError as exc:
        session.show_error(exc)
        return
    if summary["status"] not in TERMINAL:
        _live(job_id)
        return
    try:
        view, status = _view(job_id)
    except ApiError as exc:
        session.show_error(exc)
        return
    _gallery(view)
    _page_buttons(view, status)
    _downloads(view)
    _retry(view)


if job_id:
    job_page(job_id)
else:
    st.info("Open a job from the Jobs page, or paste its id.")
