"""Upload photos, keep the labels that matter, describe the new background, submit."""

from __future__ import annotations

from collections import Counter
from typing import Any

import streamlit as st

from chalicelib import contracts, estimate, imaging
from chalicelib.errors import BackdropError
from frontend import photos, session
from frontend.api_client import ApiError

UPLOAD_LIMIT_MB = contracts.MAX_UPLOAD_BYTES // 2**20
SAME_AS_ORIGINAL = "same as the original"
MODE_HELP = {
    "PRECISE": "Keeps every pixel of the subject exactly as in your photo; only the background is new.",
    "DEFAULT": "Lets the model blend the subject's edges into the new background (softer, may alter details).",
}


def cost_line(photo_count: int, variants: int, model: dict[str, Any], re_rolls: int = 0) -> str:
    """What a batch will cost, in words: "About $0.97 for 12 photos (up to $1.46 if every image is
    re-rolled)": the model calls, the quality checks, and the re-rolls at most (chalicelib.estimate)."""
    price = float(model["pricePerImageUsd"])
    return estimate.job_estimate(
        photo_count, variants, price, float(model.get("reRollPriceUsd", price)), re_rolls
    ).sentence()


def _checked(files: list[Any]) -> tuple[list[tuple[str, bytes, str]], list[dict[str, str]]]:
    """The files worth sending, and each other one with why (the API judges the rest)."""
    accepted, problems = [], []
    for file in files:
        data = file.getvalue()
        if file.type not in contracts.UPLOAD_CONTENT_TYPES:
            problems.append({"name": file.name, "message": f"{file.type or 'this type'} is not PNG, JPEG or WEBP"})
        elif len(data) > contracts.MAX_UPLOAD_BYTES:
            limit = contracts.MAX_UPLOAD_BYTES / 2**20
            problems.append(
                {"name": file.name, "message": f"{len(data) / 2**20:.1f} MB is over the {limit:.0f} MB limit"}
            )
        elif not data:
            problems.append({"name": file.name, "message": "the file is empty"})
        else:
            try:  # the same header checks the workflow makes, so a bad file is refused before upload
                imaging.probe(data)
            except BackdropError as exc:
                problems.append({"name": file.name, "message": exc.message})
                continue
            accepted.append((file.name, data, file.type))
    return accepted, problems


def _show_upload_problems() -> None:
    """Every file that was not added, all at once, until the next upload."""
    problems = st.session_state.get("upload_problems") or []
    if problems:
        lines = "\n".join(f"- '{p['name']}': {p['message']}" for p in problems)
        st.error(f"{len(problems)} file(s) were not added; the others go on:\n{lines}")
        columns = st.columns(3)
        for index, problem in enumerate(problems):
            with columns[index % 3], st.container(border=True):
                st.markdown(f"**{problem['name']}** · not added")
                st.caption(problem["message"])


def upload_step(api: Any) -> None:
    files = st.file_uploader(
        f"Photos (PNG, JPEG or WEBP, up to {UPLOAD_LIMIT_MB} MB each)",
        type=["png", "jpg", "jpeg", "webp"],
        accept_multiple_files=True,
        key="files",
        help=(
            f"Each photo must be at most {UPLOAD_LIMIT_MB} MB and at least {contracts.MIN_SOURCE_SIDE} px on its "
            f"shortest side. Labels are detected on JPEG and PNG of at least {contracts.REKOGNITION_MIN_SIDE} px; "
            "other photos are still processed, keeping the whole subject."
        ),
    )
    if files and st.button("Upload and detect labels", key="upload", type="primary"):
        accepted, problems = _checked(files)
        st.session_state["upload_problems"] = problems
        if accepted:
            try:
                with st.spinner(f"Uploading {len(accepted)} photo(s)…"):
                    outcome = api.upload_bytes(accepted)
                    problems += outcome.rejected
                    answer = api.label_results(outcome.refs) if outcome.uploaded else {"labels": {}}
            except ApiError as exc:
                session.show_error(exc)
                return
            unavailable = answer.get("unavailable") or {}
            for name in ("kept", "prompts", "previews", "label_page"):  # a new batch starts afresh
                st.session_state.pop(name, None)
            st.session_state["batch"] = [
                {
                    **ref,
                    "data": accepted[position][1],
                    "labels": answer["labels"].get(ref["imageRef"], []),
                    "labelsUnavailable": (unavailable.get(ref["imageRef"]) or {}).get("message"),
                }
                for ref, position in zip(outcome.uploaded, outcome.positions, strict=True)
            ]
    _show_upload_problems()


LABEL_PAGE_SIZE = 24  # cards per page of the label step: 1,000 photos are never drawn at once
LABEL_COLUMNS = 4


def _kept_labels() -> dict[str, list[str]]:
    """Kept labels per image ref: the source of truth, since a widget's own state is dropped
    while its page of cards is not shown."""
    kept: dict[str, list[str]] = st.session_state.setdefault("kept", {})
    return kept


def _prompts() -> dict[str, str]:
    prompts: dict[str, str] = st.session_state.setdefault("prompts", {})
    return prompts


def _remove_everywhere(batch: list[dict[str, Any]]) -> None:
    """Bulk action (a button callback, so the cards are drawn with the new choice)."""
    names = set(st.session_state.get("bulk_remove") or [])
    kept = _kept_labels()
    touched = 0
    for item in batch:
        ref = item["imageRef"]
        before = kept.get(ref, [label["name"] for label in item["labels"]])
        after = [name for name in before if name not in names]
        touched += len(after) != len(before)
        kept[ref] = after
        st.session_state[f"keep-{ref}"] = after
    st.session_state["bulk_remove"] = []
    st.session_state["bulk_done"] = f"Removed {', '.join(sorted(names))} from {touched} photo(s)."


def bulk_actions(batch: list[dict[str, Any]]) -> None:
    counts = Counter(label["name"] for item in batch for label in item["labels"])
    if not counts:
        return
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    chosen = left.multiselect(
        "Remove labels from every photo",
        sorted(counts, key=lambda name: (-counts[name], name)),
        key="bulk_remove",
        format_func=lambda name: f"{name} (in {counts[name]} photo{'s' if counts[name] > 1 else ''})",
    )
    right.button(
        "Remove from all", key="bulk_remove_apply", on_click=_remove_everywhere, args=(batch,), disabled=not chosen
    )
    if st.session_state.get("bulk_done"):
        st.success(st.session_state.pop("bulk_done"))


def _preview(item: dict[str, Any]) -> photos.Preview | None:
    """Decoded once per photo, not on every rerun."""
    previews: dict[str, photos.Preview | None] = st.session_state.setdefault("previews", {})
    if item["imageRef"] not in previews:
        previews[item["imageRef"]] = photos.preview(item["data"])
    return previews[item["imageRef"]]


def _label_card(item: dict[str, Any]) -> None:
    ref = item["imageRef"]
    options = [label["name"] for label in item["labels"]]
    confidence = {label["name"]: label["confidence"] for label in item["labels"]}
    kept, prompts = _kept_labels(), _prompts()
    if f"keep-{ref}" not in st.session_state:
        st.session_state[f"keep-{ref}"] = kept.get(ref, options)
    chosen = st.multiselect(
        item["name"], options, key=f"keep-{ref}", format_func=lambda name, c=confidence: f"{name} ({c[name]:.0f}%)"
    )
    kept[ref] = chosen
    shown = _preview(item)
    if shown is None:
        st.caption("No preview: the photo could not be read here.")
    else:
        st.image(photos.with_boxes(shown, item["labels"], chosen), width="stretch")
    if item.get("labelsUnavailable"):
        st.caption(f"Labels not available: {item['labelsUnavailable']}.")
    elif not options:
        st.caption("No labels detected: the whole subject found by background removal is kept.")
    if f"prompt-{ref}" not in st.session_state:
        st.session_state[f"prompt-{ref}"] = prompts.get(ref, "")
    with st.expander("Own prompt", expanded=bool(prompts.get(ref))):
        prompts[ref] = st.text_input("Prompt for this image only (optional)", key=f"prompt-{ref}")


def image_cards(batch: list[dict[str, Any]]) -> None:
    st.subheader("Keep what matters")
    st.caption("Each chip is a detected label; remove the ones that are not the subject. Green boxes are kept.")
    bulk_actions(batch)
    pages = max(1, -(-len(batch) // LABEL_PAGE_SIZE))
    page = min(int(st.session_state.get("label_page", 1)), pages)
    shown = batch[(page - 1) * LABEL_PAGE_SIZE : page * LABEL_PAGE_SIZE]
    columns = st.columns(LABEL_COLUMNS)
    for index, item in enumerate(shown):
        with columns[index % LABEL_COLUMNS], st.container(border=True):
            try:
                _label_card(item)
            except Exception as exc:  # one card that cannot be drawn must not take the batch with it
                st.error(f"{item['name']}: this card could not be drawn ({type(exc).__name__}: {exc}).")
                st.caption("The photo is still in the batch, with all its labels kept.")
    if pages > 1:
        st.number_input(f"Page of photos (of {pages})", 1, pages, page, key="label_page")


def settings_form(api: Any, batch: list[dict[str, Any]]) -> dict[str, Any] | None:
    try:
        catalogue = api.models()
    except ApiError as exc:
        session.show_error(exc)
        return None
    models = {m["key"]: m for m in catalogue["models"] if m["selectable"]}
    retired = [m for m in catalogue["models"] if not m["selectable"]]
    st.subheader("Describe the new background")
    key = st.selectbox(
        "Model",
        list(models),
        index=list(models).index(catalogue["default"]) if catalogue["default"] in models else 0,
        format_func=lambda k: models[k]["displayName"],
        key="model",
    )
    if retired:
        st.caption(
            "Not available (end of life): "
            + ", ".join(f"{m['displayName']} ({m['lifecycle']['eolDate'] or 'retired'})" for m in retired)
        )
    model = models[key]
    limits = model["limits"]
    if model["lifecycle"]["status"] == "LEGACY":
        st.warning(f"{model['displayName']} is Legacy and reaches end of life on {model['lifecycle']['eolDate']}.")
    prompt = st.text_area("New background", key="prompt", placeholder="a sunlit marble studio with soft shadows")
    st.caption(f"{len(prompt):,} / {limits['promptMax']:,} characters")
    negative = st.text_input("Avoid (negative prompt)", key="negative")
    st.caption(f"{len(negative):,} / {limits['negativePromptMax']:,} characters")
    mode = st.radio("Mode", ["PRECISE", "DEFAULT"], horizontal=True, key="mode")
    st.caption(MODE_HELP[mode])
    left, middle, right = st.columns(3)
    variants = left.number_input("Variants per photo", 1, limits["maxVariants"], 1, key="variants")
    fmt = middle.selectbox(
        "Output format",
        [SAME_AS_ORIGINAL, "png", "jpeg", "webp"],
        key="format",
        help="Same as the original: JPEG photos come back as JPEG (quality 95), anything else as PNG.",
    )
    quality = right.selectbox("Quality", limits["qualities"], key="quality") if limits["qualities"] else None
    email = st.checkbox("Email me when the batch is done", value=True, key="notify")
    estimated = len(batch) * int(variants) * model["pricePerImageUsd"]
    capped = st.checkbox(
        "Cap what this batch may spend",
        key="cap_budget",
        help="Photos whose turn comes after the cap is spent are not sent to the model; they end with BUDGET_REACHED.",
    )
    budget = (
        st.number_input(
            "Budget (US dollars)",
            min_value=0.01,
            value=round(max(estimated, 0.01), 2),
            step=1.0,
            key="budget",
        )
        if capped
        else None
    )
    reviewed = st.checkbox(
        "Review before delivery",
        key="review",
        help="After the photos are done, the job waits for you to approve it (rejecting any result you do not want) "
        "before the report and the email; past your deadline it is delivered as it is.",
    )
    review_hours = (
        st.number_input("Review deadline (hours)", 0.1, float(contracts.MAX_REVIEW_HOURS), 24.0, key="review_hours")
        if reviewed
        else None
    )
    re_rolls = st.number_input(
        "Re-rolls",
        0,
        contracts.MAX_RE_ROLLS,
        contracts.DEFAULT_RE_ROLLS,
        key="re_rolls",
        help="A photo whose quality check fails is made again with a new seed, up to this many times; "
        "the best attempt is kept. 0: never.",
    )
    lock_seed = st.checkbox("Lock the seed (reproducible results)", key="lock_seed")
    seed = st.number_input("Seed", 0, limits["seedMax"], 42, key="seed") if lock_seed else None
    st.markdown(
        cost_line(len(batch), int(variants), model, int(re_rolls)),
        help=(
            f"{model['displayName']}: ${model['pricePerImageUsd']:.3f} per image made, "
            f"{len(batch) * int(variants)} image(s). Price source: {model['priceSource']}. "
            f"Quality checks: Amazon Rekognition, ${contracts.REKOGNITION_USD_PER_IMAGE:.3f} per image analysed. "
            "A re-roll repeats the last model call. "
            "AWS bills the model calls; storage and the other services cost far less."
        ),
    )
    job: dict[str, Any] = {
        "model": key,
        "prompt": prompt,
        "mode": mode,
        "variants": int(variants),
        "reRolls": int(re_rolls),
        "notify": bool(email),
        "images": [],
    }
    if fmt != SAME_AS_ORIGINAL:
        job["outputFormat"] = fmt
    if negative:
        job["negativePrompt"] = negative
    if quality:
        job["quality"] = quality
    if seed is not None:
        job["seed"] = int(seed)
    if budget is not None:
        job["budgetUsd"] = float(budget)
    if review_hours is not None:
        job["reviewHours"] = float(review_hours)
    for item in batch:
        image = {
            "imageRef": item["imageRef"],
            "name": item["name"],
            "labels": _kept_labels().get(item["imageRef"], [label["name"] for label in item["labels"]]),
        }
        override = _prompts().get(item["imageRef"])
        if override:
            image["prompt"] = override
        job["images"].append(image)
    problems = []
    if len(prompt) > limits["promptMax"]:
        problems.append(
            f"The description is {len(prompt):,} characters; {model['displayName']} accepts {limits['promptMax']:,}."
        )
    if limits["promptRequired"] and not prompt.strip():
        problems.append("Describe the new background first.")
    for message in problems:
        st.error(message)
    return None if problems else job


st.title("New batch")
api = session.client()
session.keep_state(*session.BATCH_STATE)  # what was uploaded outlives a page error and a reload
upload_step(api)
session.keep_state(*session.BATCH_STATE)
batch = st.session_state.get("batch") or []
if batch:
    image_cards(batch)
    job = settings_form(api, batch)
    if st.button("Replace backgrounds", key="submit", type="primary", disabled=job is None):
        try:
            submitted = api.submit(job)
        except ApiError as exc:
            session.show_error(exc)
        else:
            st.session_state["job_id"] = submitted["jobId"]
            st.session_state["last_submitted"] = job
            st.success(
                f"Job {submitted['jobId']} started with {submitted['imageCount']} photo(s). Follow it on the Jobs page."
            )
