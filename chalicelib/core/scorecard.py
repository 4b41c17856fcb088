"""The vocabulary of a quality verdict, shared by the server and the front ends: outcomes, checks,
scorecards, thresholds, and how an image's attempts rank and read.

Pure data and arithmetic over the stored JSON (no Pillow, numpy or boto3): the CLI and the web app
read a scorecard or an attempt list with the same rules the workflow used to keep it. The checks
that measure pixels and call Rekognition live in chalicelib/imaging/quality.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"  # the check could not run; the reason says why


_SEVERITY = {Outcome.SKIPPED: 0, Outcome.PASS: 1, Outcome.WARN: 2, Outcome.FAIL: 3}


class CheckName(StrEnum):
    SUBJECT_FIDELITY = "subjectFidelity"
    EDGE_HALO = "edgeHalo"
    SUBJECT_PRESENT = "subjectPresent"
    TEXT_INTEGRITY = "textIntegrity"
    # judged against a reference that did not make the result (`reference_checks`)
    SUBJECT_COVERAGE = "subjectCoverage"  # the kept labels' boxes (Rekognition) vs the delivered alpha
    BACKGROUND_REPLACED = "backgroundReplaced"  # the original's background vs the result's
    SOLID_INTERIOR = "solidInterior"  # the subject's interior is not made see-through
    SUBJECT_DETAIL = "subjectDetail"  # the worst patch of the product vs the original's
    EDGE_RING = "edgeRing"  # the cut-out's rim vs the original's subject and old background colours


# What a re-roll (a new seed for the background model) can change: the background it draws. The
# cut-out and the composition are kept, so their defects come back on every re-roll
# (docs/quality.md#what-a-re-roll-can-fix); the subject's own pixels only where the model re-lights it.
# Rekognition's answers on the result (the kept label seen, the text read) depend on the whole
# image, background included, so a new background can change them.
RE_ROLL_HELPS: frozenset[CheckName] = frozenset(
    {CheckName.BACKGROUND_REPLACED, CheckName.SUBJECT_PRESENT, CheckName.TEXT_INTEGRITY}
)
RE_ROLL_HELPS_RELIT: frozenset[CheckName] = RE_ROLL_HELPS | {CheckName.SUBJECT_FIDELITY, CheckName.SUBJECT_DETAIL}
# what a check that a re-roll cannot help judged: for the card's reason
_KEPT_BY_RE_ROLL = {
    CheckName.SUBJECT_COVERAGE: "the cut-out",
    CheckName.SOLID_INTERIOR: "the cut-out",
    CheckName.EDGE_RING: "the cut-out",
    CheckName.EDGE_HALO: "the cut-out's edges",
    CheckName.SUBJECT_FIDELITY: "the product's pixels (pasted from the original)",
    CheckName.SUBJECT_DETAIL: "the product's pixels (pasted from the original)",
}


@dataclass(frozen=True)
class Thresholds:
    """Where each check turns WARN and FAIL. Per job; the defaults suit catalogue work."""

    subject_psnr_warn_db: float = 40.0  # PSNR below: WARN (40 dB is invisible side by side)
    subject_psnr_fail_db: float = 30.0
    subject_delta_e_warn: float = 1.0  # mean CIEDE2000 above: WARN (1 is about the smallest visible step)
    subject_delta_e_fail: float = 3.0
    halo_warn: float = 2.0  # mean ΔE of the edge toward the old background
    halo_fail: float = 5.0
    label_min_confidence: float = 70.0  # a kept label seen below this confidence: WARN
    box_min_overlap: float = 0.5  # intersection over union of a kept box and the result's: below, WARN

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{_CAMEL[f.name]} must be a non-negative number, not {value!r}")
        pairs = (
            ("subject_psnr_fail_db", "subject_psnr_warn_db"),
            ("subject_delta_e_warn", "subject_delta_e_fail"),
            ("halo_warn", "halo_fail"),
        )
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{_CAMEL[low]} must not be above {_CAMEL[high]}")

    def to_dict(self) -> dict[str, float]:
        """The camelCase form jobs store and the API shows."""
        return {_CAMEL[f.name]: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        """Parse a job's `qualityThresholds` (any subset, camelCase); ValueError names the field."""
        names = {camel: name for name, camel in _CAMEL.items()}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown threshold {unknown[0]!r}; known: {', '.join(sorted(names))}")
        values = {}
        for camel, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise ValueError(f"{camel} must be a number")
            values[names[camel]] = float(value)
        return cls(**values)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_CAMEL = {f.name: _camel(f.name) for f in fields(Thresholds)}
DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Check:
    name: CheckName
    outcome: Outcome
    reason: str
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name.value, "outcome": self.outcome.value, "reason": self.reason, **self.metrics}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        metrics = {k: v for k, v in data.items() if k not in ("check", "outcome", "reason")}
        return cls(CheckName(data["check"]), Outcome(data["outcome"]), str(data["reason"]), metrics)


@dataclass(frozen=True)
class Scorecard:
    checks: tuple[Check, ...] = ()

    @property
    def outcome(self) -> Outcome:
        """The worst outcome of the checks that ran (SKIPPED only if none ran)."""
        return worst(c.outcome for c in self.checks)

    def get(self, name: CheckName) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def with_check(self, check: Check) -> Scorecard:
        """This scorecard with `check` added (replacing an earlier check of the same name)."""
        return replace(self, checks=tuple(c for c in self.checks if c.name != check.name) + (check,))

    def stand_in_notes(self) -> list[str]:
        """The reasons of the checks the local stack's stand-ins could not run (they cannot fail
        there), each once: said wherever the summary is, so a local PASS is never taken for more."""
        return list(dict.fromkeys(c.reason for c in self.checks if c.metrics.get("standIn")))

    def summary(self) -> str:
        """One line: the outcome and the reasons of the checks that are not PASS (and of those
        the local stand-ins could not run)."""
        problems = [c for c in self.checks if c.outcome in (Outcome.WARN, Outcome.FAIL)]
        notes = "".join(f" {note}" for note in self.stand_in_notes())
        if not problems:
            passed = "all checks passed" if not notes else "the checks that ran passed."
            return f"{self.outcome.value}: " + (passed if self.checks else "no checks ran") + notes
        return f"{self.outcome.value}: " + " ".join(f"{c.reason}" for c in problems) + notes

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scorecard:
        return cls(tuple(Check.from_dict(c) for c in data.get("checks", ())))


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=_SEVERITY.__getitem__, default=Outcome.SKIPPED)


# ------------------------------------------------------------------------------------ attempts
# An image may be made more than once (automatic re-rolls, chalicelib/workflow/steps.py). Each attempt
# is a dict {"attempt", "seed", "outcome", "score", "costUsd", "outputs": [{"quality": ...}]} or,
# when its model call failed, {"attempt", "seed", "errorCode", "cause"} (never kept).

# for choosing the best attempt: nothing measured ranks below a WARN, above a FAIL
_RANK = {Outcome.PASS: 0, Outcome.WARN: 1, Outcome.SKIPPED: 2, Outcome.FAIL: 3}


def attempt_outcome(cards: Sequence[Scorecard]) -> Outcome:
    """One attempt's verdict: the worst over its variants (SKIPPED only if nothing was measured)."""
    return worst(card.outcome for card in cards)


def attempt_score(cards: Sequence[Scorecard]) -> float:
    """One attempt's colour error, lower is better: the product's mean colour shift (ΔE) plus the
    edge halo (ΔE), summed over its variants; 0 is an untouched product with clean edges."""
    total = 0.0
    for card in cards:
        for name, metric in ((CheckName.SUBJECT_FIDELITY, "deltaE"), (CheckName.EDGE_HALO, "haloDeltaE")):
            check = card.get(name)
            value = check.metrics.get(metric) if check else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                total += float(value)
    return round(total, 2)


def _cards(attempt: Mapping[str, Any]) -> list[Scorecard]:
    return [Scorecard.from_dict(o["quality"]) for o in attempt.get("outputs") or [] if o.get("quality")]


def attempt_rank(attempt: Mapping[str, Any]) -> tuple[int, int, int, float, int]:
    """The order attempts are kept in, best first: best verdict (PASS, WARN, nothing measured,
    FAIL), then fewest failing checks, then fewest warnings, then the lowest colour error
    (`attempt_score`), then the earliest."""
    cards = _cards(attempt)
    checks = [c for card in cards for c in card.checks]
    return (
        _RANK[attempt_outcome(cards)],
        sum(c.outcome is Outcome.FAIL for c in checks),
        sum(c.outcome is Outcome.WARN for c in checks),
        attempt_score(cards),
        int(attempt["attempt"]),
    )


def best_attempt(attempts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The attempt to keep (`attempt_rank`); None when none produced a result."""
    made = [a for a in attempts if a.get("outputs")]
    return min(made, key=attempt_rank) if made else None


def attempts_summary(attempts: Sequence[Mapping[str, Any]]) -> str:
    """An image made more than once, in one line (the CLI, the web app): "Re-rolled: attempt 1
    FAIL (seed 42), attempt 2 PASS (seed 104771); kept attempt 2; $0.12 in all". "" for one
    attempt, and for variants made once each with no failure (each variant says its own)."""
    variants = {int(a.get("variant") or 1) for a in attempts}
    failed = any(a.get("errorCode") for a in attempts)
    if len(attempts) < 2 or (len(attempts) == len(variants) and not failed):
        return ""

    def named(a: Mapping[str, Any]) -> str:
        return f"attempt {a.get('attempt')}" + (f" (variant {a.get('variant')})" if len(variants) > 1 else "")

    each = ", ".join(f"{named(a)} {a.get('outcome') or a.get('errorCode')} (seed {a.get('seed')})" for a in attempts)
    kept = [str(a.get("attempt")) for a in attempts if a.get("kept")]
    cost = sum(float(a.get("costUsd") or 0) for a in attempts)
    what = "Re-rolled" if len(variants) == 1 else "Attempts"
    return f"{what}: {each}; kept attempt{'s' if len(kept) > 1 else ''} {', '.join(kept)}; ${cost:.2f} in all"


def re_roll_decision(
    attempt: Mapping[str, Any], on: Outcome = Outcome.FAIL, *, relit: bool = False
) -> tuple[bool, str]:
    """Would a new seed be worth paying for, and why (the card's reason; "" when nothing is at
    `on` or worse)? A re-roll redraws the background and keeps the cut-out and the composition, so
    it is paid for only when EVERY check at `on` or worse is one a new background can change
    (`RE_ROLL_HELPS`; the product's own pixels too when the model re-lights it, `relit`). A defect
    of the cut-out, of the composition or of the input comes back on every re-roll: it goes to
    review instead, and the reason names it."""
    floor = _SEVERITY[on]
    flagged = [
        c
        for card in _cards(attempt)
        for c in card.checks
        if _SEVERITY[c.outcome] >= floor and c.outcome is not Outcome.SKIPPED
    ]
    if not flagged:
        return False, ""
    helps = RE_ROLL_HELPS_RELIT if relit else RE_ROLL_HELPS
    kept = [c for c in flagged if c.metrics.get("badInput") or c.name not in helps]
    if not kept:
        return True, f"Re-rolled: a new background can change this ({flagged[0].reason.rstrip('.')})."
    check = kept[0]
    what = "the photo itself" if check.metrics.get("badInput") else _KEPT_BY_RE_ROLL.get(check.name, "the cut-out")
    return False, (
        f"Not re-rolled, sent to review: {check.reason.rstrip('.')}. A re-roll redraws only the background "
        f"and keeps {what}, so it cannot fix this."
    )


def needs_re_roll(attempt: Mapping[str, Any], on: Outcome = Outcome.FAIL, *, relit: bool = False) -> bool:
    """Would a new seed be worth paying for? (`re_roll_decision`)"""
    return re_roll_decision(attempt, on, relit=relit)[0]
