"""The workflow steps' parts outside the Steps class: the step's input, re-roll seeds and the
names of a step's scratch files."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.core import contracts
from chalicelib.core.contracts import ErrorCode
from chalicelib.core.errors import (
    StorageError,
)
from chalicelib.delivery import variants
from chalicelib.imaging import images as imaging
from chalicelib.imaging import quality
from chalicelib.imaging.fidelity import JpegDelivery
from chalicelib.models.base import (
    Box,
    ImageTask,
    JobSettings,
    settings_from_dict,
)

if TYPE_CHECKING:
    from PIL import Image

    from chalicelib.imaging.quality import Scorecard

KEEP_MASK_GROW_PX = 4  # the model keeps a thin band around the subject and blends from there
# an image's working files in the job's scratch space (contracts.work_key)
CANVAS = "canvas.png"
GEOMETRY = "geometry.json"
SUBJECT_ALPHA = "subject-alpha.png"
ORIGINAL_TEXT = "original-text.json"  # the original's printed text, read once for every attempt
log = logging.getLogger("chalicelib.workflow.steps")  # the name it has always logged under


def _deliver(
    result: Image.Image,
    fmt: contracts.OutputFormat,
    source: imaging.SourceFormat,
    text: dict[str, str] | None,
    score: Callable[[Image.Image, JpegDelivery | None], Scorecard],
    *,
    decoded: bool = False,
) -> tuple[bytes, Image.Image | None, Scorecard]:
    """Encode a result and score the file as delivered (decoded, colour-managed): the card's
    fidelity is the downloaded file's, not the pixels before a lossy encoding (issue 27, point 3).
    The encoder's settings are imaging.encode's (JPEG: quality 95, 4:4:4). The delivered pixels
    come back only where they are at hand or asked for (`decoded`): a JPEG's are measured through
    the same encoder on a sample of the product's blocks (chalicelib/imaging/fidelity.py), which
    is bit for bit the file's and spares decoding it whole."""
    body = imaging.encode(result, fmt.value, text=text, icc_profile=source.icc_profile)
    if fmt is contracts.OutputFormat.PNG:
        # lossless and tagged sRGB (or untagged): decoding it gives back `result` exactly
        return body, result, score(result, None)
    if fmt is contracts.OutputFormat.JPEG and not decoded:
        return body, None, score(result, JpegDelivery(source.icc_profile))
    delivered = imaging.decode_delivered(body)  # WebP: lossy across blocks, decoded whole
    return body, delivered, score(delivered, None)


def re_roll_seed(job_seed: int, attempt: int, seed_max: int) -> int:
    """The seed of attempt `attempt` (2, 3, ...): the job's seed moved on by a fixed step per
    attempt, within the model's range, so a job's re-rolls can be made again."""
    return contracts.derived_seed(job_seed, attempt, seed_max)


class _AttemptFailed(Exception):
    """A re-roll's model call failed (the state machine caught it): its code and cause."""

    def __init__(self, code: ErrorCode, cause: str) -> None:
        super().__init__(cause)
        self.code = code
        self.cause = cause


def _no_kms() -> Any:
    raise StorageError("a KMS signing key is configured but Finalize was given no KMS client")


def _weakest_variant(attempts: Sequence[Mapping[str, Any]]) -> int:
    """The variant whose best result ranks last (quality.attempt_rank): where a re-roll goes."""
    ranks = {v: quality.attempt_rank(best)[:-1] for v, best in variants.kept_attempts(attempts).items()}
    return max(ranks, key=lambda v: (ranks[v], v))


def _box(values: Any) -> Box:
    """(left, top, width, height) from the manifest; anything but four numbers is refused."""
    left, top, width, height = (float(v) for v in values)
    return (left, top, width, height)


@dataclass(frozen=True)
class StepInput:
    job_id: str
    owner: str
    bucket: str
    settings: JobSettings
    image: ImageTask
    # a regeneration's job: the image ({"jobId", "imageId"}) its result becomes a variant of
    regenerates: Mapping[str, str] | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> StepInput:
        item = event["image"]
        job_id = str(event["jobId"])
        if not contracts.is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        image = ImageTask(
            image_id=str(item["imageId"]),
            key=str(item["key"]),
            name=str(item.get("name") or item["imageId"]),
            labels=tuple(item.get("labels") or ()),
            boxes=tuple(_box(values) for values in item.get("boxes") or ()),
            prompt=item.get("prompt") or None,
            background=item.get("background") or None,
        )
        if not contracts.IMAGE_ID_RE.match(image.image_id):
            raise ValueError(f"not an image id: {image.image_id!r}")
        regenerates = event["settings"].get(contracts.REGENERATES_SETTING)
        return cls(
            job_id,
            str(event["owner"]),
            str(event["bucket"]),
            settings_from_dict(event["settings"]),
            image,
            dict(regenerates) if regenerates else None,
        )


def _relit(settings: Any) -> bool:
    """Does the model redraw the product's own pixels (outside PRECISE, or blended at < 1)?"""
    return bool(settings.mode != contracts.Mode.PRECISE.value or float(settings.blend) < 1.0)


def _say_re_roll(outputs: Sequence[dict[str, Any]], settings: Any, *, composed: bool = False) -> None:
    """Put on each output's card whether a re-roll can help its failing checks, and why
    (quality.re_roll_decision); a card with nothing failing gets nothing."""
    from chalicelib.imaging import quality

    for output in outputs:
        card = {"attempt": 1, "outputs": [output]}
        helps, reason = quality.re_roll_decision(card, quality.Outcome(settings.re_roll_on), relit=_relit(settings))
        if not reason:
            continue
        if composed:
            helps = False
            reason = reason.replace("Re-rolled: a new background can change this", "Not re-rolled, sent to review")
            reason += " A composed background is never re-rolled: it is not drawn by a model."
        output["quality"]["reRoll"] = {"helps": helps, "review": not helps, "reason": reason}
