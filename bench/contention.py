"""The job store under DynamoDB transaction conflicts: how many retries, and the worst added wait.

N images go through what the workflow writes for each (start, reserve its calls, add an
attempt's cost, reserve a re-roll, finish with its cost) from W threads at once, on moto with
backend/local/dynamodb_rules.py: transactions that really overlap on the job item are cancelled
as DynamoDB cancels them, and a share of the others is cancelled on purpose (TransactionConflict,
a seeded draw). Each image "calls the model" between its writes (a short sleep), so the job item
is busy as on AWS, not saturated. The job's counts, started calls and cost must come out exact.

`python -m bench.contention [--images N] [--workers W] [--rates 0.05,0.1,0.2]` prints one line
per rate (docs/aws-notes.md#n68-contention-on-the-job-item records a run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from bench.submit import _environment

CALLS = 2
ATTEMPT_USD = Decimal("0.0137")
FINISH_USD = Decimal("0.0421")


def _image(store: Any, job_id: str, image_id: str, pause_s: float, rng: random.Random) -> float:
    """One image's writes, with a model call's pause between them; the seconds its writes took."""
    from chalicelib.core.contracts import ImageStatus

    spent = 0.0

    def timed(call: Any) -> None:
        nonlocal spent
        started = time.perf_counter()
        assert call()
        spent += time.perf_counter() - started
        time.sleep(rng.uniform(0, pause_s))

    timed(lambda: store.start_image(job_id, image_id))
    timed(lambda: store.reserve_model_calls(job_id, image_id, CALLS, most=10**6))
    timed(lambda: store.add_cost(job_id, image_id, "attempt1", float(ATTEMPT_USD), model_calls=1))
    timed(lambda: store.reserve_extra_model_call(job_id, image_id, CALLS + 1, most=10**6))
    timed(
        lambda: store.set_image_status(
            job_id, image_id, ImageStatus.SUCCEEDED, outputs=[{"key": "r"}], model_calls=2, cost_usd=float(FINISH_USD)
        )
    )
    return spent


def run(images: int, workers: int, rate: float, pause_s: float = 0.2, seed: int = 1) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from backend.local import dynamodb_rules, moto_bounds
    from backend.resources import create_resources
    from chalicelib.core import contracts
    from chalicelib.store.jobs import JobStore, NewImage

    _environment()
    with mock_aws():
        create_resources(bucket=os.environ["BUCKET_NAME"], table=os.environ["JOBS_TABLE_NAME"])
        undo = moto_bounds.install_transactions()
        rules = dynamodb_rules.install_transaction_rules()
        try:
            store = JobStore(boto3.resource("dynamodb").Table(os.environ["JOBS_TABLE_NAME"]), rng=random.Random(seed))
            job_id = "20261207T220000Z-0123456789ab"
            store.put_job(
                job_id=job_id,
                owner="bench",
                model="stability-inpaint",
                settings={},
                images=[NewImage(f"{i:032x}", f"r{i}", f"uploads/b/{i}.png", f"{i}.png") for i in range(images)],
            )
            rules.conflict_randomly(rate, seed=seed)
            rngs = [random.Random(seed * 1000 + i) for i in range(images)]
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=workers) as pool:
                spent = list(pool.map(lambda i: _image(store, job_id, f"{i:032x}", pause_s, rngs[i]), range(images)))
            elapsed = time.perf_counter() - started
            rules.quiet()
            job = store.table.get_item(Key={"pk": f"JOB#{job_id}", "sk": "JOB"}, ConsistentRead=True)["Item"]
        finally:
            rules.undo()
            undo()
    exact = (
        job["counts"]["SUCCEEDED"] == images
        and job[contracts.JOB_CALLS_STARTED_ATTRIBUTE] == images * (CALLS + 1)
        and job[contracts.JOB_COST_ATTRIBUTE] == images * (ATTEMPT_USD + FINISH_USD)
    )
    c = store.contention
    return {
        "images": images,
        "workers": workers,
        "injectedRate": rate,
        "writes": c.calls,
        "cancelled": rules.stats["cancelled"],
        "injected": rules.stats["injected"],
        "realOverlaps": rules.stats["overlaps"],
        "retries": c.retries,
        "retriesPerImage": round(c.retries / images, 2),
        "retriedWrites": c.retried_calls,
        "worstAddedWaitS": round(c.worst_wait_s, 3),
        "meanAddedWaitPerImageS": round(c.total_wait_s / images, 3),
        "gaveUp": c.gave_up,
        "worstImageWritesS": round(max(spent), 3),
        "elapsedS": round(elapsed, 2),
        "exact": exact,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8, help="images at once (the deploy's default MaxConcurrency)")
    parser.add_argument("--rates", default="0.05,0.1,0.2", help="injected TransactionConflict rates")
    args = parser.parse_args(argv)
    ok = True
    for rate in (float(r) for r in args.rates.split(",")):
        result = run(args.images, args.workers, rate)
        ok = ok and result["exact"] and result["gaveUp"] == 0
        print(json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
