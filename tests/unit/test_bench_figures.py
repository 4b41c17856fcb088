"""The arithmetic behind the benchmarks' PASS/MISS rows: a wrong formula would print a PASS that
means nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench import __main__ as bench_main
from bench.cost import STANDARD_PER_TRANSITION, lambda_ms, price, transitions
from bench.scale import JobRun
from bench.throughput import max_concurrency


def test_billed_transitions_are_states_entered_plus_task_retries() -> None:
    events = {
        "ExecutionStarted": 1,
        "TaskStateEntered": 4,
        "PassStateEntered": 2,
        "ChoiceStateEntered": 1,
        "TaskScheduled": 7,  # 3 retries of the 4 tasks
        "TaskSucceeded": 4,
        "ExecutionSucceeded": 1,
    }
    assert transitions(events) == 4 + 2 + 1 + 3
    assert transitions({"TaskStateEntered": 2, "TaskScheduled": 2}) == 2  # no retry, none added


def _cost_run() -> dict[str, object]:
    """Six images: 8 parent transitions (the job's), 48 children's (8 per image)."""
    return {
        "parent_events": {"TaskStateEntered": 8},
        "child_events": {"TaskStateEntered": 48},
        "lambda_invocations": {"finalize": 6, "report": 1},
        "lambda_billed_ms": {"finalize": 12_000, "report": 500},  # wall time on a loaded machine
        "lambda_cpu_ms": {"finalize": 3_000, "report": 100},
        "s3_requests": {},
        "model_calls": 12,
        "rekognition_images": 6 * 3 + 6,  # 3 checks per result, DetectLabels per upload
        "estimate_usd": 0.5,
    }


def test_the_cost_prices_the_jobs_transitions_once_and_rekognition_per_image() -> None:
    cost = price(_cost_run(), images=6)
    # 8 for the job + 8 per image x 1,000 (not 56 per six images scaled to 1,000)
    assert cost["orchestration_standard"] == pytest.approx((8 + 8 * 1000) * STANDARD_PER_TRANSITION)
    assert cost["rekognition"] == pytest.approx(4 * 1000 * 0.001)  # 4 images analysed per photo, $0.001 each
    assert cost["estimate"] == pytest.approx(0.5 / 6 * 1000)


def test_cpu_bound_steps_are_priced_from_cpu_time_the_others_from_billed_time() -> None:
    assert lambda_ms(_cost_run()) == {"finalize": 3_000, "report": 500}


def test_max_concurrency_keeps_the_quota_busy_with_headroom() -> None:
    # 120 calls/min, 2 calls per image = 1 image/s; an image planned at 2 x 0.4 + 1.0 = 1.8 s
    # -> 1.8 in flight, +25 %
    assert max_concurrency(120, 2, call_s=0.4, lambda_s=1.0) == 3
    assert max_concurrency(600, 2, call_s=4.0, lambda_s=2.0) == 63  # 5 images/s x 10 s x 1.25 = 62.5
    assert max_concurrency(1, 2, call_s=0.0, lambda_s=0.01) == 1  # never zero


def _run(samples: list[tuple[int, float]], images: int = 10_000) -> JobRun:
    return JobRun(images, 1.0, 100.0, 90.0, "COMPLETED", {"SUCCEEDED": images}, samples)


def test_flat_memory_is_a_slope_near_zero_after_the_first_tenth() -> None:
    warmup = [(0, 300.0), (500, 340.0)]  # the first 10 % may grow (caches, first clients)
    flat = [(done, 350.0 + (0.5 if done % 2000 else -0.5)) for done in range(1000, 10_001, 500)]
    assert abs(_run(warmup + flat).growth_kb_per_image()) < 1.0


def test_a_leak_of_40_kb_per_image_is_found() -> None:
    leaking = [(done, 300.0 + done * 40 / 1024) for done in range(0, 10_001, 250)]
    assert _run(leaking).growth_kb_per_image() == pytest.approx(40.0)


def test_the_report_after_the_last_image_is_not_growth_per_image_but_a_leak_still_is() -> None:
    flat = [(done, 350.0) for done in range(1000, 10_000, 500)]
    report = [(10_000, 530.0), (10_000, 540.0)]  # the job's report, written once at the end
    assert abs(_run(flat + report).growth_kb_per_image()) < 1.0
    leaking = [(done, 300.0 + done * 8 / 1024) for done in range(0, 10_000, 250)]
    assert _run(leaking + report).growth_kb_per_image() == pytest.approx(8.0)


def test_too_few_samples_give_no_slope_rather_than_a_pass() -> None:
    growth = _run([(9000, 300.0), (9_999, 300.0)]).growth_kb_per_image()
    assert growth != growth  # NaN: and NaN <= target is False, so the row says MISS


def test_a_benchmark_that_breaks_is_a_miss_and_the_others_still_run(monkeypatch, capsys) -> None:
    ran: list[str] = []

    def broken(row: Callable[..., None]) -> None:
        raise RuntimeError("the local stack did not start")

    def fine(row: Callable[..., None]) -> None:
        ran.append("cost")
        row("cost figure", "1", "-", None)

    monkeypatch.setattr("bench.throughput.run", broken)
    monkeypatch.setattr("bench.cost.run", fine)
    monkeypatch.setattr("bench.quiet_logs", lambda: None)
    monkeypatch.setattr(bench_main, "ROWS", [])
    assert bench_main.main(["--only", "throughput", "--only", "cost"]) == 1
    assert ran == ["cost"]
    table = capsys.readouterr().out.splitlines()
    broke = next(line for line in table if line.startswith("throughput (did not finish)"))
    assert "RuntimeError: the local stack did not start" in broke and broke.rstrip().endswith("MISS")


def test_stored_data_counts_what_moto_keeps_and_the_leak_budget_what_is_left(aws_mock: None) -> None:
    import boto3

    from bench.scale import stored_bytes

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="stored")
    before = stored_bytes()
    s3.put_object(Bucket="stored", Key="results/a.jpg", Body=b"x" * 50_000)
    grown = stored_bytes() - before
    # the object's 50 KB body is stored data (not counted as a leak), plus its key's bookkeeping
    assert 50_000 <= grown < 50_000 + 20_000


@pytest.mark.parametrize(
    ("calls", "handed_off", "verdict"),
    [({}, 1, False), ({"GetItem": 4, "PutItem": 2}, 1, True), ({"Query": 11}, 1, False), ({"Query": 40}, 0, None)],
)
def test_a_calls_row_misses_when_nothing_was_counted_or_too_much(
    calls: dict[str, int], handed_off: int, verdict: bool | None
) -> None:
    from bench.submit import calls_row

    rows: list[tuple[str, str, str, bool | None]] = []
    calls_row(lambda *r: rows.append(r), "DELETE", {"calls": calls, "handed_off": handed_off}, 10)
    assert [r[3] for r in rows] == [verdict]
