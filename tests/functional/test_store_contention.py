"""The job store under DynamoDB contention as AWS answers it (backend/local/dynamodb_rules.py):
images finishing together conflict on their job's item and may be throttled; every write of the
store retries with capped, fully jittered backoff, and the job's counts, reservations and cost
stay exact. Each test fails on the store that retried transitions 5 times in ~0.6 s and budget
reservations and cost additions never."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import boto3
import pytest
from botocore.config import Config

from backend.local import dynamodb_rules
from chalicelib.core import contracts
from chalicelib.core.contracts import ImageStatus
from chalicelib.core.errors import DYNAMODB_CONTENTION_RETRY
from chalicelib.store.jobs import JobStore, NewImage

JOB_ID = "20261207T220000Z-0123456789ab"
IMAGES = 16
CALLS_PER_IMAGE = 2
ATTEMPT_USD = 0.0137
FINISH_USD = 0.0421


def _store(config: Config | None = None, seed: int = 1) -> JobStore:
    table = boto3.resource("dynamodb", config=config).Table(os.environ["JOBS_TABLE_NAME"])
    return JobStore(table, rng=random.Random(seed))


def _submit(store: JobStore, count: int = IMAGES) -> list[str]:
    images = [
        NewImage(image_id=f"{i:032x}", image_ref=f"ref{i}", key=f"uploads/o/{i}.png", name=f"{i}.png")
        for i in range(count)
    ]
    store.put_job(job_id=JOB_ID, owner="o", model="stability-inpaint", settings={}, images=images)
    return [image.image_id for image in images]


def _one_image(store: JobStore, image_id: str) -> None:
    """What the workflow does to one image's records: start, reserve its calls, add an attempt's
    cost, one re-roll's reservation, finish with the rest of its cost."""
    assert store.start_image(JOB_ID, image_id)
    assert store.reserve_model_calls(JOB_ID, image_id, CALLS_PER_IMAGE, most=1000)
    assert store.add_cost(JOB_ID, image_id, "attempt1", ATTEMPT_USD, model_calls=1)
    assert store.reserve_extra_model_call(JOB_ID, image_id, CALLS_PER_IMAGE + 1, most=1000)
    assert store.set_image_status(
        JOB_ID, image_id, ImageStatus.SUCCEEDED, outputs=[{"key": f"r/{image_id}"}], model_calls=2, cost_usd=FINISH_USD
    )


def _run_concurrently(store: JobStore, image_ids: list[str], workers: int = 8) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda image_id: _one_image(store, image_id), image_ids))  # re-raises any failure


def _assert_exact(store: JobStore, count: int) -> None:
    job = store.get_job(JOB_ID)
    assert job is not None
    assert job["counts"] == {"PENDING": 0, "RUNNING": 0, "SUCCEEDED": count, "FAILED": 0, "CANCELLED": 0}
    assert job[contracts.JOB_CALLS_STARTED_ATTRIBUTE] == count * (CALLS_PER_IMAGE + 1)
    assert job[contracts.JOB_MODEL_CALLS_ATTRIBUTE] == count * 3
    # exact to the micro-dollar: each addition once
    raw = store.table.get_item(Key={"pk": f"JOB#{JOB_ID}", "sk": "JOB"}, ConsistentRead=True)["Item"]
    expected = count * (Decimal(str(ATTEMPT_USD)) + Decimal(str(FINISH_USD)))
    assert raw[contracts.JOB_COST_ATTRIBUTE] == expected


def test_images_finishing_together_under_injected_conflicts_count_exactly(transaction_rules) -> None:
    store = _store()
    image_ids = _submit(store)
    # a third of all transactions cancelled with TransactionConflict: many times what a job of
    # this size sees on AWS, so every kind of write meets it
    transaction_rules.conflict_randomly(0.33, seed=11)
    _run_concurrently(store, image_ids)
    transaction_rules.quiet()
    _assert_exact(store, IMAGES)
    assert transaction_rules.stats["injected"] >= 15
    assert store.contention.gave_up == 0 and store.contention.retries >= transaction_rules.stats["cancelled"]


def test_a_burst_of_conflicts_on_the_job_item_is_ridden_out(transaction_rules) -> None:
    """Eight conflicts in a row on one item: the old store gave up after 5 attempts (~0.6 s), and
    never retried a reservation; this one waits (up to seconds) and succeeds."""
    store = _store()
    (image_id,) = _submit(store, 1)
    waits: list[float] = []
    store.sleep = waits.append  # the policy's waits, recorded instead of slept
    transaction_rules.conflict_next(8, table=store.table.name, pk=f"JOB#{JOB_ID}", sk="JOB")
    assert store.start_image(JOB_ID, image_id)
    transaction_rules.conflict_next(8, table=store.table.name, pk=f"JOB#{JOB_ID}", sk="JOB")
    assert store.reserve_model_calls(JOB_ID, image_id, CALLS_PER_IMAGE, most=1000)
    transaction_rules.conflict_next(8, table=store.table.name, pk=f"JOB#{JOB_ID}", sk="JOB")
    assert store.add_cost(JOB_ID, image_id, "attempt1", ATTEMPT_USD, model_calls=1)
    assert len(waits) == 24
    caps = DYNAMODB_CONTENTION_RETRY.delays_s()
    assert all(0 <= wait <= caps[i % 8] for i, wait in enumerate(waits))  # full jitter under the cap
    assert sum(waits[:8]) > 0.2  # not all at once: the old store's 5 attempts spanned ~0.6 s at most
    job = store.get_job(JOB_ID)
    assert job is not None and job["counts"]["RUNNING"] == 1
    assert job[contracts.JOB_CALLS_STARTED_ATTRIBUTE] == CALLS_PER_IMAGE


def test_single_updates_of_the_job_item_ride_out_conflicts(transaction_rules) -> None:
    """UpdateItem on the job item while transactions hold it fails with
    TransactionConflictException (botocore does not retry it): the store's updates retry too."""
    store = _store()
    _submit(store, 1)
    store.sleep = lambda s: None
    job = {"table": store.table.name, "pk": f"JOB#{JOB_ID}", "sk": "JOB"}
    transaction_rules.conflict_next(4, **job)
    assert store.mark_running(JOB_ID, "arn:aws:states:us-east-1:123456789012:execution:m:e")
    transaction_rules.conflict_next(4, **job)
    assert store.record_scene_call(JOB_ID, "scene-model", 0.04)
    transaction_rules.conflict_next(4, **job)
    assert store.cancel_job(JOB_ID)
    assert transaction_rules.stats["single_write_conflicts"] == 12
    stored = store.get_job(JOB_ID)
    assert stored is not None and stored["status"] == "CANCELLED"
    assert stored[contracts.JOB_COST_ATTRIBUTE] == pytest.approx(0.04)


def test_real_overlaps_between_concurrent_images_are_retried(transaction_rules) -> None:
    """No injection: transactions the workers really run at once on the job item conflict, as
    on AWS, and the counts stay exact."""
    store = _store()
    image_ids = _submit(store)
    _run_concurrently(store, image_ids, workers=8)
    _assert_exact(store, IMAGES)


def test_a_transition_whose_answer_was_lost_is_not_applied_twice(transaction_rules) -> None:
    """The transition was applied and its answers lost (500s after the write) past all of the
    SDK's retries (botocore's own retries reuse the token it drew for the call): the store's
    retry carries the same ClientRequestToken, DynamoDB answers it with success and applies
    nothing, and the store says the transition happened."""
    store = _store(Config(retries={"total_max_attempts": 2, "mode": "standard"}))
    (image_id,) = _submit(store, 1)
    assert store.start_image(JOB_ID, image_id)
    transaction_rules.lose_answers(2)  # the call and the SDK's retry
    assert store.add_cost(JOB_ID, image_id, "attempt1", ATTEMPT_USD, model_calls=1) is True
    transaction_rules.lose_answers(2)
    assert (
        store.set_image_status(JOB_ID, image_id, ImageStatus.SUCCEEDED, outputs=[{"key": "r"}], cost_usd=FINISH_USD)
        is True
    )
    assert transaction_rules.stats["replayed"] == 4 and transaction_rules.stats["answers_lost"] == 4
    job = store.get_job(JOB_ID)
    assert job is not None
    assert job["counts"]["SUCCEEDED"] == 1 and job["counts"]["RUNNING"] == 0
    raw = store.table.get_item(Key={"pk": f"JOB#{JOB_ID}", "sk": "JOB"}, ConsistentRead=True)["Item"]
    assert raw[contracts.JOB_COST_ATTRIBUTE] == Decimal(str(ATTEMPT_USD)) + Decimal(str(FINISH_USD))


def test_a_cancelled_transaction_is_retried_with_a_new_token_an_unknown_one_with_the_same(transaction_rules) -> None:
    """A cancellation applied nothing: its retry is a new request (what DynamoDB answers to a
    cancelled request's token again is not documented). A 500 may have applied it: its retry
    keeps the token, so it cannot apply twice."""
    store = _store(Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    (image_id,) = _submit(store, 1)
    store.sleep = lambda s: None
    tokens: list[str] = []
    store.table.meta.client.meta.events.register(
        "before-parameter-build.dynamodb.TransactWriteItems",
        lambda params, **kwargs: tokens.append(params["ClientRequestToken"]),
    )
    transaction_rules.conflict_next(2, table=store.table.name, pk=f"JOB#{JOB_ID}", sk="JOB")
    assert store.start_image(JOB_ID, image_id)
    assert len(tokens) == 3 and len(set(tokens)) == 3
    tokens.clear()
    transaction_rules.lose_answers(2)
    assert store.add_cost(JOB_ID, image_id, "attempt1", ATTEMPT_USD)
    assert len(tokens) == 3 and len(set(tokens)) == 1
    assert transaction_rules.stats["replayed"] == 2


def test_throttled_job_partition_slows_the_images_but_loses_nothing(transaction_rules) -> None:
    """The job's partition at 40 write units/s (its images and the job item share one partition
    key): transactions are cancelled with ThrottlingError; the store waits them out."""
    store = _store(Config(retries={"max_attempts": 2, "mode": "standard"}))
    image_ids = _submit(store, 6)
    undo = dynamodb_rules.install_partition_limits(write_units_per_s=40)
    try:
        _run_concurrently(store, image_ids, workers=6)
        limits = dynamodb_rules.partition_limits()
        assert limits is not None and limits.throttled["write"] > 0
    finally:
        undo()
    _assert_exact(store, 6)
