"""One quota model: the deploy's doctor, the throughput bench, the local stack and the ETA turn the
same quota into the same Map concurrency and pace (chalicelib/core/pace.py;
docs/aws-notes.md#n112-one-quota-model-per-model-requests-per-minute)."""

from __future__ import annotations

from backend import doctor
from backend.local.stack import LocalStack
from bench import throughput
from chalicelib.core import eta, pace

QUOTA = 120.0  # requests per minute of the one model both calls of an image go to
CALL_S = 6.0  # eta's assumed seconds per model call
IMAGE_S = 2 * CALL_S + pace.LAMBDA_SECONDS_PER_IMAGE  # 15 s: two calls and the Lambda steps


def test_the_doctor_the_bench_the_local_stack_and_the_eta_agree_on_one_quota() -> None:
    # Bedrock's quota is per model: two calls of one model per image spend two of its requests,
    # so 120 a minute is 60 images a minute, and 1 image/s × 15 s × 1.25 headroom = 19 in flight
    by_doctor = doctor.max_concurrency({"m": QUOTA}, [("m", CALL_S), ("m", CALL_S)], pace.LAMBDA_SECONDS_PER_IMAGE)
    by_bench = throughput.max_concurrency(QUOTA, calls=2, call_s=CALL_S, lambda_s=pace.LAMBDA_SECONDS_PER_IMAGE)
    local = LocalStack(images_per_minute=QUOTA, latency_s=CALL_S, max_concurrency=None).map_pace()
    assert by_doctor == by_bench == local.concurrency == 19
    # the ETA, which knows only the Map's concurrency, plans the quota's pace back from it (to within
    # the rounding up of one image in flight), not the 25 % faster pace of the headroom
    planned = eta.planned_images_per_minute(2.0, by_doctor)
    assert QUOTA / 2 <= planned < QUOTA / 2 * (by_doctor + 1) / by_doctor


def test_distinct_models_each_have_their_own_quota_and_the_tightest_binds() -> None:
    # 40 and 60 a minute on two models called once each: 40 images a minute, not 40 / 2
    assert doctor.max_concurrency({"a": 40, "b": 60}, [("a", CALL_S), ("b", CALL_S)]) == 13  # ceil(40/60 × 15 × 1.25)


def test_no_quota_read_leaves_the_default_concurrency_and_says_its_pace() -> None:
    unread = pace.quota_pace({}, [("m", CALL_S), ("m", CALL_S)])
    assert unread.concurrency == pace.DEFAULT_MAP_CONCURRENCY == eta.DEFAULT_MAP_CONCURRENCY
    assert unread.images_per_minute == 25.6  # 8 in flight / 1.25 × 60 / 15 s
    assert eta.planned_images_per_minute(2.0, eta.map_concurrency({})) == 25.6


def test_the_local_stack_keeps_a_concurrency_it_is_given() -> None:
    assert LocalStack(images_per_minute=QUOTA, max_concurrency=4).map_pace().concurrency == 4
    assert LocalStack(images_per_minute=None, max_concurrency=None).map_pace().concurrency == 8
