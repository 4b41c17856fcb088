"""One job: per-image status with causes, before/after gallery, downloads, retry."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import streamlit as st

from chalicelib.quality import Outcome, Scorecard
from frontend import session
from frontend.api_client import ApiError

TERMINAL = {"COMPLETED", "PARTIAL", "FAILED"}

st.title("Job")
session.stand_in_banner()
api = session.client()
job_id = st.text_input("Job id", value=st.session_state.get("job_id", ""), key="job_id_input")


def _zip(view: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for image in view["images"]:
            for output in image.get("outputs") or []:
                name = (
                    f"{Path(image['name']).stem}-{image['imageId'][:8]}-{output['variant']}{Path(output['key']).suffix}"
                )
                archive.writestr(name, api.download(output["url"]))
    return buf.getvalue()


@st.fragment(run_every="3s")
def job_view(job_id: str) -> None:
    try:
        view = api.job(job_id)
    except ApiError as exc:
        session.show_error(exc)
        return
    counts = view["counts"]
    total = max(1, sum(counts.values()))
    done = counts.get("SUCCEEDED", 0) + counts.get("FAILED", 0)
    st.markdown(f"**{view['status']}** · model {view.get('model')} · {view.get('prompt') or ''}")
    st.progress(
        done / total,
        text=f"{counts.get('SUCCEEDED', 0)} succeeded · {counts.get('FAILED', 0)} failed · {total - done} to go",
    )
    if view.get("notification", {}).get("status") == "FAILED":
        st.warning(f"The email could not be sent: {view['notification'].get('cause')}")
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
    if view["status"] in TERMINAL:
        left, middle, right, retry = st.columns(4)
        if counts.get("SUCCEEDED"):
            left.download_button("Download all (zip)", _zip(view), f"backdrop-{job_id}.zip", key="zip")
        for column, fmt in ((middle, "json"), (right, "csv")):
            if view.get("reports", {}).get(fmt):
                column.download_button(
                    f"Report ({fmt.upper()})",
                    api.download(view["reports"][fmt]),
                    f"report-{job_id}.{fmt}",
                    key=f"report-{fmt}",
                )
        if counts.get("FAILED") and retry.button("Retry failed images", key="retry"):
            try:
                again = api.retry(job_id)
            except ApiError as exc:
                session.show_error(exc)
            else:
                st.session_state["job_id"] = again["jobId"]
                st.success(f"Retrying {again['imageCount']} image(s) as job {again['jobId']}.")


if job_id:
    job_view(job_id.strip())
else:
    st.info("Open a job from the Jobs page, or paste its id.")
