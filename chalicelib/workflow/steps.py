"""The per-image workflow steps the state machine calls (prepare, build-mask, finalize, failure).

Each step receives the child execution's state: {"jobId", "owner", "bucket", "settings",
"image": <manifest item>, ...}; it reads and writes S3 and the jobs table only under keys derived
from the job and image ids (chalicelib.core.contracts), so re-running a step writes the same keys and
the same status. Image bytes never travel through state payloads: only S3 URIs do.

Failures raise `StepError` subclasses; the state machine's Catch hands them to `record_failure`,
which turns the error name back into the stable code (chalicelib.core.errors).
"""

from __future__ import annotations

from chalicelib.workflow.step_finalize import FinalizeStep
from chalicelib.workflow.step_parts import (
    CANVAS,
    GEOMETRY,
    KEEP_MASK_GROW_PX,
    ORIGINAL_TEXT,
    SUBJECT_ALPHA,
    StepInput,
    log,
    re_roll_seed,
)
from chalicelib.workflow.step_prepare import PrepareSteps


class Steps(PrepareSteps, FinalizeStep):
    """The step logic, given its S3 client and the job store: one class per part of the
    workflow (chalicelib/workflow/step_*.py), composed here so the Lambdas see one object."""


# the steps' parts, importable from here as before the split
__all__ = [
    "Steps",
    "CANVAS",
    "GEOMETRY",
    "KEEP_MASK_GROW_PX",
    "ORIGINAL_TEXT",
    "SUBJECT_ALPHA",
    "StepInput",
    "log",
    "re_roll_seed",
]
