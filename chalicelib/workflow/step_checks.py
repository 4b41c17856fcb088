"""The Rekognition checks Finalize adds to an attempt's scorecard (subject kept, text still
reads), with the calls they make counted."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core import contracts
from chalicelib.core.errors import (
    StorageError,
    client_error_code,
    is_not_found,
)
from chalicelib.imaging import images as imaging
from chalicelib.imaging import quality
from chalicelib.store import s3keys

if TYPE_CHECKING:
    from PIL import Image

    from chalicelib.imaging.quality import Check, Scorecard, Thresholds

from chalicelib.workflow.step_base import StepsBase
from chalicelib.workflow.step_parts import ORIGINAL_TEXT, StepInput


class _CountingRekognition:
    """The Rekognition client, counting the images it is asked to analyse (each is billed)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def detect_labels(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self.client.detect_labels(**kwargs)

    def detect_text(self, **kwargs: Any) -> Any:
        self.calls += 1
        return self.client.detect_text(**kwargs)


class _RekognitionChecks:
    """One attempt's Rekognition checks: is the kept subject still there and in place
    (DetectLabels on each result against the kept labels and their boxes, stored at labelling),
    and does its printed text read the same (DetectText on each result against the original's,
    read once per image and kept in the job's scratch space, so re-rolls do not pay for it)."""

    def __init__(
        self, steps: StepsBase, step: StepInput, original: Image.Image, orientation: int, thresholds: Thresholds
    ) -> None:
        self.steps = steps
        self.step = step
        self.original = original
        self.thresholds = thresholds
        self.client = _CountingRekognition(steps.rekognition) if steps.rekognition is not None else None
        # boxes are stored on the stored pixel grid; results are in the oriented frame
        self.kept_boxes = [imaging.orient_box(box, orientation) for box in step.image.boxes]
        self._original_lines: list[dict[str, Any]] | Check | None = None

    @property
    def calls(self) -> int:
        return self.client.calls if self.client is not None else 0

    def add_to(
        self,
        card: Scorecard,
        result: Image.Image,
        alpha: Image.Image | None,
        *,
        original: Image.Image | None = None,
        background: Image.Image | None = None,
        subject_kept: bool = False,
    ) -> Scorecard:
        """The Rekognition checks, then (given the cut-out's alpha and the original in the result's
        frame) the checks against independent references (`quality.reference_checks`).

        `subject_kept`: the composition put the original subject's pixels back bit for bit
        (PRECISE at blend 1, a placed or cut-out subject); its text is then unchanged, and a lossy
        delivered file whose fidelity PASSes (a quality-95 JPEG) does not make it worth a
        DetectText call: the fidelity card measures the file, the text cannot have moved."""
        from chalicelib.imaging import quality

        if self.client is None:
            reason = "Not run: this step was given no Rekognition client."
            card = self._with_references(card, result, alpha, original, background, stand_in=False)
            return card.with_check(
                quality.Check(quality.CheckName.SUBJECT_PRESENT, quality.Outcome.SKIPPED, reason)
            ).with_check(quality.Check(quality.CheckName.TEXT_INTEGRITY, quality.Outcome.SKIPPED, reason))
        image = quality.rekognition_image(result)
        present = quality.check_subject_present(
            self.client, image, self.step.image.labels, self.kept_boxes, thresholds=self.thresholds
        )
        stand_in = bool(present.metrics.get("standIn"))
        fidelity = card.get(quality.CheckName.SUBJECT_FIDELITY)
        identical = bool(fidelity and fidelity.metrics.get("identical") is True)
        if identical or (subject_kept and fidelity is not None and fidelity.outcome is quality.Outcome.PASS):
            text = quality.check_text_integrity(self.client, None, image, subject_identical=True)
        else:
            lines = self.original_lines()
            if isinstance(lines, quality.Check):
                text = lines
            else:
                region = self._subject_region(result, alpha)
                text = quality.check_text_integrity(
                    self.client, None, image, subject_alpha=region, original_lines=lines
                )
        card = self._with_references(card, result, alpha, original, background, stand_in=stand_in)
        return card.with_check(present).with_check(text)

    def _with_references(
        self,
        card: Scorecard,
        result: Image.Image,
        alpha: Image.Image | None,
        original: Image.Image | None,
        background: Image.Image | None,
        *,
        stand_in: bool,
    ) -> Scorecard:
        from chalicelib.imaging import quality

        if alpha is None or original is None:  # no cut-out (a one-call model): nothing to hold it against
            return card
        # the local stand-in's label boxes are the local cut-out engine's own: not a reference
        boxes_from = quality.LOCAL_BOXES if stand_in else None
        for check in quality.reference_checks(
            original, result, alpha, kept_boxes=self.kept_boxes, background=background, boxes_from=boxes_from
        ):
            card = card.with_check(check)
        return card

    def _subject_region(self, result: Image.Image, alpha: Image.Image | None) -> Image.Image | None:
        """Where the subject is, for telling its text from the old background's: the cut-out's
        alpha, or (a model without a cut-out) the kept labels' boxes; None: the whole frame."""
        if alpha is not None or not self.kept_boxes:
            return alpha
        from PIL import Image, ImageDraw

        region = Image.new("L", result.size, 0)
        draw = ImageDraw.Draw(region)
        w, h = result.size
        for left, top, width, height in self.kept_boxes:
            draw.rectangle((left * w, top * h, (left + width) * w, (top + height) * h), fill=255)
        return region

    def original_lines(self) -> list[dict[str, Any]] | Check:
        """The original's printed lines: from the scratch space, or one DetectText call (kept
        there when it answered); a SKIPPED check when Rekognition cannot read it or did not answer."""

        if self._original_lines is not None:
            return self._original_lines
        key = contracts.work_key(self.step.job_id, self.step.image.image_id, ORIGINAL_TEXT)
        try:
            # listed first: missing on a first attempt, and a GET of a missing key is a 403 on
            # AWS without ListBucket (chalicelib/store/s3keys.py; the LIST_SCRATCH grant)
            if s3keys.exists(self.steps.s3, self.step.bucket, key):
                cached = self.steps.s3.get_object(Bucket=self.step.bucket, Key=key)["Body"].read()
                self._original_lines = list(json.loads(cached)["lines"])
                return self._original_lines
        except ClientError as exc:
            if not is_not_found(exc):  # deleted between the LIST and the GET: ask again
                raise StorageError(f"could not read s3://{self.step.bucket}/{key}: {client_error_code(exc)}") from exc
        image = quality.rekognition_image(self.original)
        name = quality.CheckName.TEXT_INTEGRITY
        if isinstance(image, str):
            self._original_lines = quality.Check(
                name, quality.Outcome.SKIPPED, image.replace("the image", "the original")
            )
            return self._original_lines
        assert self.client is not None
        try:
            lines = quality.detect_text_lines(self.client, image)
        except (ClientError, BotoCoreError) as exc:
            # not kept: a later attempt asks again
            self._original_lines = quality.not_run(name, "the original", exc)
            return self._original_lines
        except quality.StandInAnswer as exc:  # the local stack: no OCR, so nothing to compare
            self._original_lines = quality.Check(name, quality.Outcome.SKIPPED, str(exc), {"standIn": True})
            return self._original_lines
        self.steps._put_json(self.step.bucket, key, {"lines": lines})
        self._original_lines = lines
        return lines
