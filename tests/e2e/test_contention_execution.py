"""A whole job on the executed state machine while DynamoDB cancels transactions as it does under
contention (backend/local/dynamodb_rules.py through the `stack` fixture): the Map's children
conflict on their job's item for real, and more conflicts are injected. Every image finishes,
the job's counts, started calls and actual cost are exactly its images' (the old store gave up
after 5 attempts in ~0.6 s and never retried a reservation or a cost addition)."""

from __future__ import annotations

import pytest
from harness import upload

pytestmark = pytest.mark.slow

IMAGES = 6


def test_a_job_under_transaction_conflicts_counts_every_image_once(stack, run_job, photo) -> None:
    owner = "user-contention"
    refs = [upload(owner, f"p{i}.png", photo(320, 240, "PNG"), "png") for i in range(IMAGES)]
    # one transaction in five cancelled on top of the real overlaps: more than a job sees on AWS
    # at the deploy's concurrency (docs/aws-notes.md#n68-contention-on-the-job-item)
    stack["dynamodb"].conflict_randomly(0.2, seed=5)
    _, view = run_job(
        owner, {"prompt": "a sunny beach", "seed": 42, "images": [{"imageRef": r, "labels": ["Product"]} for r in refs]}
    )
    stats = dict(stack["dynamodb"].stats)
    stack["dynamodb"].quiet()
    assert stats["cancelled"] >= 5, stats  # the job met conflicts
    assert view["status"] == "COMPLETED", view
    assert [image["status"] for image in view["images"]] == ["SUCCEEDED"] * IMAGES
    assert view["counts"]["SUCCEEDED"] == IMAGES and view["counts"]["RUNNING"] == 0
    # the job's actual cost is its images' attempts' costs, each added once
    attempts = [a["costUsd"] for image in view["images"] for a in image["attempts"]]
    assert len(attempts) == IMAGES and view["cost"]["actualUsd"] == pytest.approx(sum(attempts), abs=1e-6)
