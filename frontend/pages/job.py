"""One job: live counts, a gallery you can work in, downloads, retry, cancel and delete.

The job id is in the address (`?job=`), so a reload, a bookmark or the email's link opens it.
The gallery is a grid of one page of images at a time (frontend/gallery.py walks the paged job
view), filtered by status and quality verdict; each card compares before and after and opens a
full-size view. A running job refreshes itself every 3 s, lightly: the job's summary alone
(`limit=0`) is asked each time, and the page of images only when the counts, the verdicts or the
filters changed; otherwise the cards are drawn again from what the last answer said, with the
same image links, so a refresh is quick and never greys the page out. While it runs, the cards
keep their places ("Fixed order"); "Doubtful first" is the default once it is done. It keeps
refreshing until the job is settled: a terminal status and, for a cancelled job, its closing done
(the view's `closing`). A settled job is drawn once.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import streamlit as st

from chalicelib.core import contracts
from chalicelib.core.scorecard import Outcome, Scorecard, attempts_summary
from chalicelib.core.wording import deadline_words
from frontend import gallery, job_actions, session, sign_in_form, words
from frontend.api_client import ApiError
from frontend.safe_text import md

TERMINAL = {status.value for status in contracts.TERMINAL_JOB_STATUSES}
RETRYABLE = {code.value for code in contracts.RETRYABLE_ERROR_CODES}
PAGE_SIZES = (12, 24, 48)
COLUMNS = 4
# a page with several variants of a photo: wider cards, so its variants fit side by side
VARIANT_COLUMNS = 2
SHOW = {"All images": None, **{status.value.title(): status.value for status in contracts.ImageStatus}}
FINISHED_IMAGES = {status.value for status in contracts.TERMINAL_IMAGE_STATUSES}
VERDICTS = {
    "Any verdict": None,
    "Quality FAIL": contracts.Verdict.FAIL.value,
    "Quality WARN": contracts.Verdict.WARN.value,
    "Quality PASS": contracts.Verdict.PASS.value,
}
# "Fixed order": the order the job lists its images in, which a running job never changes
ORDERS = {"Doubtful first": True, "Fixed order": False}
LOOKS = ("After", "Before", "Side by side")
# an archive's link lives contracts.ARCHIVE_URL_TTL_SECONDS; past this, the page asks for a new one
LINK_REUSE_SECONDS = contracts.ARCHIVE_URL_TTL_SECONDS - 5 * 60
REFRESH = "3s"
# transparent results on a checkerboard (an opaque picture covers it), as image editors show them
CHECKERBOARD_CSS = """<style>
[data-testid="stImage"] img, [data-testid="stFullScreenFrame"] img {
  background: repeating-conic-gradient(#d9d9d9 0% 25%, #ffffff 0% 50%) 50% / 16px 16px;
}
</style>"""

if not session.signed_in():  # a job link opened while signed out
    sign_in_form.show()
    st.stop()
st.title("Job")
api = session.client()
st.html(CHECKERBOARD_CSS)
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


def _links() -> gallery.LinkCache:
    return gallery.LinkCache(st.session_state.setdefault("image_links", {}))


# ---------------------------------------------------------------- filters and pages


def _filters(running: bool) -> tuple[list[gallery.Segment], int]:
    status_col, verdict_col, order_col, size_col, look_col = st.columns([2, 2, 2, 1, 3])
    status = SHOW[status_col.selectbox("Show", list(SHOW), key="job_filter")]
    verdict = VERDICTS[verdict_col.selectbox("Verdict", list(VERDICTS), key="job_verdict")]
    # while the job runs, cards keep their places; once done, the doubtful ones come first
    doubtful = ORDERS[
        order_col.selectbox(
            "Order",
            list(ORDERS),
            index=1 if running else 0,
            key=f"job_order-{'live' if running else 'done'}",
            help="Fixed order: the job's own order of its photos, which never changes while it runs. "
            "Doubtful first: failed photos, then results the quality checks doubt.",
        )
    ]
    size = size_col.selectbox("Per page", PAGE_SIZES, index=1, key="job_page_size")
    look_col.segmented_control("Compare", LOOKS, default=LOOKS[0], key="job_look")
    return gallery.segments(status, verdict, doubtful), int(size)


def _trail(job_id: str, chain: list[gallery.Segment], size: int) -> list[gallery.PageStart]:
    """The starts of the pages before this one, per job and query (a new filter starts at page 1)."""
    key = f"job_pages-{job_id}-{hash((tuple(chain), size))}"
    trail: list[gallery.PageStart] = st.session_state.setdefault(key, [])
    return trail


def _signature(view: dict[str, Any], chain: list[gallery.Segment], size: int, start: gallery.PageStart) -> str:
    """What the page of cards depends on: when none of it changed, the last page is drawn again."""
    review = (view.get("review") or {}).get("status")
    parts = (view.get("status"), view.get("counts"), view.get("verdicts"), review, view.get("reportRewrite"))
    return repr((parts, tuple(chain), size, start, view.get("closing")))


def _page(job_id: str, summary: dict[str, Any] | None = None) -> tuple[gallery.GalleryPage, list[gallery.PageStart]]:
    """The page of cards; with `summary` (a running job's light poll), the last page when nothing
    it depends on changed, with the fresh summary."""
    running = summary is not None
    chain, size = _filters(running)
    trail = _trail(job_id, chain, size)
    start = trail[-1] if trail else gallery.PageStart()
    cached: dict[str, Any] = st.session_state.setdefault("job_page_cache", {})
    if summary is not None:
        signature = _signature(summary, chain, size, start)
        if cached.get("job") == job_id and cached.get("signature") == signature:
            last: gallery.GalleryPage = cached["page"]
            return gallery.GalleryPage({**last.view, **summary}, last.images, last.next_start), trail
    page = gallery.fetch_page(_known_summary(summary), job_id, chain, start, size)
    page.images = _links().stabilise(page.images)
    if summary is not None:
        cached.update(job=job_id, signature=_signature(page.view, chain, size, start), page=page)
    return page, trail


def _known_summary(summary: dict[str, Any] | None) -> Any:
    """The API's job view, answering the summary the refresh already has without asking again."""

    def job(job_id: str, **query: Any) -> dict[str, Any]:
        if summary is not None and query.get("limit") == 0:
            return summary
        return dict(api.job(job_id, **query))

    return job


def _page_buttons(page: gallery.GalleryPage, trail: list[gallery.PageStart]) -> None:
    back, middle, forward = st.columns([1, 2, 1])
    middle.caption(f"Page {len(trail) + 1} · {len(page.images)} image(s) shown")
    if trail:
        back.button("← Previous page", key="page_back", on_click=trail.pop)
    if page.next_start is not None:
        forward.button("Next page →", key="page_next", on_click=trail.append, args=(page.next_start,))


# ---------------------------------------------------------------- summary


def _preset_names() -> dict[str, str]:
    if "preset_names" not in st.session_state:
        try:
            st.session_state["preset_names"] = {p["key"]: p["displayName"] for p in api.presets()["presets"]}
        except (ApiError, AttributeError, KeyError):
            st.session_state["preset_names"] = {}
    names: dict[str, str] = st.session_state["preset_names"]
    return names


def _summary(view: dict[str, Any]) -> None:
    settled = view["status"] in TERMINAL and not view.get("closing")
    st.markdown(f"**{words.status_words(view)}** · model {view.get('model')} · {md(view.get('prompt') or '')}")
    bar = words.progress(view)
    st.progress(bar.fraction, text=bar.text)
    if not settled and words.eta_words(view):
        st.caption(
            md(words.eta_words(view)),
            help="Planned from how many photos this deployment works on at once (set from your model quota) and "
            "the model calls each photo needs; once enough photos are done, from this job's own pace.",
        )
    cost = view.get("cost") or {}
    sentence = words.cost_sentence(cost, finished=settled)
    if sentence:
        st.caption(
            sentence,
            help=f"The model calls that answered, at the model's price ({cost.get('priceSource')}), and their "
            "Rekognition quality checks. AWS bills them; storage and the other services cost far less.",
        )
    if view.get("cause"):
        st.error(f"The job could not run: {md(words.cause_words(view['cause'], _preset_names()))}")
    if view.get("notification", {}).get("status") == "FAILED":
        st.warning(f"The email could not be sent: {md(view['notification'].get('cause'))}")
    if view.get("notification", {}).get("status") == "NO_SUBSCRIPTION":
        st.info(
            "No email was sent: your address is not subscribed to job emails (ask your administrator to subscribe it)."
        )
    if view.get("retryOf"):
        st.caption(f"Sends again the photos of job {view['retryOf']} that were not made.")
    rewrite = view.get("reportRewrite") or {}
    if rewrite.get("status") == "FAILED":
        st.warning(
            f"The report is waiting to be updated with your picks: {md(rewrite.get('lastError'))}. It is retried."
        )
    elif rewrite:
        st.info("The report is being updated with your picks; the report links give the earlier one until then.")
    _review_banner(view)


def _waiting_for_review(view: dict[str, Any]) -> bool:
    return (view.get("review") or {}).get("status") == contracts.ReviewStatus.WAITING.value


def _review_banner(view: dict[str, Any]) -> None:
    review = view.get("review") or {}
    if _waiting_for_review(view):
        st.info(
            "Review before delivery: untick the results you do not want, then deliver. "
            f"{deadline_words(str(review.get('deadline')))}; after that the job is delivered as it is.",
            icon=":material/rate_review:",
        )
        st.button("Approve and deliver", key="approve", type="primary", on_click=_approve, args=(view["jobId"],))
    elif review.get("status") in (contracts.ReviewStatus.APPROVED.value, contracts.ReviewStatus.EXPIRED.value):
        how = "approved" if review["status"] == contracts.ReviewStatus.APPROVED.value else "not approved in time"
        st.caption(f"Reviewed: {how}; rejected results are marked in the report and left out of the zip.")
    if st.session_state.get("review_error"):
        session.show_error(st.session_state.pop("review_error"))


def _approve(job_id: str) -> None:
    try:
        api.approve(job_id)
    except ApiError as exc:
        st.session_state["review_error"] = exc


def _decide(job_id: str, image_id: str) -> None:
    keep = st.session_state.get(f"deliver-{image_id}", True)
    decision = contracts.ReviewDecision.APPROVED if keep else contracts.ReviewDecision.REJECTED
    try:
        api.review(job_id, {image_id: decision.value})
    except ApiError as exc:
        st.session_state["review_error"] = exc


# ---------------------------------------------------------------- the grid


@st.dialog("Full size", width="large")
def _full_size(image: dict[str, Any]) -> None:
    st.markdown(f"**{md(image['name'])}** · {IMAGE_WORDS.get(image['status'], image['status'])}")
    for output in image.get("outputs") or []:
        mark = " · delivered" if output.get("delivered") and len(image["outputs"]) > 1 else ""
        st.image(output["url"], caption=f"After (variant {output['variant']}){mark}", width="stretch")
    st.image(image["originalUrl"], caption="Before", width="stretch")


def _scorecard(output: dict[str, Any]) -> None:
    if not output.get("quality"):
        return
    card = Scorecard.from_dict(output["quality"])
    show = {Outcome.FAIL: st.error, Outcome.WARN: st.warning}.get(card.outcome, st.success)
    show(f"Quality {card.summary()}")


def _compliance(output: dict[str, Any]) -> None:
    """A marketplace preset's PASS/FAIL (the rules that failed), which verdict decides when it and
    the quality checks disagree, and what Backdrop did to the output."""
    compliance = output.get("compliance")
    names = _preset_names()
    if compliance:
        name = names.get(compliance["preset"], compliance["preset"])
        failed = [c for c in compliance["checks"] if c["outcome"] == "FAIL"]
        lines = "\n".join(
            f"- {md(c['rule'])}: {md(words.cause_words(c['reason'], names))} ({md(c['requirement'])})" for c in failed
        )
        if failed:
            st.error(f"{md(name)}: does not meet the rules\n{lines}")
        else:
            st.success(f"{md(name)}: meets the rules (fill {compliance['fill']}%)")
        note = words.verdict_note(output, name)
        if note:
            st.caption(md(note))
    for note in output.get("notes") or []:
        st.caption(md(words.cause_words(note, names)))


def _pick(job_id: str, image_id: str, variant: int) -> None:
    try:
        answer = api.pick(job_id, image_id, variant)
        later = {"REWRITING": " The report is being updated.", "REWRITE_PENDING": " The report will be updated."}
        st.session_state["variant_note"] = f"Variant {variant} will be delivered." + later.get(answer.get("report"), "")
    except ApiError as exc:
        st.session_state["variant_error"] = exc


def _regenerate(job_id: str, image_id: str) -> None:
    seed_text = str(st.session_state.get(f"regen-seed-{image_id}") or "").strip()
    prompt = str(st.session_state.get(f"regen-prompt-{image_id}") or "").strip()
    try:
        answer = api.regenerate(
            job_id, image_id, seed=int(seed_text) if seed_text.isdigit() else None, prompt=prompt or None
        )
    except ApiError as exc:
        st.session_state["variant_error"] = exc
        return
    st.session_state["variant_note"] = (
        f"Regenerating as job {answer['jobId']} (seed {answer['seed']}, {answer['estimate']['sentence']}); "
        "its result joins this photo's variants when it is done."
    )
    st.session_state["regenerated_job"] = answer["jobId"]


def _variant_messages() -> None:
    if st.session_state.get("variant_error"):
        session.show_error(st.session_state.pop("variant_error"))
    if st.session_state.get("variant_note"):
        st.success(st.session_state.pop("variant_note"))
    # kept until it is opened: the click reruns this fragment, which must draw the button again
    regenerated = st.session_state.get("regenerated_job")
    if regenerated and st.button("Open the regeneration's job", key="open_regenerated"):
        del st.session_state["regenerated_job"]
        _open(regenerated)


def _focused(image: dict[str, Any], shown: dict[str, Any]) -> dict[str, Any]:
    """The variant the card shows large: the one chosen in its "Variants" control (drawn below
    the picture), the delivered one at first."""
    chosen = st.session_state.get(f"focus-{image['imageId']}")
    return next((o for o in image.get("outputs") or [] if o["variant"] == chosen), shown)


def _variants(job_id: str, image: dict[str, Any], delivered: dict[str, Any], focused: dict[str, Any]) -> None:
    """The image's variants side by side (small, the delivered one ticked), a choice of the one
    to look at large, and "Deliver this one" when that is not the delivered one."""
    outputs = image.get("outputs") or []
    delivered_variant = int(delivered["variant"])
    columns = st.columns(len(outputs))
    for column, output in zip(columns, outputs, strict=True):
        tick = " ✓" if output.get("delivered") else ""
        outcome = (output.get("quality") or {}).get("outcome") or "?"
        column.image(output["url"], caption=f"{output['variant']} · {outcome}{tick}", width="stretch")
    st.segmented_control(
        "Variants",
        [int(o["variant"]) for o in outputs],
        default=delivered_variant,
        key=f"focus-{image['imageId']}",
        format_func=lambda v: f"{v} ✓" if v == delivered_variant else str(v),
        help="Look at a variant large; ✓ is the one delivered (the best by the quality checks, or your pick).",
    )
    if not focused.get("delivered"):
        st.button(
            "Deliver this one",
            key=f"pick-{image['imageId']}-{focused['variant']}",
            on_click=_pick,
            args=(job_id, image["imageId"], int(focused["variant"])),
            type="primary",
            width="stretch",
        )


def _regenerate_form(job_id: str, image: dict[str, Any]) -> None:
    with st.popover("Regenerate", icon=":material/autorenew:", width="stretch"):
        st.caption("One more variant of this photo, made by a linked job: a new seed, or your own, and the prompt.")
        st.text_input("Seed (optional)", key=f"regen-seed-{image['imageId']}")
        st.text_area("Prompt (optional)", key=f"regen-prompt-{image['imageId']}", placeholder=image.get("prompt") or "")
        st.button(
            "Regenerate this one",
            key=f"regen-{image['imageId']}",
            on_click=_regenerate,
            args=(job_id, image["imageId"]),
            type="primary",
        )


IMAGE_WORDS = {
    contracts.ImageStatus.PENDING.value: "waiting",
    contracts.ImageStatus.RUNNING.value: "in progress",
    contracts.ImageStatus.SUCCEEDED.value: "done",
    contracts.ImageStatus.FAILED.value: "failed",
    contracts.ImageStatus.CANCELLED.value: "cancelled",
}


def _card(
    image: dict[str, Any],
    look: str,
    reviewing: str | None = None,
    job_id: str | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    verdict = gallery.verdict_of(image)
    status = IMAGE_WORDS.get(image["status"], image["status"])
    st.markdown(f"**{md(image['name'])}** · {status}" + (f" · quality {verdict}" if verdict else ""))
    if image.get("errorCode"):
        cause = words.cause_words(image.get("cause"), _preset_names())
        st.error(f"{words.cause_title(image['errorCode'])}: {md(cause)}")
    outputs = image.get("outputs") or []
    delivered = gallery.delivered(image)  # the variant that goes out (the best, or the owner's pick)
    several = bool(job_id) and len(outputs) > 1 and delivered is not None
    shown = _focused(image, delivered) if several and delivered else delivered
    flipped = bool(outputs) and st.toggle("Before", key=f"before-{image['imageId']}", help="Show the original")
    after_first = (look == "After") != flipped
    if look == "Side by side" and shown:
        before, after = st.columns(2)
        before.image(image["originalUrl"], caption="Before", width="stretch")
        after.image(shown["url"], caption="After", width="stretch")
    elif shown and after_first:
        caption = gallery.variant_caption(shown) if several else "After"
        st.image(shown["url"], caption=caption, width="stretch")
    else:
        st.image(image["originalUrl"], caption="Before", width="stretch")
    if shown:
        _scorecard(shown)
        _compliance(shown)
    if several and delivered and shown:
        _variants(str(job_id), image, delivered, shown)
    attempts = image.get("attempts") or []
    if len(attempts) > 1:  # the seeds and scores of each try: there for who wants them
        with st.expander(f"Made {len(attempts)} times; the best was kept"):
            st.caption(attempts_summary(attempts))
    if reviewing and outputs:  # the job waits for its owner: deliver this result or not
        key = f"deliver-{image['imageId']}"
        if key not in st.session_state:
            st.session_state[key] = image.get("reviewDecision") != contracts.ReviewDecision.REJECTED.value
        st.checkbox("Deliver", key=key, on_change=_decide, args=(reviewing, image["imageId"]))
    elif image.get("reviewDecision") == contracts.ReviewDecision.REJECTED.value:
        st.caption("Rejected in review: not delivered.")
    if st.button("Full size", key=f"full-{image['imageId']}", icon=":material/open_in_full:", width="stretch"):
        _full_size(image)
    if job_id and words.can_regenerate(image, settings):  # a described background only: the rest come out the same
        _regenerate_form(job_id, image)


def _grid(page: gallery.GalleryPage) -> None:
    if not page.images:
        st.caption("No images here.")
        return
    look = st.session_state.get("job_look") or LOOKS[0]
    reviewing = page.view["jobId"] if _waiting_for_review(page.view) else None
    _variant_messages()
    several = any(len(image.get("outputs") or []) > 1 for image in page.images)
    per_row = VARIANT_COLUMNS if several else COLUMNS
    for row_start in range(0, len(page.images), per_row):
        columns = st.columns(per_row)
        for column, image in zip(columns, page.images[row_start : row_start + per_row], strict=False):
            with column, st.container(border=True):
                _card(image, look, reviewing, page.view["jobId"], page.view.get("settings"))


# ---------------------------------------------------------------- finished jobs


def _archive_state(answer: dict[str, Any]) -> None:
    if answer["state"] == "READY":
        st.link_button(f"Download zip ({answer['bytes'] / 2**20:.1f} MB)", answer["url"], icon=":material/download:")
        st.caption("The link works for 15 minutes; ask again for a new one (the zip is not rebuilt).")
    elif answer["state"] == "BUILDING":
        total = max(1, int(answer.get("total") or 1))
        st.progress(
            int(answer.get("done") or 0) / total, text=f"Building the zip: {answer.get('done', 0)}/{total} files"
        )
    elif answer["state"] == "FAILED":
        st.error(f"The zip could not be built: {md(answer.get('cause'))}. Ask for it again.")


@st.fragment(run_every="3s")
def _archive_progress(job_id: str, originals: bool, report: bool) -> None:
    """While a large zip builds in the backend: its progress, until the link is there."""
    try:
        answer = api.archive_status(job_id, originals=originals, report=report)
    except ApiError as exc:
        session.show_error(exc)
        return
    _archive_state(answer)
    if answer["state"] != "BUILDING":
        st.session_state.setdefault("archives", {})[(job_id, originals, report)] = {**answer, "askedAt": time.time()}
        st.rerun(scope="app")


def _ask_archive(job_id: str, originals: bool, report: bool) -> None:
    try:
        answer = api.archive(job_id, originals=originals, report=report)
    except ApiError as exc:
        st.session_state["archive_error"] = exc
        return
    st.session_state.setdefault("archives", {})[(job_id, originals, report)] = {**answer, "askedAt": time.time()}


def _downloads(view: dict[str, Any]) -> None:
    """The zip, built once in the backend on request; the reports by their presigned links."""
    zip_column, json_column, csv_column = st.columns(3)
    archives: dict[tuple[str, bool, bool], dict[str, Any]] = st.session_state.setdefault("archives", {})
    with zip_column:
        originals = st.checkbox("Originals too", key="archive_originals")
        report = st.checkbox("Report too", key="archive_report")
        wanted = (view["jobId"], originals, report)
        known = archives.get(wanted)
        if known and known["state"] == "READY" and time.time() - known["askedAt"] > LINK_REUSE_SECONDS:
            known = None  # its link is about to expire: a new one (the zip is not rebuilt)
        if known and known["state"] == "BUILDING":
            _archive_progress(*wanted)
        elif known and known["state"] == "READY":
            _archive_state(known)
        else:
            st.button(
                "Prepare zip",
                key="prepare_zip",
                help="Built once by Backdrop, then downloaded from a link",
                on_click=_ask_archive,
                args=wanted,
            )
        if known and known["state"] == "FAILED":
            _archive_state(known)
        if st.session_state.get("archive_error"):
            session.show_error(st.session_state.pop("archive_error"))
    for column, fmt in ((json_column, "json"), (csv_column, "csv")):
        if view.get("reports", {}).get(fmt):
            column.link_button(f"Report ({fmt.upper()})", view["reports"][fmt])


def _retry(view: dict[str, Any]) -> None:
    """One retry per failed set, offered when a failure can succeed on a second attempt, or when
    the budget left photos unsent (sent again with the same budget, by one click)."""
    if not view["counts"].get("FAILED"):
        return
    retried: dict[str, str] = st.session_state.setdefault("retried", {})
    new_job = retried.get(view["jobId"]) or view.get("retriedAs")
    if new_job:
        st.success(f"The photos that were not made were sent again as job {new_job}.")
        if st.button("Open that job", key="open_retry"):
            _open(new_job)
        return
    # the failed images' codes, from their first pages (enough to tell passing failures apart)
    failed = list(itertools.islice(api.job_images(view["jobId"], status=contracts.ImageStatus.FAILED.value), 500))
    unsent = [image for image in failed if image.get("errorCode") == contracts.ErrorCode.BUDGET_REACHED.value]
    worth_retrying = [image for image in failed if image.get("errorCode") in RETRYABLE]
    budget = (view.get("cost") or {}).get("budgetUsd")
    if unsent:
        st.warning(
            f"{len(unsent):,} photo(s) were not sent to the model: the batch's budget"
            + (f" (${float(budget):.2f})" if budget is not None else "")
            + " was spent before their turn. Nothing was charged for them."
        )
        label = f"Send the {len(unsent):,} unsent photo(s) again"
        others = int(view["counts"]["FAILED"]) - len(unsent)
        help_text = "A new job of the photos that were not made, with the same settings and the same budget" + (
            f"; the {others:,} other failed photo(s) go too" if others else ""
        )
    elif worth_retrying:
        label = f"Retry the failed images ({view['counts']['FAILED']:,})"
        help_text = f"{len(worth_retrying)} of them failed for a passing reason (a busy or failing service)"
    else:
        titles = ", ".join(sorted({words.cause_title(image.get("errorCode")).lower() for image in failed}))
        st.caption(
            f"No retry: these failures ({titles}) would happen again with the same photo and settings; "
            "each card says what to change. Change it and submit the photos as a new batch."
        )
        return
    if st.button(label, key="retry", help=help_text, type="primary" if unsent else "secondary"):
        try:
            again = api.retry(view["jobId"])
        except ApiError as exc:
            session.show_error(exc)
        else:
            retried[view["jobId"]] = again["jobId"]
            st.rerun()


def _settled(view: dict[str, Any]) -> bool:
    """Nothing more will change by itself: a terminal status, and a cancel's closing done."""
    return view["status"] in TERMINAL and not view.get("closing")


def _draw(job_id: str, summary: dict[str, Any] | None = None) -> gallery.GalleryPage | None:
    try:
        page, trail = _page(job_id, summary)
    except ApiError as exc:
        session.show_error(exc)
        return None
    _summary(page.view)
    _grid(page)
    _page_buttons(page, trail)
    return page


@st.fragment(run_every=REFRESH)
def _live(job_id: str) -> None:
    """A running job, every 3 s: its summary (counts, cost, ETA), and its page of cards asked again
    only when what it shows changed; until the job is settled, then the whole page once more."""
    try:
        summary = api.job_summary(job_id)
    except ApiError as exc:
        if exc.status == 404:
            st.info("This job was deleted.")
            return
        session.show_error(exc)
        return
    if summary["status"] == contracts.JobStatus.DELETING.value:
        st.info("The job is being deleted: its results, reports and records are going.")
        return
    page = _draw(job_id, summary)
    if page is not None and _settled(page.view):
        st.rerun(scope="app")  # settled: draw the page once more, without the timer and with the downloads


@st.fragment
def _finished(job_id: str) -> None:
    page = _draw(job_id)
    if page is None:
        return
    _downloads(page.view)
    _retry(page.view)


def job_page(job_id: str) -> None:
    try:
        summary = api.job_summary(job_id)
    except ApiError as exc:
        if exc.status == 404:
            st.info("There is no such job: it was deleted, or the link is not yours.")
            return
        session.show_error(exc)
        return
    title, controls = st.columns([4, 1], vertical_alignment="bottom")
    title.subheader(md(summary.get("name") or "Unnamed batch"))
    with controls:
        job_actions.buttons(summary, key="page")
    job_actions.confirm_pending(api, after_delete="pages/jobs.py")
    job_actions.messages()
    if not _settled(summary):
        _live(job_id)
    else:
        _finished(job_id)


if job_id:
    job_page(job_id)
else:
    st.info("Open a job from the Jobs page, or paste its id.")
