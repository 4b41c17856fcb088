"""Upload photos, keep the labels that matter, describe the new background, submit."""

from __future__ import annotations

from typing import Any

import streamlit as st

from chalicelib import backgrounds, contracts, imaging
from chalicelib.backgrounds import ANCHORS
from chalicelib.contracts import BackgroundSource
from chalicelib.errors import BackdropError
from frontend import photos, session
from frontend.api_client import ApiError

UPLOAD_LIMIT_MB = contracts.MAX_UPLOAD_BYTES // 2**20
SAME_AS_ORIGINAL = "same as the original"
MODE_HELP = {
    "PRECISE": "Keeps every pixel of the subject exactly as in your photo; only the background is new.",
    "DEFAULT": "Lets the model blend the subject's edges into the new background (softer, may alter details).",
}


BACKGROUND_LABELS = {
    BackgroundSource.PROMPT.value: "Describe it (generated per photo)",
    BackgroundSource.COLOR.value: "Plain colour",
    BackgroundSource.IMAGE.value: "My own background photo",
    BackgroundSource.TRANSPARENT.value: "Transparent (cut-out)",
    BackgroundSource.SCENE.value: "One generated scene for the whole batch",
}
NO_PRESET = "none"


def cost_line(photo_count: int, variants: int, price_per_image_usd: float, calls: int | None = None) -> str:
    """What a batch will cost, in words: "About $0.96 for 12 photos"."""
    photos_said = f"{photo_count} photo" + ("" if photo_count == 1 else "s")
    each = f" ({variants} variants each)" if variants > 1 else ""
    line = f"About ${photo_count * variants * price_per_image_usd:.2f} for {photos_said}{each}"
    return line if calls is None else f"{line}, {calls} model call" + ("" if calls == 1 else "s")


def background_form(api: Any, catalogue: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The background, placement and preset part of the job (chalicelib.backgrounds), and problems."""
    st.subheader("Background")
    source = st.radio(
        "What goes behind the subject",
        list(BACKGROUND_LABELS),
        format_func=BACKGROUND_LABELS.get,
        key="background_source",
    )
    job: dict[str, Any] = {}
    problems: list[str] = []
    if source == BackgroundSource.COLOR.value:
        color = st.color_picker("Colour", "#FFFFFF", key="background_color")
        job["background"] = {"source": source, "color": color}
    elif source == BackgroundSource.IMAGE.value:
        photo = st.file_uploader("Background photo", type=["png", "jpg", "jpeg", "webp"], key="background_photo")
        if photo is not None and st.session_state.get("background_photo_name") != photo.name:
            try:
                outcome = api.upload_bytes([(photo.name, photo.getvalue(), photo.type)])
            except ApiError as exc:
                session.show_error(exc)
            else:
                if outcome.uploaded:
                    st.session_state["background_photo_ref"] = outcome.uploaded[0]["imageRef"]
                    st.session_state["background_photo_name"] = photo.name
                else:
                    problems.append(f"The background photo was not uploaded: {outcome.rejected[0]['message']}")
        ref = st.session_state.get("background_photo_ref")
        if ref:
            job["background"] = {"source": source, "imageRef": ref}
        else:
            problems.append("Upload the background photo first.")
    elif source == BackgroundSource.SCENE.value:
        scene = st.text_area(
            "The batch's scene", key="scene_prompt", placeholder="a pale oak table against a plaster wall, soft light"
        )
        job["background"] = {"source": source, "prompt": scene}
        if not scene.strip():
            problems.append("Describe the scene every photo will share.")
    elif source == BackgroundSource.TRANSPARENT.value:
        job["background"] = {"source": source}
    if source != BackgroundSource.PROMPT.value:
        keys = [NO_PRESET, *(p["key"] for p in catalogue.get("presets") or [])]
        names = {p["key"]: p["displayName"] for p in catalogue.get("presets") or []}
        preset = st.selectbox("Marketplace preset", keys, format_func=lambda k: names.get(k, "none"), key="preset")
        if preset != NO_PRESET:
            job["preset"] = preset
            if source == BackgroundSource.COLOR.value:
                job.pop("background")  # the preset's own background colour
        with st.expander("Canvas and placement"):
            left, middle, right = st.columns(3)
            width = left.number_input("Width (px, 0 = as the original)", 0, contracts.MAX_OUTPUT_SIDE, 0, key="width")
            height = middle.number_input("Height (px)", 0, contracts.MAX_OUTPUT_SIDE, 0, key="height")
            fill = right.number_input("Subject fill (% of the frame, 0 = as framed)", 0, 100, 0, key="fill")
            anchor = left.selectbox("Anchor", list(ANCHORS), key="anchor")
            margin = middle.number_input("Margin (% each side)", 0.0, 45.0, 0.0, key="margin")
            upscale = right.checkbox("Allow enlarging a small subject", key="allow_upscale")
            placement: dict[str, Any] = {}
            if width and height:
                placement.update(width=int(width), height=int(height))
            if fill:
                placement["fill"] = int(fill)
            if anchor != "center":
                placement["anchor"] = anchor
            if margin:
                placement["margin"] = float(margin)
            if upscale:
                placement["allowUpscale"] = True
            if placement:
                job["placement"] = placement
    return job, problems


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
    try:
        catalogue["presets"] = api.presets()["presets"]
    except (ApiError, AttributeError):  # an older API without presets: none offered
        catalogue["presets"] = []
    scene_models = [m for m in catalogue["models"] if m.get("role") == "scene" and m["selectable"]]
    models = {m["key"]: m for m in catalogue["models"] if m["selectable"] and m.get("role", "job") == "job"}
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
    background, background_problems = background_form(api, catalogue)
    source = (background.get("background") or {}).get("source", BackgroundSource.PROMPT.value)
    if "preset" in background and "background" not in background:
        source = BackgroundSource.COLOR.value
    prompt = negative = ""
    if source == BackgroundSource.PROMPT.value:
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
    lock_seed = st.checkbox("Lock the seed (reproducible results)", key="lock_seed")
    seed = st.number_input("Seed", 0, limits["seedMax"], 42, key="seed") if lock_seed else None
    sources = [BackgroundSource(source)] * len(batch)
    scene_price = scene_models[0]["pricePerImageUsd"] if scene_models else 0.0
    estimate = backgrounds.estimate(
        sources,
        steps_per_prompt_image=len(model["modelIds"]),
        price_per_prompt_image_usd=model["pricePerImageUsd"],
        price_per_compose_image_usd=model.get("composePricePerImageUsd", model["pricePerImageUsd"]),
        scene_price_usd=scene_price,
        variants=int(variants),
    )
    per_image = model["pricePerImageUsd"] if source == BackgroundSource.PROMPT.value else estimate["usd"] / len(batch)
    calls = None if source == BackgroundSource.PROMPT.value else estimate["modelCalls"]["total"]
    st.markdown(
        cost_line(len(batch), int(variants) if calls is None else 1, per_image, calls),
        help=(
            f"{model['displayName']}: ${model['pricePerImageUsd']:.3f} per image made with a described background "
            f"(remove-background and inpaint), ${model.get('composePricePerImageUsd', 0):.3f} with a colour, photo, "
            f"transparent or scene background (remove-background only; a scene adds one call per batch). "
            f"Price source: {model['priceSource']}. "
            "AWS bills the model calls; storage and the other services cost far less."
        ),
    )
    job: dict[str, Any] = {
        **background,
        "model": key,
        "prompt": prompt,
        "mode": mode,
        "variants": int(variants),
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
    if limits["promptRequired"] and source == BackgroundSource.PROMPT.value and not prompt.strip():
        problems.append("Describe the new background first.")
    problems += background_problems
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
