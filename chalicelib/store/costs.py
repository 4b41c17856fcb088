"""An image's outputs and attempts, and the model calls and dollars a job spends (reserved before
the call, added after)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.core.errors import (
    CONDITION_FAILED,
    StorageError,
    client_error_code,
)
from chalicelib.core.outputs import delivered_output, verdict_of
from chalicelib.store.images import ImageReads
from chalicelib.store.items import OUTPUTS_REVISION, _stored, _usd


class OutputsAndCosts(ImageReads):
    """Outputs, attempts, model-call budget and costs of a job and its images."""

    def set_outputs(
        self,
        job_id: str,
        image_id: str,
        outputs: Sequence[Mapping[str, Any]],
        before: Mapping[str, Any],
        *,
        regeneration: tuple[str, float] | None = None,
    ) -> bool:
        """Replace a SUCCEEDED image's outputs (the delivered variant picked, a variant added) and
        its verdict, the delivered one's; the job's per-verdict counts move with it in the same
        transaction. `before` is the image as read: False, and nothing written, when it is no
        longer SUCCEEDED or its outputs or verdict changed meanwhile (each write moves the image's
        OUTPUTS_REVISION on, so two writers that read the same outputs cannot both write: the
        second would drop the first's variant or pick). `regeneration` (charge, cost): the write
        adds a regenerated variant, and in the same transaction that charge is recorded once and
        the job's regenerations count and total grow by one and the cost: the variants, the count
        and the cost cannot disagree."""
        verdict = verdict_of(delivered_output({"outputs": outputs}))
        old_verdict = before.get("verdict")
        names = {"#s": "status", "#o": "outputs", "#v": "verdict", "#r": OUTPUTS_REVISION}
        values: dict[str, Any] = {":ok": ImageStatus.SUCCEEDED.value, ":outputs": [dict(o) for o in outputs], ":one": 1}
        # the verdict as read guards the job's per-verdict counts; the revision as read, the outputs
        condition = "#s = :ok AND " + ("#v = :old" if old_verdict else "attribute_not_exists(#v)")
        if old_verdict:
            values[":old"] = old_verdict
        if before.get(OUTPUTS_REVISION) is not None:
            condition += " AND #r = :rev"
            values[":rev"] = int(before[OUTPUTS_REVISION])
        else:
            condition += " AND attribute_not_exists(#r)"
        update = "SET #o = :outputs"
        if verdict:
            # the verdict index's key moves in the same write as the verdict
            update += ", #v = :verdict, #vk = :vk"
            names["#vk"] = contracts.VERDICT_INDEX_PK
            values[":verdict"] = verdict
            values[":vk"] = contracts.verdict_index_pk(job_id, verdict)
        update += " ADD #r :one"
        if regeneration is not None:
            update += ", costCharges :charges"
            condition += " AND NOT contains(costCharges, :charge)"
            values[":charge"] = regeneration[0]
        image_update = {
            "TableName": self.table.name,
            "Key": self._image_key(job_id, image_id),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            # a string set (the image's charges) is no JSON: added apart from _stored
            "ExpressionAttributeValues": {
                **_stored(values),
                **({":charges": {regeneration[0]}} if regeneration is not None else {}),
            },
        }
        items: list[dict[str, Any]] = [{"Update": image_update}]
        if regeneration is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": self._job_key(job_id),
                        "UpdateExpression": "ADD #cost :usd, #count :one",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {
                            "#cost": contracts.JOB_REGENERATED_COST_ATTRIBUTE,
                            "#count": contracts.JOB_REGENERATIONS_ATTRIBUTE,
                        },
                        "ExpressionAttributeValues": {":usd": _usd(regeneration[1]), ":one": 1},
                    }
                }
            )
        if verdict and old_verdict and verdict != old_verdict:
            items.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": self._job_key(job_id),
                        "UpdateExpression": "ADD #new :one, #old :minus",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {
                            "#new": contracts.verdict_count_attribute(verdict),
                            "#old": contracts.verdict_count_attribute(old_verdict),
                        },
                        "ExpressionAttributeValues": {":one": 1, ":minus": -1},
                    }
                }
            )
        try:
            self._transact(items)
        except ClientError as exc:
            if self._lost_race(exc):
                return False
            raise
        return True

    def reserve_model_calls(self, job_id: str, image_id: str, calls: int, most: int) -> bool:
        """Reserve an image's model calls against the job's cap of `most` calls, before the first
        is sent: False when they would pass it. Idempotent per image (a repeated Prepare reserves
        nothing twice); the job's started-calls count moves in the same transaction."""
        if calls > most:
            return False
        started = contracts.JOB_CALLS_STARTED_ATTRIBUTE
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._image_key(job_id, image_id),
                            "UpdateExpression": "SET callsReserved = :n",
                            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(callsReserved)",
                            "ExpressionAttributeValues": {":n": calls},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "UpdateExpression": "ADD #started :n",
                            "ConditionExpression": "attribute_not_exists(#started) OR #started <= :room",
                            "ExpressionAttributeNames": {"#started": started},
                            "ExpressionAttributeValues": {":n": calls, ":room": most - calls},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            codes = [(reason or {}).get("Code") for reason in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                image = self._image(job_id, image_id)
                if image is None:
                    raise StorageError(f"job {job_id} has no image {image_id}") from exc
                return True  # reserved by an earlier attempt of this step
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def reserve_extra_model_call(self, job_id: str, image_id: str, calls_after: int, most: int) -> bool:
        """Reserve one more call for an image that already holds `calls_after - 1` (a re-roll)
        against the job's cap of `most`: False when it would pass it. Idempotent: a repeated
        reservation of the same call finds the image's count already moved."""
        started = contracts.JOB_CALLS_STARTED_ATTRIBUTE
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._image_key(job_id, image_id),
                            "UpdateExpression": "SET callsReserved = :after",
                            "ConditionExpression": "callsReserved = :before",
                            "ExpressionAttributeValues": {":after": calls_after, ":before": calls_after - 1},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "UpdateExpression": "ADD #started :one",
                            "ConditionExpression": "#started <= :room",
                            "ExpressionAttributeNames": {"#started": started},
                            "ExpressionAttributeValues": {":one": 1, ":room": most - 1},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            codes = [(reason or {}).get("Code") for reason in exc.response.get("CancellationReasons") or []]
            if codes and codes[0] == "ConditionalCheckFailed":
                image = self._image(job_id, image_id) or {}
                return int(image.get("callsReserved") or 0) >= calls_after  # reserved by a repeat
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                return False
            raise
        return True

    def record_scene_call(self, job_id: str, model_key: str, cost_usd: float) -> bool:
        """The batch's scene call answered (it is billed): the job's calls and cost count it once
        (a repeated call finds the scene's model already set and adds nothing)."""
        try:
            self._update(
                Key=self._job_key(job_id),
                UpdateExpression=f"SET {contracts.JOB_SCENE_MODEL_ATTRIBUTE} = :model ADD #cost :usd",
                ConditionExpression=f"attribute_exists(pk) AND attribute_not_exists({contracts.JOB_SCENE_MODEL_ATTRIBUTE})",
                ExpressionAttributeNames={"#cost": contracts.JOB_COST_ATTRIBUTE},
                ExpressionAttributeValues={":model": model_key, ":usd": _usd(cost_usd)},
            )
        except ClientError as exc:
            if client_error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def add_cost(
        self,
        job_id: str,
        image_id: str,
        charge: str,
        cost_usd: float,
        *,
        model_calls: int = 0,
        regeneration: bool = False,
    ) -> bool:
        """Add what one billed piece of an image's work cost (and its model calls) to the job's
        running totals, once per `charge` (a name unique within the image, such as "variant2" or
        "attempt3"): a Lambda retry that adds the same charge again adds nothing and answers
        False. For costs recorded apart from the image's finishing; an image's attempts are added
        by set_image_status(cost_usd=...) in the transition that finishes it. `regeneration`: a
        regeneration billed to its own linked job, kept apart on this one (its total and count,
        contracts.JOB_REGENERATED_COST_ATTRIBUTE), not in this job's cost."""
        charges = "costCharges"  # on the image item: the job item stays small at 10,000 images
        if regeneration:
            job_adds = f"ADD #cost :usd, {contracts.JOB_REGENERATIONS_ATTRIBUTE} :one"
            job_values: dict[str, Any] = {":usd": _usd(cost_usd), ":one": 1}
            cost_attribute = contracts.JOB_REGENERATED_COST_ATTRIBUTE
        else:
            job_adds = "ADD #cost :usd" + (f", {contracts.JOB_MODEL_CALLS_ATTRIBUTE} :calls" if model_calls else "")
            job_values = {":usd": _usd(cost_usd)}
            cost_attribute = contracts.JOB_COST_ATTRIBUTE
        if model_calls and not regeneration:
            job_values[":calls"] = int(model_calls)
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._image_key(job_id, image_id),
                            "UpdateExpression": f"ADD {charges} :charges",
                            "ConditionExpression": f"attribute_exists(pk) AND NOT contains({charges}, :charge)",
                            "ExpressionAttributeValues": {":charges": {charge}, ":charge": charge},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": self._job_key(job_id),
                            "UpdateExpression": job_adds,
                            "ConditionExpression": "attribute_exists(pk)",
                            "ExpressionAttributeNames": {"#cost": cost_attribute},
                            "ExpressionAttributeValues": job_values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            if client_error_code(exc) != "TransactionCanceledException":
                raise
            codes = [(reason or {}).get("Code") for reason in exc.response.get("CancellationReasons") or []]
            if codes and codes[0] == "ConditionalCheckFailed":
                if self._image(job_id, image_id) is None:
                    raise StorageError(f"job {job_id} has no image {image_id}") from exc
                return False  # added by an earlier run of this step
            raise
        return True
