"""What every workflow step shares: its clients, S3 reads and writes of the step's scratch, the
model-call records and reservations, the job's geometry and model spec."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.catalogue import costs
from chalicelib.core import contracts
from chalicelib.core.errors import (
    BudgetReached,
    NoSubject,
    StorageBusy,
    StorageError,
    client_error_code,
    is_transient_storage_error,
)
from chalicelib.imaging import images as imaging
from chalicelib.models import registry
from chalicelib.models.base import (
    Geometry,
    ModelCall,
    ModelSpec,
)
from chalicelib.store import s3keys
from chalicelib.store.background import BackgroundStart
from chalicelib.store.jobs import JobStore

if TYPE_CHECKING:
    pass

from chalicelib.workflow.step_parts import CANVAS, GEOMETRY, ORIGINAL_TEXT, SUBJECT_ALPHA, StepInput, log


class StepsBase:
    """Clients, scratch storage and model-call bookkeeping shared by the steps."""

    def __init__(
        self,
        s3: Any,
        store: JobStore,
        rekognition: Any = None,
        start_report_rewrite: BackgroundStart | None = None,
        kms: Callable[[], Any] | None = None,
    ) -> None:
        self.s3 = s3
        # the results' Content Credentials signer (chalicelib/delivery/provenance_sign.py): the deploy's KMS key, or a test certificate
        self.kms = kms
        self.store = store
        # Finalize's subject and text checks; without a client they say they did not run
        self.rekognition = rekognition
        # a regeneration added to a large finished job: its report written in the background
        self.start_report_rewrite = start_report_rewrite

    def _get(self, bucket: str, key: str) -> bytes:
        try:
            body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        except (ClientError, BotoCoreError) as exc:
            if is_transient_storage_error(exc):  # the state machine retries the step
                raise StorageBusy(f"could not read s3://{bucket}/{key}: {client_error_code(exc) or exc}") from exc
            if not isinstance(exc, ClientError):
                raise
            # a missing key is a 403 on AWS: say it is missing where the role may list (s3keys.py)
            code = "NoSuchKey" if s3keys.absent(self.s3, bucket, key, exc) else client_error_code(exc) or exc
            raise StorageError(f"could not read s3://{bucket}/{key}: {code}") from exc

    def _put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        try:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            failed = StorageBusy if is_transient_storage_error(exc) else StorageError
            raise failed(f"could not write s3://{bucket}/{key}: {client_error_code(exc) or exc}") from exc

    def _get_json(self, bucket: str, key: str) -> Any:
        raw = self._get(bucket, key)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StorageError(f"s3://{bucket}/{key} is not valid JSON") from exc

    def _put_json(self, bucket: str, key: str, data: Any) -> None:
        self._put(bucket, key, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _write_call(self, step: StepInput, call: ModelCall) -> dict[str, str]:
        request_key = contracts.request_key(step.job_id, step.image.image_id, call.step)
        self._put_json(step.bucket, request_key, call.body)
        return {
            "step": call.step,
            "modelId": call.model_id,
            "requestUri": contracts.s3_uri(step.bucket, request_key),
            "responseUri": contracts.s3_uri(
                step.bucket, contracts.response_key(step.job_id, step.image.image_id, call.step)
            ),
        }

    def _discard_scratch(
        self, step: StepInput, model_steps: Iterable[str], attempts: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        """Delete the image's scratch objects once it has SUCCEEDED: no later step reads them, and
        left to the scratch lifecycle rule a running job's scratch is larger than its results
        (DeleteObjects requests are free). A failed delete is logged: the lifecycle rule still
        expires them, and the image's result is already saved."""
        job_id, image_id = step.job_id, step.image.image_id
        keys = [contracts.work_key(job_id, image_id, name) for name in (CANVAS, GEOMETRY, SUBJECT_ALPHA, ORIGINAL_TEXT)]
        model_steps = list(model_steps)
        # the re-rolls' calls (`_next_attempt` names them after the last step and the attempt)
        model_steps += [f"{model_steps[-1]}.attempt{int(a['attempt'])}" for a in attempts if int(a["attempt"]) > 1]
        for model_step in model_steps:
            keys += [
                contracts.request_key(job_id, image_id, model_step),
                contracts.response_key(job_id, image_id, model_step),
            ]
        try:
            answer = self.s3.delete_objects(
                Bucket=step.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
            )
        except ClientError as exc:
            log.warning(
                "scratch of image %s in job %s left to expire: %s", image_id, job_id, client_error_code(exc) or exc
            )
            return
        for error in answer.get("Errors", []):
            log.warning("scratch object %s left to expire: %s", error.get("Key"), error.get("Code"))

    def _geometry(self, step: StepInput) -> tuple[Geometry, int]:
        data = self._get_json(step.bucket, contracts.work_key(step.job_id, step.image.image_id, GEOMETRY))
        return Geometry.from_dict(data["geometry"]), int(data["orientation"])

    @staticmethod
    def _spec(step: StepInput) -> ModelSpec:
        # get_model, not get_selectable_model: a job accepted yesterday still runs today.
        return registry.get_model(step.settings.model)

    def _cutout_alpha(
        self, step: StepInput, spec: ModelSpec, *, require_subject: bool = True
    ) -> tuple[Any, Geometry, str | None]:
        """The remove-background answer as the subject's soft alpha on the model canvas (within
        the kept labels' boxes), its geometry, and what made the cut-out."""
        adapter = registry.adapter_for(spec)
        first_step = adapter.steps[0]
        response = self._get_json(step.bucket, contracts.response_key(step.job_id, step.image.image_id, first_step))
        cutout = imaging.decode_image(adapter.parse_response(spec, first_step, response).images[0])
        geometry, orientation = self._geometry(step)
        boxes = [imaging.orient_box(box, orientation) for box in step.image.boxes]
        boxes_px = imaging.boxes_to_canvas(boxes, geometry)
        canvas_size = (geometry.canvas_width, geometry.canvas_height)
        alpha = imaging.subject_alpha(cutout, boxes_px, size=canvas_size, within=imaging.content_rect(geometry))
        if require_subject and imaging.mask_is_empty(imaging.binary(alpha)):
            self._no_subject(step, bool(boxes_px))
        return alpha, geometry, imaging.provenance(cutout)

    def _reserve_calls(self, event: Mapping[str, Any], step: StepInput, calls: int) -> None:
        """A job with a budget cap: every call of this image is reserved before the first is
        sent, so an image is either sent whole or not at all."""
        self._reserve(
            event,
            lambda most: self.store.reserve_model_calls(step.job_id, step.image.image_id, calls, most),
            "before this photo's turn; it was not sent to the model",
        )

    def _reserve_extra_call(self, event: Mapping[str, Any], step: StepInput, calls_after: int, outcome: str) -> None:
        """A job with a budget cap: a further variant or a re-roll is one more call, reserved
        before it is written (idempotent: a repeated Finalize reserves it once)."""
        self._reserve(
            event,
            lambda most: self.store.reserve_extra_model_call(step.job_id, step.image.image_id, calls_after, most),
            outcome,
        )

    @staticmethod
    def _reserve(event: Mapping[str, Any], reserve: Callable[[int], bool], outcome: str) -> None:
        """Reserve against the job's cap of model calls (none: no budget); BudgetReached says
        what the budget was and what it meant for this photo."""
        settings = event["settings"]
        most = settings.get(costs.MAX_CALLS_SETTING)
        if most is None or reserve(int(most)):
            return
        spent = f"the job's budget of ${float(settings.get(costs.BUDGET_FIELD) or 0):.2f} was spent ({int(most)} model calls)"
        raise BudgetReached(spent + ("" if outcome.startswith(";") else " ") + outcome)

    def _calls_answered(self, step: StepInput) -> list[str]:
        """The image's model calls that answered (and are billed), by step: Bedrock writes a
        call's output to its Output.S3Uri only when it answers, so each response object is one."""
        # one LIST of the image's responses, not a HEAD per call: a HEAD of a call that never
        # answered is a 403 on AWS without ListBucket, and the failure's cause would be lost
        # (chalicelib/store/s3keys.py; the LIST_SCRATCH grant)
        calls = registry.adapter_for(self._spec(step)).steps
        prefix = contracts.response_key(step.job_id, step.image.image_id, "")[: -len(".json")]
        try:
            present = s3keys.keys_under(self.s3, step.bucket, prefix)
        except ClientError as exc:
            raise StorageError(f"could not list s3://{step.bucket}/{prefix}: {client_error_code(exc)}") from exc
        return [c for c in calls if contracts.response_key(step.job_id, step.image.image_id, c) in present]

    @staticmethod
    def _no_subject(step: StepInput, had_boxes: bool) -> None:
        if had_boxes:
            labels = ", ".join(step.image.labels)
            raise NoSubject(
                f"background removal found no subject inside the boxes of the kept labels ({labels}); "
                "keep other labels or none to keep the whole subject"
            )
        raise NoSubject("background removal found no subject in this image")
