"""The web app's words for people: a job's state, its cost, an image's cause, which verdict
matters. Plain functions of the API's views (tested in tests/unit/test_web_words.py), so the
pages say one thing one way and never show an API field name, an exception name or an error code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core import backgrounds, contracts
from chalicelib.core.contracts import ErrorCode, ImageStatus, JobStatus

FINISHED_IMAGES = {status.value for status in contracts.TERMINAL_IMAGE_STATUSES}

# An image's error code, as a person reads it: what happened, in a few words.
CAUSE_TITLES: dict[str, str] = {
    ErrorCode.IMAGE_INVALID: "Not a photo Backdrop can read",
    ErrorCode.IMAGE_TOO_SMALL: "Photo too small",
    ErrorCode.IMAGE_TOO_LARGE: "Photo too large",
    ErrorCode.NO_SUBJECT: "No subject found",
    ErrorCode.PRESET_UNMET: "Cannot meet the marketplace's rules",
    ErrorCode.CONTENT_FILTERED: "Blocked by the model's safety filter",
    ErrorCode.MODEL_REJECTED_REQUEST: "The model refused this request",
    ErrorCode.MODEL_ACCESS_DENIED: "This account cannot use the model",
    ErrorCode.MODEL_THROTTLED: "The model was too busy",
    ErrorCode.MODEL_TIMEOUT: "The model did not answer in time",
    ErrorCode.MODEL_ERROR: "The model failed",
    ErrorCode.MODEL_RESPONSE_INVALID: "The model answered without a usable picture",
    ErrorCode.STORAGE_ERROR: "Storage failed",
    ErrorCode.WORKFLOW_STOPPED: "Stopped before it was done",
    ErrorCode.BUDGET_REACHED: "Not sent: the budget was spent",
    ErrorCode.INTERNAL_ERROR: "Something went wrong in Backdrop",
    ErrorCode.SERVICE_BUSY: "A service was too busy",
}

# API field names that causes may quote, said as the web app's own controls
FIELD_WORDS: dict[str, str] = {
    "placement.allowUpscale true": 'the box "Allow enlarging a small subject" ticked (under Canvas and placement)',
    "placement.allowUpscale": '"Allow enlarging a small subject" (under Canvas and placement)',
    "allowUpscale enlarges it": 'ticking "Allow enlarging a small subject" enlarges it',
    "allowUpscale": '"Allow enlarging a small subject"',
    "budgetUsd": '"Budget"',
    "reRolls": '"Re-rolls"',
    "outputFormat": '"Output format"',
    "reviewHours": '"Review deadline"',
    "negativePrompt": '"Avoid"',
    "placement.fill": '"Subject fill"',
    "placement.margin": '"Margin"',
}
_FIELD_RE = re.compile("|".join(re.escape(k) for k in sorted(FIELD_WORDS, key=len, reverse=True)))
# "preset amazon-main: ...": the preset's key, said by its name
_PRESET_RE = re.compile(r"\bpreset ([a-z0-9-]+)\b")


def cause_words(cause: str | None, preset_names: Mapping[str, str] | None = None) -> str:
    """A cause as the web app says it: API field names replaced by the controls that set them."""
    text = _FIELD_RE.sub(lambda m: FIELD_WORDS[m.group(0)], cause or "")
    names = preset_names or {}
    return _PRESET_RE.sub(lambda m: f"the {names.get(m.group(1), m.group(1))} preset", text)


def cause_title(code: str | None) -> str:
    return CAUSE_TITLES.get(code or "", "Failed")


def status_words(view: Mapping[str, Any]) -> str:
    """The job's state in words: "Waiting for your review" rather than RUNNING."""
    status = str(view.get("status") or "")
    if (view.get("review") or {}).get("status") == contracts.ReviewStatus.WAITING.value:
        return "Waiting for your review"
    if status == JobStatus.CANCELLED.value and view.get("closing"):
        return "Cancelled · closing (the unfinished photos are being stopped)"
    return {
        JobStatus.SUBMITTED.value: "Starting",
        JobStatus.RUNNING.value: "Running",
        JobStatus.COMPLETED.value: "Done",
        JobStatus.PARTIAL.value: "Done, some photos failed",
        JobStatus.FAILED.value: "Failed",
        JobStatus.CANCELLED.value: "Cancelled",
        JobStatus.DELETING.value: "Being deleted",
    }.get(status, status.title())


@dataclass(frozen=True)
class Progress:
    fraction: float
    text: str


def progress(view: Mapping[str, Any]) -> Progress:
    """The bar and its words. A cancelled job's bar is the photos it made before the cancel, never
    "200/200 finished"; a failed job's bar is what succeeded, so neither reads as a full, good run."""
    counts = view.get("counts") or {}
    total = max(1, int(view.get("imageCount") or 0) or sum(int(n) for n in counts.values()))
    succeeded = int(counts.get(ImageStatus.SUCCEEDED.value, 0))
    failed = int(counts.get(ImageStatus.FAILED.value, 0))
    cancelled = int(counts.get(ImageStatus.CANCELLED.value, 0))
    finished = sum(int(counts.get(s, 0)) for s in FINISHED_IMAGES)
    left = total - finished
    status = str(view.get("status") or "")
    parts = [f"{succeeded:,} of {total:,} done"]
    if failed:
        parts.append(f"{failed:,} failed")
    if status == JobStatus.CANCELLED.value:
        if cancelled:
            parts.append(f"{cancelled:,} cancelled before they were made")
        if left:
            parts.append(f"{left:,} being stopped")
        return Progress((succeeded + failed) / total, " · ".join(parts))
    if status in (JobStatus.FAILED.value, JobStatus.PARTIAL.value):
        return Progress(succeeded / total, " · ".join(parts))
    if left and status not in {s.value for s in contracts.TERMINAL_JOB_STATUSES}:
        parts.append(f"{left:,} to go")
    return Progress(finished / total, " · ".join(parts))


def cost_sentence(cost: Mapping[str, Any], finished: bool) -> str | None:
    """One sentence that cannot read as a contradiction: what was spent, against the estimate and
    the budget, each said once with what it is. "Spent so far: about $0.12 (3 model calls) of an
    estimated $0.66 · budget $5.00"; finished: "Cost: about $0.77 (19 model calls); estimated
    $0.66 before the run (re-rolls and retries add calls)"."""
    if "actualUsd" not in cost:
        return None
    calls = int(cost.get("modelCalls") or 0)
    spent = float(cost["actualUsd"])
    calls_words = f"{calls} model call" + ("" if calls == 1 else "s")
    estimate = cost.get("estimateUsd")
    if finished and not calls and not spent:
        words = "Nothing was spent: no model call was made"
        if estimate is not None:
            words += f" (estimated ${float(estimate):.2f} before the run)"
    elif finished:
        words = f"Cost: about ${spent:.2f} ({calls_words})"
        if estimate is not None:
            words += f"; estimated ${float(estimate):.2f} before the run"
            if spent > float(estimate) + 0.005:
                words += " (re-rolls and retries add calls)"
    else:
        words = f"Spent so far: about ${spent:.2f} ({calls_words})"
        if estimate is not None:
            words += f" of an estimated ${float(estimate):.2f} for the whole batch"
    if cost.get("budgetUsd") is not None:
        words += f" · budget ${float(cost['budgetUsd']):.2f}"
    if cost.get("regenerations"):  # billed to the regenerations' own jobs, said apart
        count = int(cost["regenerations"])
        words += f" · regenerations: ${float(cost.get('regeneratedUsd') or 0):.2f} for {count}"
    return words


def verdict_note(output: Mapping[str, Any], preset_name: str | None) -> str | None:
    """When a marketplace preset and the quality checks disagree, which one decides: the preset's
    rules are what the marketplace will enforce; the quality checks are Backdrop's look at the edges
    and the subject (they decide re-rolls and "Doubtful first")."""
    compliance = output.get("compliance")
    quality = (output.get("quality") or {}).get("outcome")
    if not compliance or not quality:
        return None
    preset_ok = not any(c.get("outcome") == "FAIL" for c in compliance.get("checks") or [])
    quality_ok = quality == contracts.Verdict.PASS.value
    name = preset_name or str(compliance.get("preset"))
    if preset_ok and not quality_ok:
        return (
            f"Meets the {name} rules, so the marketplace will accept it; the quality check only flags how it "
            "looks (edges, subject): look at it before you use it."
        )
    if quality_ok and not preset_ok:
        return f"Looks right, but does not meet the {name} rules: the marketplace may refuse it. The rules decide."
    return None


def can_regenerate(image: Mapping[str, Any], settings: Mapping[str, Any] | None) -> bool:
    """Regenerate makes the background again from a description: a colour, your own photo, a
    transparent cut-out or the batch's one scene would come out the same, and the API refuses it."""
    if image.get("status") != ImageStatus.SUCCEEDED.value or not image.get("outputs"):
        return False
    job_background = (settings or {}).get("background")
    try:
        return backgrounds.effective(image.get("background"), job_background).needs_inpaint
    except (ValueError, KeyError, TypeError):
        return False


def is_transparent(image: Mapping[str, Any], settings: Mapping[str, Any] | None) -> bool:
    job_background = (settings or {}).get("background")
    try:
        background = backgrounds.effective(image.get("background"), job_background)
    except (ValueError, KeyError, TypeError):
        return False
    return background.source is contracts.BackgroundSource.TRANSPARENT


def eta_words(view: Mapping[str, Any]) -> str | None:
    eta = view.get("eta") or {}
    if not eta or not eta.get("remaining"):
        return None
    return str(eta.get("words") or "")
