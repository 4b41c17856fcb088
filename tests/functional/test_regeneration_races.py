"""Regenerations at the same moment (issue #26): each gets its own seed, each adds its own variant,
and the variants, the count and the cost of an image's regenerations always agree."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from test_variants_api import BUCKET, _finished_job

from chalicelib.core import contracts
from chalicelib.delivery.variants import VariantService

CALLS = contracts.MAX_REGENERATIONS


@pytest.fixture
def atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """One UpdateItem or TransactWriteItems at a time in moto, as DynamoDB applies each atomically
    (docs/aws-notes.md N88). moto reads and writes an item in two steps, so two threads could both
    add 1 to the same count, and it undoes a cancelled transaction by restoring a copy of every
    table taken before it, which drops what another thread wrote meanwhile. The race under test,
    the read of an image and a write that relies on it, is left as it is. A read is one request
    too: DynamoDB answers an item as it was at one instant, while moto copies the item's dict out
    as another thread changes it ("dictionary changed size during iteration"), so reads take the
    same lock."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    for name in ("update_item", "transact_write_items", "get_item", "query", "batch_get_item"):
        original = getattr(DynamoHandler, name)

        def serialised(self: Any, _original: Any = original) -> Any:
            with lock:
                return _original(self)

        monkeypatch.setattr(DynamoHandler, name, serialised)


def _parent(store: Any) -> tuple[str, str, str]:
    from test_finalize_checks_and_rerolls import JOB_ID, OWNER

    image_id = _finished_job(store, variants=2)
    store.put_labels(store.get_image(JOB_ID, image_id)["key"], [{"name": "Bottle", "confidence": 96.0}])
    return OWNER, JOB_ID, image_id


def test_regenerations_asked_at_once_without_a_seed_each_get_a_new_seed(
    client, token_for, store, atomic_writes
) -> None:
    owner, job_id, image_id = _parent(store)
    headers = {"Authorization": token_for(owner), "Content-Type": "application/json"}
    path = f"/jobs/{job_id}/images/{image_id}/regenerate"
    start = threading.Barrier(CALLS)

    def regenerate(_: int) -> Any:
        start.wait()
        return client.http.post(path, headers=headers, body="{}")

    with ThreadPoolExecutor(max_workers=CALLS) as pool:
        answers = list(pool.map(regenerate, range(CALLS)))
    assert [a.status_code for a in answers] == [202] * CALLS, [a.body for a in answers]
    seeds = [a.json_body["seed"] for a in answers]
    # each linked job is made with the seed it answered, and no two are the same picture's seed
    assert len(set(seeds)) == CALLS, seeds
    assert sorted(store.get_job(a.json_body["jobId"])["settings"]["seed"] for a in answers) == sorted(seeds)
    parent_seeds = {int(o["seed"]) for o in store.get_image(job_id, image_id)["outputs"]}
    assert not parent_seeds & set(seeds)
    assert client.http.post(path, headers=headers, body="{}").status_code == 409


def test_a_refused_regeneration_does_not_give_its_seed_to_the_next(store) -> None:
    owner, job_id, image_id = _parent(store)
    first = store.claim_regeneration(job_id, image_id, CALLS)
    store.release_regeneration(job_id, image_id)  # its job could not be submitted
    second = store.claim_regeneration(job_id, image_id, CALLS)
    assert (first, second) == (1, 2)
    assert store.get_image(job_id, image_id)["regenerations"] == 1


class _ReadTogether:
    """The job store, but each thread's first read of the image waits until every thread has
    read it: the regenerations all start from the same outputs, the race as it happens."""

    def __init__(self, store: Any, parties: int) -> None:
        self._store = store
        self._barrier = threading.Barrier(parties)
        self._seen = threading.local()

    def get_image(self, job_id: str, image_id: str) -> Any:
        image = self._store.get_image(job_id, image_id)
        if not getattr(self._seen, "read", False):
            self._seen.read = True
            self._barrier.wait(timeout=30)
        return image

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_regenerations_finishing_at_once_each_add_a_variant_and_are_billed_once(store, atomic_writes) -> None:
    owner, job_id, image_id = _parent(store)
    s3 = boto3.client("s3")
    template = dict(store.get_image(job_id, image_id)["outputs"][0])
    finished = []  # each linked job's own result, a different picture each
    for n in range(CALLS):
        linked = contracts.new_job_id()
        key = contracts.result_key(owner, linked, contracts.new_opaque_id(), 1, "png")
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"picture {n}".encode())
        finished.append((linked, {**template, "key": key, "seed": 1000 + n}))
    before = store.get_job(job_id)
    service = VariantService(_ReadTogether(store, CALLS), s3, BUCKET)  # type: ignore[arg-type]
    parent = {"jobId": job_id, "imageId": image_id}

    def add(entry: tuple[str, dict[str, Any]]) -> int | None:
        linked, made = entry
        return service.add_regenerated(owner, parent, made, linked, None, 0.08)

    from backend.local import iam

    # as the workflow's finalize makes them, checked against its policy
    with iam.running_as("finalize"), ThreadPoolExecutor(max_workers=CALLS) as pool:
        added = list(pool.map(add, finished))
    assert sorted(v for v in added if v is not None) == [3, 4, 5, 6]

    outputs = store.get_image(job_id, image_id)["outputs"]
    regenerated = [o for o in outputs if o.get("source") == contracts.VariantSource.REGENERATED.value]
    assert len(regenerated) == CALLS and len({o["key"] for o in regenerated}) == CALLS
    for linked, made in finished:  # each variant's picture is its own job's, not another's
        (variant,) = [o for o in regenerated if o["jobId"] == linked]
        body = s3.get_object(Bucket=BUCKET, Key=variant["key"])["Body"].read()
        assert body == s3.get_object(Bucket=BUCKET, Key=made["key"])["Body"].read()
    job = store.get_job(job_id)
    # as many regenerations counted and billed as variants added
    assert int(job[contracts.JOB_REGENERATIONS_ATTRIBUTE]) == CALLS
    assert float(job[contracts.JOB_REGENERATED_COST_ATTRIBUTE]) == pytest.approx(CALLS * 0.08)
    assert job.get(contracts.JOB_COST_ATTRIBUTE) == before.get(contracts.JOB_COST_ATTRIBUTE)

    # each step repeated (a Lambda retry) adds nothing more
    for linked, made in finished:
        VariantService(store, s3, BUCKET).add_regenerated(owner, parent, made, linked, None, 0.08)
    assert len(store.get_image(job_id, image_id)["outputs"]) == len(outputs)
    assert (
        store.get_job(job_id)[contracts.JOB_REGENERATED_COST_ATTRIBUTE] == job[contracts.JOB_REGENERATED_COST_ATTRIBUTE]
    )
