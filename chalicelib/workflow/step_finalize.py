"""Finalize: one attempt after another (automatic re-rolls) until one is kept, then the image's
finish."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.core import backgrounds, contracts, estimate
from chalicelib.core.contracts import ErrorCode, ImageStatus
from chalicelib.core.errors import (
    BudgetReached,
    StepError,
    StorageError,
    classify_step_failure,
    client_error_code,
)
from chalicelib.delivery import variants
from chalicelib.imaging import quality
from chalicelib.models import registry
from chalicelib.models.base import (
    ModelCall,
    ModelSpec,
)
from chalicelib.workflow import observability

if TYPE_CHECKING:
    from chalicelib.models.adapter import Adapter

from chalicelib.workflow.step_outputs import AttemptOutputs
from chalicelib.workflow.step_parts import (
    StepInput,
    _AttemptFailed,
    _relit,
    _say_re_roll,
    _weakest_variant,
    log,
    re_roll_seed,
)


class FinalizeStep(AttemptOutputs):
    """The Finalize step and its attempts."""

    def finalize(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Decode the model output, restore the original geometry, compose the subject over it
        (PRECISE), score the result, save; and decide whether the image is made again.

        Each call finishes one attempt. The first reads the last model call's response; a re-roll
        (the state machine calls again with this step's previous answer in `finalized`) reads
        the response of the call that answer asked for, with its new seed. An attempt is written
        to the result keys only when it is the best so far (`quality.best_attempt`), so the results
        always hold the best. Answers {"status", "outputs", "attempts", "reroll"}: `reroll` is the
        next model call while the best attempt is still `reRollOn` or worse and re-rolls are left,
        else null, and the image is SUCCEEDED with the best attempt's outputs and every attempt.
        Repeated after the image SUCCEEDED (its scratch is gone by then) it answers from the store."""
        step = StepInput.from_event(event)
        try:
            return self._finalize(step, event)
        except StorageError:
            done = self.store.get_image(step.job_id, step.image.image_id)
            if done and done.get("status") == ImageStatus.SUCCEEDED.value:
                # repeated after the first run discarded the scratch: the same answer, nothing rewritten
                return {
                    "status": ImageStatus.SUCCEEDED.value,
                    "outputs": len(done.get("outputs") or []),
                    "attempts": [{k: v for k, v in a.items() if k != "quality"} for a in done.get("attempts") or []],
                    "reroll": None,
                }
            raise

    def _finalize(self, step: StepInput, event: Mapping[str, Any]) -> dict[str, Any]:
        spec = self._spec(step)
        adapter = registry.adapter_for(spec)
        background = backgrounds.effective(step.image.background, step.settings.background)
        if not background.needs_inpaint:
            # one attempt, never re-rolled: the cut-out is deterministic, so a second one is the same
            attempt, size = self._composed_attempt(step, spec, background)
            return self._finish(step, [attempt], adapter.steps[:1], size=size)
        last_step = adapter.steps[-1]
        previous = event.get("finalized") or {}
        attempts: list[dict[str, Any]] = [dict(a) for a in previous.get("attempts") or []]
        reroll = previous.get("reroll")
        number = int(reroll["attempt"]) if reroll else 1
        # the variant this attempt is made for (its result key): attempts 1..n are the n variants
        # of a one-image-per-call model; a re-roll names the variant it may replace
        variant = int(reroll.get("variant") or 1) if reroll else 1
        if any(int(a["attempt"]) == number for a in attempts):  # a repeated call: the same answer
            attempts = [a for a in attempts if int(a["attempt"]) < number]
        seed = int(reroll["seed"]) if reroll else step.settings.seed
        if reroll:
            try:
                failure = event.get("rerollFailure")
                if failure:  # the call failed after its retries
                    raise _AttemptFailed(*classify_step_failure(failure.get("Error"), failure.get("Cause")))
                key = contracts.split_s3_uri(str(reroll["call"]["responseUri"]))[1]
                made = self._make_attempt(step, spec, key, seed, number, spec.re_roll_price_usd, variant)
            except (StepError, _AttemptFailed) as exc:
                # a failed call never fails the image: the best attempt so far stands; the next
                # variant is still made, and nothing is re-rolled after it (a content filter is never re-rolled)
                code = ErrorCode(exc.code).value
                cause = exc.cause if isinstance(exc, _AttemptFailed) else str(exc)
                attempts.append(
                    {"attempt": number, "variant": variant, "seed": seed, "errorCode": code, "cause": cause[:300]}
                )
                return self._after_attempt(event, step, spec, adapter, attempts, number, re_roll=False)
        else:
            key = contracts.response_key(step.job_id, step.image.image_id, last_step)
            made = self._make_attempt(step, spec, key, seed, number, spec.price_per_image_usd, variant)
        attempt, encoded = made
        attempts.append(attempt)
        # only the best attempt so far of each variant is in its result keys: the delivered file is the kept one
        if quality.best_attempt(variants.of_variant(attempts, variant)) is attempt:
            for output, (body, content_type) in zip(attempt["outputs"], encoded, strict=True):
                self._put(step.bucket, output["key"], body, content_type)
        return self._after_attempt(event, step, spec, adapter, attempts, number, re_roll=True)

    def _after_attempt(
        self,
        event: Mapping[str, Any],
        step: StepInput,
        spec: ModelSpec,
        adapter: Adapter,
        attempts: list[dict[str, Any]],
        number: int,
        *,
        re_roll: bool,
    ) -> dict[str, Any]:
        """What follows attempt `number`: the next variant's call while variants are left (a
        model that returns one image per call makes `variants` calls); then a re-roll while even
        the best variant is `reRollOn` or worse, re-rolls are left and no call failed (it may
        replace the weakest variant); else the image SUCCEEDED. Every further call is reserved
        against the job's budget first, and a spent budget ends the image with what it has."""
        settings = step.settings
        calls = spec.variant_calls(settings.variants)
        best = quality.best_attempt(attempts)
        if number < calls:
            nxt, what = number + 1, "; this photo's further variants were not made"
        elif best is None:
            raise StorageError("no attempt of this image produced a result")
        elif (
            re_roll
            and not any(a.get("errorCode") for a in attempts)
            and number < calls + min(settings.re_rolls, contracts.MAX_RE_ROLLS)
            and quality.needs_re_roll(best, quality.Outcome(settings.re_roll_on), relit=_relit(settings))
        ):
            nxt, what = number + 1, "; this photo was not re-rolled"
        else:
            return self._finish(step, attempts)
        # a variant's own first attempt; a re-roll goes to the weakest variant so far
        variant = nxt if nxt <= calls else _weakest_variant(attempts)
        try:
            self._reserve_extra_call(event, step, len(adapter.steps) + nxt - 1, what)
        except BudgetReached as exc:  # the best attempt so far is delivered, and the report says why
            seed = re_roll_seed(settings.seed, nxt, spec.seed_max)
            attempts.append(
                {"attempt": nxt, "variant": variant, "seed": seed, "errorCode": exc.code.value, "cause": str(exc)}
            )
            return self._finish(step, attempts)
        return self._next_attempt(step, spec, adapter, attempts, nxt, variant)

    def _make_attempt(
        self,
        step: StepInput,
        spec: ModelSpec,
        response_key: str,
        seed: int,
        number: int,
        price: float,
        variant: int = 1,
    ) -> tuple[dict[str, Any], list[tuple[bytes, str]]]:
        """One attempt from the model's response: its record (outputs with their scorecards,
        outcome, score, cost) and each output's encoded bytes, nothing written yet."""
        adapter = registry.adapter_for(spec)
        generated = adapter.parse_response(spec, adapter.steps[-1], self._get_json(step.bucket, response_key))
        outputs, encoded, rekognition_calls = self._make_outputs(step, spec, generated, seed, variant)
        cards = [quality.Scorecard.from_dict(o["quality"]) for o in outputs]
        _say_re_roll(outputs, step.settings)
        cost = round(estimate.attempt_cost_usd(len(outputs), price, rekognition_calls), 4)
        if len(outputs) == 1:  # one variant from one call: what it cost is on it too
            outputs[0].update(attempt=number, costUsd=cost)
        attempt = {
            "attempt": number,
            "variant": variant,
            "seed": seed,
            "outcome": quality.attempt_outcome(cards).value,
            "score": quality.attempt_score(cards),
            "costUsd": cost,
            "outputs": outputs,
        }
        return attempt, encoded

    def _next_attempt(
        self,
        step: StepInput,
        spec: ModelSpec,
        adapter: Adapter,
        attempts: list[dict[str, Any]],
        number: int,
        variant: int,
    ) -> dict[str, Any]:
        """Write the last model call again with a new seed; answer it as `reroll` (the state
        machine's loop: a further variant or a re-roll, made for `variant`'s result key)."""
        last_step = adapter.steps[-1]
        seed = re_roll_seed(step.settings.seed, number, spec.seed_max)
        body = self._get_json(step.bucket, contracts.request_key(step.job_id, step.image.image_id, last_step))
        call = ModelCall(f"{last_step}.attempt{number}", spec.model_ids[last_step], adapter.with_seed(body, seed))
        return {
            "status": ImageStatus.RUNNING.value,
            "outputs": 0,
            "attempts": attempts,
            "reroll": {"attempt": number, "variant": variant, "seed": seed, "call": self._write_call(step, call)},
        }

    def _finish(
        self,
        step: StepInput,
        attempts: list[dict[str, Any]],
        adapter_steps: Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """The image SUCCEEDED with its best attempt's outputs; every attempt recorded with it.
        `adapter_steps`: the model calls the image made (a composed background: the first alone);
        `size`: the results' size when it is not the original's (a placement's canvas)."""
        kept = variants.kept_attempts(attempts)
        if not kept:
            raise StorageError("no attempt of this image produced a result")
        if size is None:
            geometry, _ = self._geometry(step)
            size = (geometry.original_width, geometry.original_height)
        if adapter_steps is None:
            adapter_steps = registry.adapter_for(self._spec(step)).steps
        adapter_steps = tuple(adapter_steps)
        kept_numbers = {int(a["attempt"]) for a in kept.values()}
        record = [
            {
                **{k: v for k, v in a.items() if k != "outputs"},
                **({"quality": [o["quality"] for o in a["outputs"]]} if a.get("outputs") else {}),
                "kept": int(a["attempt"]) in kept_numbers,
            }
            for a in attempts
        ]
        # every variant's best result, the best of them delivered (the owner may pick another)
        outputs = variants.mark_delivered([o for v in sorted(kept) for o in kept[v]["outputs"]])
        verdict = variants.verdict_of(variants.delivered_output({"outputs": outputs}))
        if step.regenerates:
            # before this image is SUCCEEDED: if it cannot be added, the image fails and says why
            variants.VariantService(
                self.store, self.s3, step.bucket, start_rewrite=self.start_report_rewrite
            ).add_regenerated(
                step.owner,
                step.regenerates,
                outputs[0],
                step.job_id,
                step.image.prompt or step.settings.prompt,
                # billed to this linked job; the parent shows it apart (its regenerations)
                cost_usd=estimate.attempts_cost_usd(attempts),
            )
        # a repeated finalize writes the same keys; the store keeps the first outcome
        self.store.set_image_status(
            step.job_id,
            step.image.image_id,
            ImageStatus.SUCCEEDED,
            outputs=outputs,
            attempts=record,
            width=size[0],
            height=size[1],
            verdict=verdict or quality.Outcome.SKIPPED.value,
            # every call of the image answered, and each further variant or re-roll that made a result
            model_calls=len(adapter_steps) + sum(1 for a in attempts if int(a["attempt"]) > 1 and a.get("outputs")),
            # what each attempt cost (its model call(s) and checks): the job's actual cost
            cost_usd=estimate.attempts_cost_usd(attempts),
        )
        try:  # read from the request and response objects, before they go
            call_seconds = observability.model_call_seconds(
                self.s3, step.bucket, step.job_id, step.image.image_id, adapter_steps
            )
        except ClientError as exc:  # a metric never fails the image
            log.warning("model call times of image %s not read: %s", step.image.image_id, client_error_code(exc) or exc)
            call_seconds = {}
        # only after the status is written: a finalize repeated from here on finds it SUCCEEDED
        self._discard_scratch(step, adapter_steps, attempts)
        return {
            "status": ImageStatus.SUCCEEDED.value,
            "outputs": len(outputs),
            "attempts": [{k: v for k, v in a.items() if k != "quality"} for a in record],
            "reroll": None,
            "modelCallSeconds": call_seconds,
        }
