"""Variants: several results of one photo to choose from, and the one that is delivered.

An image's `outputs` are its variants (each with `variant`, `seed`, its own scorecard and, made by
one call, `costUsd`). Exactly one output of a SUCCEEDED image made by this version is `delivered`:
by default the best by the scorecards (`quality.attempt_rank`, the rule re-rolls keep attempts
by), `pickedBy: BEST`; the owner may pick another (`pickedBy: OWNER`, POST
/jobs/{jobId}/images/{imageId}/pick). The archive, the report and the gallery deliver that one.
An image recorded before variants had no `delivered` mark: every output of it is delivered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus, PickedBy, ReportRefresh
from chalicelib.core.errors import Conflict, NotFound, StorageError, ValidationError
from chalicelib.core.outputs import delivered_output as delivered_output
from chalicelib.core.outputs import delivered_outputs as delivered_outputs
from chalicelib.core.outputs import verdict_of as verdict_of
from chalicelib.core.scorecard import attempt_rank, best_attempt
from chalicelib.delivery import rewrites
from chalicelib.delivery.archive import ArchiveService
from chalicelib.delivery.report import Reporter
from chalicelib.store.background import BackgroundStart
from chalicelib.store.jobs import JobStore

PICK_FIELD = "variant"


def of_variant(attempts: Sequence[Mapping[str, Any]], variant: int) -> list[Mapping[str, Any]]:
    """The attempts made for one variant (an attempt without a `variant` is variant 1)."""
    return [a for a in attempts if int(a.get("variant") or 1) == variant]


def kept_attempts(attempts: Sequence[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """Each variant's best attempt (quality.best_attempt), by variant; a variant whose every call
    failed has none."""
    kept: dict[int, Mapping[str, Any]] = {}
    for variant in sorted({int(a.get("variant") or 1) for a in attempts}):
        best = best_attempt(of_variant(attempts, variant))
        if best is not None:
            kept[variant] = best
    return kept


def output_rank(output: Mapping[str, Any]) -> tuple[Any, ...]:
    """The order variants are delivered in, best first: `quality.attempt_rank` of the output
    alone (verdict, failing checks, warnings, colour error), then the lowest variant."""
    rank = attempt_rank({"attempt": 0, "outputs": [output]}) if output.get("quality") else (9,)
    return (*rank[:-1], int(output.get("variant") or 0))


def best_variant(outputs: Sequence[Mapping[str, Any]]) -> int | None:
    made = [o for o in outputs if o.get("quality") is not None or o.get("key")]
    return int(min(made, key=output_rank)["variant"]) if made else None


def mark_delivered(
    outputs: Sequence[Mapping[str, Any]], variant: int | None = None, picked_by: PickedBy = PickedBy.BEST
) -> list[dict[str, Any]]:
    """The outputs with `delivered` set on `variant` alone (None: the best), `pickedBy` on it."""
    chosen = best_variant(outputs) if variant is None else variant
    marked = []
    for output in outputs:
        entry = {k: v for k, v in output.items() if k != "pickedBy"}
        entry["delivered"] = int(output.get("variant") or 0) == chosen
        if entry["delivered"]:
            entry["pickedBy"] = picked_by.value
        marked.append(entry)
    return marked


def parse_pick(body: Any, outputs: Sequence[Mapping[str, Any]]) -> int:
    """POST .../pick `{"variant": k}`: one of the image's variants; ValidationError otherwise."""
    have = sorted(int(o.get("variant") or 0) for o in outputs)
    value = body.get(PICK_FIELD) if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value not in have:
        listed = ", ".join(str(v) for v in have) or "none"
        message = f"variant must be one of this image's variants: {listed}"
        raise ValidationError(message, details=[{"field": PICK_FIELD, "message": message}])
    return value


class VariantService:
    """The owner's choices among an image's variants, given the job store, the S3 client and
    the bucket."""

    def __init__(self, store: JobStore, s3: Any, bucket: str, start_rewrite: BackgroundStart | None = None) -> None:
        self.store = store
        self.s3 = s3
        self.bucket = bucket
        self.start_rewrite = (
            start_rewrite  # a large job's report rewrite, without waiting (chalicelib/delivery/rewrites.py)
        )

    def _image(self, owner: str, job_id: str, image_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The job and the image, its owner's; another owner's looks like one that does not exist."""
        job = self.store.get_job(job_id) if contracts.is_job_id(job_id) else None
        if not job or job.get("owner") != owner:
            raise NotFound(f"no job {job_id}")
        image = self.store.get_image(job_id, image_id) if contracts.IMAGE_ID_RE.match(image_id) else None
        if image is None:
            raise NotFound(f"job {job_id} has no image {image_id[:40]}")
        return job, image

    def pick(self, owner: str, job_id: str, image_id: str, body: Any) -> dict[str, Any]:
        """POST /jobs/{jobId}/images/{imageId}/pick `{"variant": k}`: deliver variant k of a
        SUCCEEDED image. The image's verdict becomes k's; a report already written is written
        again and an archive already built is dropped, so both deliver k."""
        from chalicelib.catalogue import schemas  # pydantic: imported by the routes that write only

        job, image = self._image(owner, job_id, image_id)
        if image.get("status") != ImageStatus.SUCCEEDED.value:
            raise Conflict(
                f"image {image_id} of job {job_id} is {image.get('status')}: only a finished result has variants to pick"
            )
        outputs = list(image.get("outputs") or [])
        # the body's shape (schemas.PickRequest) and the image's own variants, before anything is written
        variant = schemas.refuse_with(
            schemas.PickRequest, body, "the pick is not valid", lambda typed: parse_pick(typed, outputs)
        )
        picked = mark_delivered(outputs, variant, PickedBy.OWNER)
        if not self.store.set_outputs(job_id, image_id, picked, image):
            raise Conflict(f"image {image_id} changed while the pick was recorded; look at it again and pick again")
        report, error = self._refresh_deliverables(owner, job)
        answer = {
            "jobId": job_id,
            "imageId": image_id,
            "delivered": variant,
            "pickedBy": PickedBy.OWNER.value,
            "outputs": picked,
            "report": report.value,
        }
        if error:
            answer["reportError"] = error
        return answer

    def add_regenerated(
        self,
        owner: str,
        parent: Mapping[str, str],
        made: Mapping[str, Any],
        source_job: str,
        prompt: str | None,
        cost_usd: float | None = None,
    ) -> int | None:
        """A regeneration's result (`made`, an output of job `source_job`) becomes the next
        variant of the image it regenerates: copied to that image's result key, recorded with
        `source: REGENERATED`, its job, seed and prompt, not delivered until the owner picks it.
        What it cost (`cost_usd`, billed to `source_job`) is added to the parent job's
        regenerations total and count, apart from its own cost, in the same write as the variant:
        regenerations finishing at once each add their own variant, and the job's regenerations
        count and total always match the REGENERATED variants. Answers its variant; None when that
        image is gone (its job deleted). Repeated, it finds the variant (and its cost) already added."""
        job_id, image_id = str(parent["jobId"]), str(parent["imageId"])
        for _ in range(3 + contracts.MAX_REGENERATIONS):  # a pick or other regenerations may land between
            job = self.store.get_job(job_id)
            image = self.store.get_image(job_id, image_id) if job and job.get("owner") == owner else None
            if job is None or image is None or image.get("status") != ImageStatus.SUCCEEDED.value:
                return None
            outputs = list(image.get("outputs") or [])
            done = next((o for o in outputs if o.get("jobId") == source_job), None)
            if done is not None:  # a repeat: its copy, cost and report, if the earlier run stopped before them
                self._copy_result(job_id, str(made["key"]), str(done["key"]))
                self._add_regeneration_cost(job_id, image_id, source_job, cost_usd)
                self._refresh_report(owner, job)
                return int(done["variant"])
            if not any("delivered" in o for o in outputs):  # recorded before variants: the best is delivered
                outputs = mark_delivered(outputs)
            variant = max((int(o.get("variant") or 0) for o in outputs), default=0) + 1
            suffix = PurePosixPath(str(made["key"])).suffix.lstrip(".")
            fmt = next(f for f, ext in contracts.FORMAT_EXTENSIONS.items() if ext == suffix)
            key = contracts.result_key(owner, job_id, image_id, variant, fmt)
            added = {k: v for k, v in made.items() if k not in ("pickedBy", "delivered")}
            added.update(
                key=key,
                variant=variant,
                delivered=False,
                source=contracts.VariantSource.REGENERATED.value,
                jobId=source_job,
                **({"prompt": prompt} if prompt else {}),
            )
            # the variant, its charge, the count and the cost in one write, guarded by the outputs
            # as read: of two regenerations that read the same outputs one writes, the other reads
            # again and takes the next variant. The copy comes after: a variant number is copied to
            # only by the regeneration that won it (copied first, the loser would overwrite the
            # winner's picture under the same key); a failed copy is made again by the repeat.
            charge = (self._charge(source_job), float(cost_usd or 0.0))
            if self.store.set_outputs(job_id, image_id, [*outputs, added], image, regeneration=charge):
                self._copy_result(job_id, str(made["key"]), key)
                self._refresh_report(owner, job)
                return variant
        raise StorageError(f"image {image_id} of job {job_id} kept changing: the regenerated result was not added")

    def _copy_result(self, job_id: str, source: str, key: str) -> None:
        try:
            self.s3.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source})
        except ClientError as exc:
            raise StorageError(f"could not add the regenerated result to job {job_id}: {exc}") from exc

    @staticmethod
    def _charge(source_job: str) -> str:
        return f"regenerated-{source_job}"

    def _add_regeneration_cost(self, job_id: str, image_id: str, source_job: str, cost_usd: float | None) -> None:
        """Once per regeneration (its job's id is the charge): the parent's regenerations total."""
        if cost_usd is not None:
            # added with the variant (store.set_outputs); this finds it there, unless the variant
            # was recorded before the two were one write
            self.store.add_cost(job_id, image_id, self._charge(source_job), cost_usd, regeneration=True)

    def _refresh_deliverables(self, owner: str, job: Mapping[str, Any]) -> tuple[ReportRefresh, str | None]:
        """After the owner changed what an image delivers: archives dropped, and the report."""
        ArchiveService(self.s3, self.bucket, self.store).forget(owner, str(job["jobId"]))
        return self._refresh_report(owner, job)

    def _refresh_report(self, owner: str, job: Mapping[str, Any]) -> tuple[ReportRefresh, str | None]:
        """The report written again if it was (REWRITTEN; above rewrites.SYNC_REWRITE_LIMIT images
        in the background: REWRITING, or REWRITE_PENDING with the reason its start failed), else
        it says so when it is written (AT_NEXT_BUILD)."""
        job_id = str(job["jobId"])
        if not job.get("reportKeys") or job.get("status") not in {s.value for s in contracts.TERMINAL_JOB_STATUSES}:
            return ReportRefresh.AT_NEXT_BUILD, None
        if int(job.get("imageCount") or 0) > rewrites.SYNC_REWRITE_LIMIT:
            return rewrites.hand_off(self.store, self.start_rewrite, job_id, owner, self.bucket)
        Reporter(self.s3, self.store).rewrite(job_id, owner, self.bucket)
        return ReportRefresh.REWRITTEN, None
