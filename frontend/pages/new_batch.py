"""Upload photos, keep the labels that matter, describe the new background, submit."""

from __future__ import annotations

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


def image_cards(batch: list[dict[str, Any]]) -> None:
    st.subheader("Keep what matters")
    st.caption("Each chip is a detected label; remove the ones that are not the subject. Green boxes are kept.")
    columns = st.columns(3)
    for index, item in enumerate(batch):
        ref = item["imageRef"]
        options = [label["name"] for label in item["labels"]]
        confidence = {label["name"]: label["confidence"] for label in item["labels"]}
        with columns[index % 3], st.container(border=True):
            kept = st.multiselect(
                item["name"],
                options,
                default=options,
                key=f"keep-{ref}",
                format_func=lambda name, c=confidence: f"{name} ({c[name]:.0f}%)",
            )
            thumbnail = photos.thumbnail(item["data"], item["labels"], kept)
            if thumbnail is None:
                st.caption("No preview: the photo could not be read here.")
            else:
                st.image(thumbnail, width="stretch")
            if item.get("labelsUnavailable"):
                st.caption(f"Labels not available: {item['labelsUnavailable']}.")
            elif not options:
                st.caption("No labels detected: the whole subject found by background removal is kept.")
            st.text_input("Prompt for this image only (optional)", key=f"prompt-{ref}")


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
    for item in batch:
        image = {
            "imageRef": item["imageRef"],
            "name": item["name"],
            "labels": st.session_state.get(f"keep-{item['imageRef']}", []),
        }
        override = st.session_state.get(f"prompt-{item['imageRef']}")
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
upload_step(api)
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
