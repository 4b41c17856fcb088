"""Upload photos, keep the labels that matter, describe the new background, submit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from chalicelib.core import contracts, estimate, eta
from chalicelib.core.backgrounds import ANCHORS
from chalicelib.core.contracts import BackgroundSource
from chalicelib.core.errors import BackdropError
from chalicelib.imaging import images as imaging
from frontend import checks, photos, session, upload_queue
from frontend.api_client import ApiError
from frontend.safe_text import md

UPLOAD_LIMIT_MB = contracts.MAX_UPLOAD_BYTES // 2**20
# what the picker offers: every type the API takes (contracts.UPLOAD_CONTENT_TYPES), HEIC included
PHOTO_TYPES = sorted({"jpeg", *contracts.UPLOAD_CONTENT_TYPES.values()})
# a browser that does not know a type (HEIC, often) sends none: the extension names it
TYPES_BY_EXTENSION = {f".{ext}": kind for kind, ext in contracts.UPLOAD_CONTENT_TYPES.items()} | {".jpeg": "image/jpeg"}
SAME_AS_ORIGINAL = "same as the original"
MODE_HELP = {
    "PRECISE": "Keeps every pixel of the subject exactly as in your photo; only the background is new.",
    "DEFAULT": "Lets the model blend the subject's edges into the new background (softer, may alter details).",
}


def batch_estimate(
    photo_count: int,
    variants: int,
    model: dict[str, Any],
    re_rolls: int = 0,
    *,
    source: str = BackgroundSource.PROMPT.value,
    scene_price_usd: float | None = None,
) -> estimate.Estimate:
    """What POST /jobs will answer as the batch's estimate (chalicelib.core.estimate), from GET /models."""
    price = float(model["pricePerImageUsd"])
    composed = source != BackgroundSource.PROMPT.value
    return estimate.job_estimate(
        photo_count,
        variants,
        price,
        float(model.get("reRollPriceUsd", price)),
        re_rolls,
        steps_per_prompt_image=_steps(model),
        compose_images=photo_count if composed else 0,
        compose_price_usd=float(model.get("composePricePerImageUsd", price)),
        scene_price_usd=scene_price_usd if source == BackgroundSource.SCENE.value else None,
        # a model that returns one image per call makes each further variant with one more call
        variant_calls=variants if _variants_per_call(model) == 1 else 1,
    )


def _variants_per_call(model: dict[str, Any]) -> int:
    return int((model.get("limits") or {}).get("variantsPerCall", 1))


def _steps(model: dict[str, Any]) -> int:
    return len(model.get("modelIds") or {}) or 1


def _budget_call_usd(found: estimate.Estimate, model: dict[str, Any]) -> float:
    """What the API's cap counts one model call at (chalicelib/estimate.budget_call_usd)."""
    price = float(model["pricePerImageUsd"])
    return estimate.budget_call_usd(
        found.variants if _variants_per_call(model) > 1 else 1,  # images one call makes
        price,
        _steps(model),
        float(model.get("composePricePerImageUsd", price)),
        float(model.get("reRollPriceUsd", price)),
    )


def budget_to_send_every_photo(found: estimate.Estimate, model: dict[str, Any]) -> float:
    """The budget that sends every photo of the batch once, as the API's cap counts calls."""
    return found.budget_to_send_every_photo(_budget_call_usd(found, model))


def _photo_sizes(batch: list[dict[str, Any]]) -> list[checks.PhotoSize]:
    """Each photo's size and kept subject (read from its header once per kept-label choice)."""
    sizes: dict[tuple[str, tuple[str, ...]], checks.PhotoSize | None] = st.session_state.setdefault("photo_sizes", {})
    kept_labels = _kept_labels()
    out = []
    for item in batch:
        kept = tuple(kept_labels.get(item["imageRef"], [label["name"] for label in item["labels"]]))
        key = (item["imageRef"], kept)
        if key not in sizes:
            sizes[key] = checks.photo_size(item["name"], item["data"], item["labels"], kept)
        if sizes[key] is not None:
            out.append(sizes[key])
    return [size for size in out if size is not None]


def _preset_check(batch: list[dict[str, Any]], job: dict[str, Any], names: dict[str, str]) -> list[str]:
    """The preset's rules, and the photos whose product is too small to meet them (PRESET_UNMET
    after their model call, paid, unless enlarging is allowed)."""
    key = job.get("preset")
    if not key:
        return []
    name = names.get(key, key)
    rules = "\n".join(f"- {md(rule)}" for rule in checks.rules_words(key))
    st.info(f"**{md(name)}**: {md(checks.applied_words(key))} Its rules:\n{rules}", icon=":material/storefront:")
    placement = job.get("placement") or {}
    short = checks.preset_shortfalls(
        key, placement, _photo_sizes(batch), allow_upscale=bool(placement.get("allowUpscale"))
    )
    if not short:
        return []
    listed = ", ".join(f"{md(s.name)} (×{s.enlarge:.1f})" for s in short[:12]) + (" …" if len(short) > 12 else "")
    fix = (
        'Tick "Allow enlarging a small subject" (under Canvas and placement) to accept an enlarged product, '
        "or upload larger originals of these photos."
    )
    certain = [s for s in short if s.certain]
    said = (
        f"{len(short):,} of {len(batch):,} photo(s) are too small for {md(name)}: their product would have to be "
        f"enlarged to fill the frame as its rules ask, so they would fail after their model call, which is paid: "
        f"{listed}. {fix}"
    )
    if certain:  # the whole photo is smaller than the product must be: it cannot pass
        return [said]
    st.warning(said + " (Judged from the detected labels' boxes.)")
    return []


def _budget_check(
    found: estimate.Estimate, model: dict[str, Any], budget: float | None, scene_usd: float | None
) -> list[str]:
    """How many photos a budget below the estimate sends, before anything is spent."""
    if budget is None or not found.images:
        return []
    calls = int(found.model_calls.get("perImagePrompt", 0)) + int(found.model_calls.get("perImageCompose", 0))
    per_photo = calls / found.images * _budget_call_usd(found, model)
    sends = checks.photos_a_budget_sends(budget, per_photo, scene_usd or 0.0, found.images)
    every = budget_to_send_every_photo(found, model)
    if sends == 0:
        return [f"A ${budget:.2f} budget does not pay for one photo (${per_photo:.3f} each at most)."]
    if sends < found.images:
        st.warning(
            f"This ${budget:.2f} budget sends {sends:,} of the {found.images:,} photos; the other "
            f"{found.images - sends:,} are not sent to the model (nothing is charged for them) and can be sent "
            f"again from the job's page with one click. ${every:.2f} sends every photo once.",
            icon=":material/savings:",
        )
    elif found.re_rolls and found.prompt_images and budget < found.max_usd:
        st.caption(f"Re-rolls stop when the budget is spent (up to ${found.max_usd:.2f} with every re-roll).")
    return []


def cost_line(
    photo_count: int,
    variants: int,
    model: dict[str, Any],
    re_rolls: int = 0,
    *,
    source: str = BackgroundSource.PROMPT.value,
    scene_price_usd: float | None = None,
) -> str:
    """What a batch will cost, in words: "About $0.97 for 12 photos (up to $1.46 if every image is
    re-rolled)": the model calls, the quality checks, and the re-rolls at most (chalicelib.core.estimate).
    A colour / photo / transparent / scene background: one call a photo (and the batch's scene),
    said as ", 13 model calls"."""
    found = batch_estimate(photo_count, variants, model, re_rolls, source=source, scene_price_usd=scene_price_usd)
    if source == BackgroundSource.PROMPT.value:
        return found.sentence()
    calls = found.model_calls["total"]
    return f"{found.sentence()}, {calls} model call" + ("" if calls == 1 else "s")


BACKGROUND_LABELS = {
    BackgroundSource.PROMPT.value: "Describe it (generated per photo)",
    BackgroundSource.COLOR.value: "Plain colour",
    BackgroundSource.IMAGE.value: "My own background photo",
    BackgroundSource.TRANSPARENT.value: "Transparent (cut-out)",
    BackgroundSource.SCENE.value: "One generated scene for the whole batch",
}
NO_PRESET = "none"


def background_form(api: Any, catalogue: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The background, placement and preset part of the job (chalicelib.core.backgrounds), and problems."""
    st.subheader("Background")
    offered = list(BACKGROUND_LABELS)
    scene_models = [m for m in catalogue.get("models", []) if m.get("role") == "scene"]
    if scene_models and not any(m.get("selectable") for m in scene_models):
        # the API would refuse it (e.g. the scene model runs in another Region): not offered
        offered.remove(BackgroundSource.SCENE.value)
        why = [str(m.get("unavailableHere") or f"{m['displayName']} has reached end of life") for m in scene_models]
        st.caption("No generated scene in this deployment: " + "; ".join(why))
    source = st.radio(
        "What goes behind the subject",
        offered,
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
                    problems.append(f"The background photo was not uploaded: {md(outcome.rejected[0]['message'])}")
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


def _preset_format(job: dict[str, Any]) -> str | None:
    from chalicelib.core import preset_rules as presets

    return presets.defaults(job["preset"]).get("outputFormat") if job.get("preset") else None


def _checked(files: list[Any]) -> tuple[list[tuple[str, bytes, str]], list[dict[str, str]]]:
    """The files worth sending, and each other one with why (the API judges the rest)."""
    accepted, problems = [], []
    for file in files:
        data = file.getvalue()
        kind = _typed(file)
        if kind not in contracts.UPLOAD_CONTENT_TYPES:
            problems.append({"name": file.name, "message": f"{kind or 'this type'} is not {imaging.ACCEPTED_WORDS}"})
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
            accepted.append((file.name, data, kind))
    return accepted, problems


def _show_upload_problems() -> None:
    """Every file that was not added, all at once, until the next upload."""
    problems = st.session_state.get("upload_problems") or []
    if problems:
        lines = "\n".join(f"- '{md(p['name'])}': {md(p['message'])}" for p in problems)
        st.error(f"{len(problems)} file(s) were not added; the others go on:\n{lines}")
        columns = st.columns(3)
        for index, problem in enumerate(problems):
            with columns[index % 3], st.container(border=True):
                st.markdown(f"**{md(problem['name'])}** · not added")
                st.caption(md(problem["message"]))


def _progress_drawer() -> Callable[[upload_queue.Queue], None]:
    """A bar with the count, and each file's state, redrawn as files finish."""
    bar = st.progress(0.0, text="Uploading…")
    table = st.empty()

    def show(queue: upload_queue.Queue) -> None:
        total = max(1, len(queue.entries))
        bar.progress(queue.finished / total, text=queue.words())
        table.dataframe(queue.rows(), hide_index=True, width="stretch", height=min(400, 38 + 35 * total))

    return show


def _upload(api: Any, queue: upload_queue.Queue, *, fresh: bool) -> None:
    """Send the queue's waiting and failed files, then detect the labels of those now uploaded and
    add them to the batch (`fresh`: a new batch; else the batch grows by the files sent again)."""
    upload_queue.run(api, queue, _progress_drawer())
    batch: list[dict[str, Any]] = [] if fresh else list(st.session_state.get("batch") or [])
    known = {item["imageRef"] for item in batch}
    new = [e for e in queue.entries if e.state == upload_queue.UPLOADED and e.image_ref not in known]
    try:
        answer = api.label_results([e.image_ref for e in new]) if new else {"labels": {}}
    except ApiError as exc:
        session.show_error(exc)
        return
    unavailable = answer.get("unavailable") or {}
    if fresh:
        for name in ("kept", "prompts", "previews", "label_page"):  # a new batch starts afresh
            st.session_state.pop(name, None)
    for entry in new:
        ref = str(entry.image_ref)
        batch.append(
            {
                "imageRef": ref,
                "name": entry.name,
                "data": entry.data,
                "labels": answer["labels"].get(ref, []),
                "labelsUnavailable": (unavailable.get(ref) or {}).get("message"),
            }
        )
    order = {e.image_ref: e.position for e in queue.entries}
    batch.sort(key=lambda item: order.get(item["imageRef"], len(order)))  # the order the files were chosen in
    st.session_state["batch"] = batch
    checked = [p for p in st.session_state.get("upload_problems") or [] if p.get("checked")]
    refused = [{"name": e.name, "message": e.message} for e in queue.entries if e.state == upload_queue.REFUSED]
    st.session_state["upload_problems"] = checked + refused


def _typed(file: Any) -> str:
    """The file's content type: the browser's, else its extension's (HEIC often comes without one)."""
    if file.type in contracts.UPLOAD_CONTENT_TYPES:
        return str(file.type)
    return TYPES_BY_EXTENSION.get(Path(file.name).suffix.lower(), str(file.type or ""))


def _clear_batch() -> None:
    """A new batch from nothing: the photos, their labels, prompts and upload states, and the
    picker's files (a new picker: Streamlit's cannot be emptied otherwise)."""
    session.forget_state(*session.BATCH_STATE, "previews", "label_page", "photo_sizes")
    st.session_state["picker_round"] = int(st.session_state.get("picker_round") or 0) + 1


def upload_step(api: Any) -> None:
    picker_round = int(st.session_state.get("picker_round") or 0)
    files = st.file_uploader(
        f"Photos ({imaging.ACCEPTED_WORDS}, up to {UPLOAD_LIMIT_MB} MB each)",
        type=PHOTO_TYPES,
        accept_multiple_files=True,
        key="files" if not picker_round else f"files-{picker_round}",
        help=(
            f"Each photo must be at most {UPLOAD_LIMIT_MB} MB and at least {contracts.MIN_SOURCE_SIDE} px on its "
            f"shortest side. Labels are detected on JPEG and PNG of at least {contracts.REKOGNITION_MIN_SIDE} px; "
            "other photos are still processed, keeping the whole subject."
        ),
    )
    upload_col, clear_col = st.columns([3, 1])
    clear_slot = clear_col.empty()  # filled once this run knows whether there is a batch
    if files and upload_col.button("Upload and detect labels", key="upload", type="primary"):
        accepted, problems = _checked(files)
        st.session_state["upload_problems"] = [{**p, "checked": True} for p in problems]
        queue = upload_queue.Queue(
            [upload_queue.Entry(name, data, kind, position) for position, (name, data, kind) in enumerate(accepted)]
        )
        st.session_state["upload_queue"] = queue
        if accepted:
            _upload(api, queue, fresh=True)
    if st.session_state.get("batch") or st.session_state.get("upload_queue"):
        clear_slot.button("Clear this batch", key="clear_batch", on_click=_clear_batch, icon=":material/delete_sweep:")
    queue = st.session_state.get("upload_queue")
    if queue is not None and queue.entries:
        failed = queue.count(upload_queue.FAILED)
        if not st.session_state.get("upload"):  # just uploaded: the bar above says it
            st.caption(queue.words())
        if failed and st.button(f"Upload the {failed:,} failed one(s) again", key="upload_again"):
            _upload(api, queue, fresh=False)
            st.rerun()
        if not st.session_state.get("upload"):  # just uploaded: the table above shows them
            with st.expander("Each file"):
                st.dataframe(queue.rows(), hide_index=True, width="stretch")
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
    st.session_state["bulk_done"] = f"Removed {', '.join(md(n) for n in sorted(names))} from {touched} photo(s)."


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
        md(item["name"]), options, key=f"keep-{ref}", format_func=lambda name, c=confidence: f"{name} ({c[name]:.0f}%)"
    )
    kept[ref] = chosen
    shown = _preview(item)
    if shown is None:
        st.caption("No preview: the photo could not be read here.")
    else:
        st.image(photos.with_boxes(shown, item["labels"], chosen), width="stretch")
    if item.get("labelsUnavailable"):
        st.caption(f"Labels not available: {md(item['labelsUnavailable'])}.")
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
                st.error(f"{md(item['name'])}: this card could not be drawn ({type(exc).__name__}: {md(exc)}).")
                st.caption("The photo is still in the batch, with all its labels kept.")
    if pages > 1:
        st.number_input(f"Page of photos (of {pages})", 1, pages, page, key="label_page")


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
    # a model not offered in this Region is not retired: the Background step says why it is missing
    retired = [m for m in catalogue["models"] if not m["selectable"] and not m.get("unavailableHere")]
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
    mode = "PRECISE"
    if source == BackgroundSource.PROMPT.value:  # a composed background puts the cut-out back as it is
        mode = st.radio("Mode", ["PRECISE", "DEFAULT"], horizontal=True, key="mode")
        st.caption(MODE_HELP[mode])
    left, middle, right = st.columns(3)
    # a prompt background: up to the model's limit (one call each on a one-image-per-call model);
    # a composed background makes the same picture every time, so one
    most_variants = int(limits["maxVariants"]) if source == BackgroundSource.PROMPT.value else 1
    if int(st.session_state.get("variants") or 1) > most_variants:
        st.session_state["variants"] = most_variants
    variants = left.number_input(
        "Variants per photo",
        1,
        most_variants,
        1,
        key="variants",
        help=(
            "Several results of each photo to choose from; the best is delivered unless you pick another. "
            + (
                "Each further variant is one more model call (the inpaint again)."
                if int(limits.get("variantsPerCall", 1)) == 1
                else "The model makes them in one call."
            )
            if most_variants > 1
            else "A colour, photo, transparent or scene background gives the same picture every time: one variant."
        ),
    )
    fmt = middle.selectbox(
        "Output format",
        [SAME_AS_ORIGINAL, "png", "jpeg", "webp"],
        key="format",
        help="Same as the original: JPEG photos come back as JPEG (quality 95), anything else as PNG.",
    )
    quality = right.selectbox("Quality", limits["qualities"], key="quality") if limits["qualities"] else None
    email = st.checkbox("Email me when the batch is done", value=True, key="notify")
    scene_price = scene_models[0]["pricePerImageUsd"] if scene_models else None
    every_photo = budget_to_send_every_photo(
        batch_estimate(len(batch), int(variants), model, source=source, scene_price_usd=scene_price), model
    )
    capped = st.checkbox(
        "Cap what this batch may spend",
        key="cap_budget",
        help="Photos whose turn comes after the cap is spent are not sent to the model; they end with BUDGET_REACHED. "
        f"${every_photo:.2f} sends every photo once (the cap counts each call at the most it and its quality "
        "checks can cost); re-rolls need more.",
    )
    budget = (
        st.number_input(
            "Budget (US dollars)",
            min_value=0.01,
            value=max(every_photo, 0.01),
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
    re_rolls = (
        st.number_input(
            "Re-rolls",
            0,
            contracts.MAX_RE_ROLLS,
            contracts.DEFAULT_RE_ROLLS,
            key="re_rolls",
            help="A photo whose quality check fails is made again with a new seed, up to this many times; "
            "the best attempt is kept. 0: never.",
        )
        if source == BackgroundSource.PROMPT.value
        else 0  # a composed background gives the same picture every time: never re-rolled
    )
    lock_seed = st.checkbox("Lock the seed (reproducible results)", key="lock_seed")
    seed = st.number_input("Seed", 0, limits["seedMax"], 42, key="seed") if lock_seed else None
    st.markdown(
        cost_line(len(batch), int(variants), model, int(re_rolls), source=source, scene_price_usd=scene_price),
        help=(
            f"{model['displayName']}: ${model['pricePerImageUsd']:.3f} per image made with a described background "
            f"(remove-background and inpaint), ${model.get('composePricePerImageUsd', 0):.3f} with a colour, photo, "
            f"transparent or scene background (remove-background only, never re-rolled; a scene adds one call per "
            f"batch). Price source: {model['priceSource']}. "
            f"Quality checks: Amazon Rekognition, ${contracts.REKOGNITION_USD_PER_IMAGE:.3f} per image analysed. "
            "A re-roll repeats the last model call. "
            "AWS bills the model calls; storage and the other services cost far less."
        ),
    )
    batch_name = st.text_input(
        "Batch name (optional)",
        key="batch_name",
        max_chars=contracts.MAX_JOB_NAME_CHARS,
        placeholder="Spring shoes, white background",
        help="Shown on the Jobs list and the job's page, instead of the job's id.",
    )
    job: dict[str, Any] = {
        **background,
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
    if batch_name.strip():
        job["name"] = batch_name.strip()
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
    names = {p["key"]: p["displayName"] for p in catalogue.get("presets") or []}
    found = batch_estimate(len(batch), int(variants), model, int(re_rolls), source=source, scene_price_usd=scene_price)
    problems = _preset_check(batch, job, names)
    problems += _budget_check(found, model, budget, scene_price if source == BackgroundSource.SCENE.value else None)
    fmt_problem = checks.format_problem(source, job.get("outputFormat") or _preset_format(job), job.get("preset"))
    if fmt_problem:
        problems.append(fmt_problem)
    calls = int(found.model_calls.get("perImagePrompt", 0)) + int(found.model_calls.get("perImageCompose", 0))
    planned = eta.job_eta(
        len(batch), calls / max(1, len(batch)), int(catalogue.get("imagesInFlight") or 0) or eta.DEFAULT_MAP_CONCURRENCY
    )
    st.caption(
        f"Ready in {'less than a minute' if planned.seconds < 60 else 'about ' + eta.duration_words(planned.seconds)} "
        "at this deployment's pace "
        f"({planned.images_per_minute:.0f} photos a minute); the job's page refines it as it runs."
    )
    if len(prompt) > limits["promptMax"]:
        problems.append(
            f"The description is {len(prompt):,} characters; {model['displayName']} accepts {limits['promptMax']:,}."
        )
    waiting = []  # what is still to be filled in: said plainly, not as an error, before anything was typed
    if limits["promptRequired"] and source == BackgroundSource.PROMPT.value and not prompt.strip():
        waiting.append("Describe the new background first.")
    problems += background_problems
    for message in problems:
        st.error(message)
    for message in waiting:
        st.info(message, icon=":material/edit:")
    return None if problems or waiting else job


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
            name = f"“{md(job['name'])}” " if job.get("name") else ""
            ready = (submitted.get("eta") or {}).get("seconds")
            when = f" Ready in about {eta.duration_words(float(ready))}." if ready else ""
            st.success(
                f"Job {name}{submitted['jobId']} started with {submitted['imageCount']} photo(s).{when} "
                "Follow it on the Jobs page."
            )
