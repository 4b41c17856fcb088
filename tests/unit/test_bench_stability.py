"""The benchmark rows that must be able to fail (issue 28.5): the stability verdicts across runs, the
throughput row's concurrency fixed from the quota, the scale row's interleaved CPU ratio and the
submit row's realistic AWS answers. No timing here: the arithmetic and the answers only."""

from __future__ import annotations

import pytest

from bench import __main__ as bench_main
from bench import stability
from bench.scale import JobRun, per_image_ratios
from bench.throughput import (
    CALLS_PER_IMAGE,
    LATENCY_S,
    QUOTA_CALLS_PER_MINUTE,
    max_concurrency,
    slowest_image_s,
)


def _rows(*verdicts: tuple[str, str, str]) -> list[tuple[str, str, str, str, str]]:
    return [(bench, name, "v", "t", verdict) for bench, name, verdict in verdicts]


def test_rows_that_agree_in_every_run_agree_and_a_flip_or_an_absence_does_not() -> None:
    runs = [
        _rows(
            ("scale", "CPU ratio", "PASS"), ("cost", "share", "MISS"), ("cost", "figure", "-"), ("pick", "x", "PASS")
        ),
        _rows(
            ("scale", "CPU ratio", "PASS"), ("cost", "share", "MISS"), ("cost", "figure", "-"), ("pick", "x", "MISS")
        ),
        _rows(("scale", "CPU ratio", "PASS"), ("cost", "figure", "-"), ("pick", "x", "PASS")),  # cost broke
    ]
    by_name = {a.name: a for a in stability.aggregate(runs)}
    assert by_name["CPU ratio"].agree and by_name["CPU ratio"].verdicts == ("PASS",) * 3
    assert not by_name["x"].agree  # PASS, MISS, PASS: a row that flips with the load
    assert by_name["share"].verdicts == ("MISS", "MISS", stability.ABSENT) and not by_name["share"].agree
    assert by_name["figure"].figure  # no target: nothing to agree on, not counted
    assert stability.summary(stability.aggregate(runs)) == (1, 3)


def test_the_same_name_in_two_benchmarks_or_twice_in_one_is_two_rows() -> None:
    run = _rows(("delete", "writing", "-"), ("pick", "writing", "-"), ("pick", "writing", "PASS"))
    names = [(a.bench, a.name) for a in stability.aggregate([run, run])]
    assert names == [("delete", "writing"), ("pick", "writing"), ("pick", "writing #2")]


def test_the_markdown_table_lists_rows_with_a_target_and_says_which_differ() -> None:
    runs = [_rows(("a", "r1", "PASS"), ("a", "fig", "-")), _rows(("a", "r1", "MISS"), ("a", "fig", "-"))]
    table = stability.markdown(stability.aggregate(runs), [stability.Run([], 3.0), stability.Run([], 9.5)])
    assert "run 1 (load 3.0)" in table and "run 2 (load 9.5)" in table
    assert "| r1 | PASS | MISS | **NO** |" in table and "fig" not in table


def test_a_stability_run_passes_every_option_but_runs_to_each_run() -> None:
    assert bench_main._without_runs(["--runs", "3", "--skip", "scale", "--runs=2", "--only", "cost"]) == [
        "--skip",
        "scale",
        "--only",
        "cost",
    ]


def test_the_throughput_rows_concurrency_comes_from_the_quota_not_from_a_measured_time() -> None:
    # 120 calls/min, 2 calls an image: 1 image/s; planned 2 x 0.25 s + 1.0 s = 1.5 s -> 1.875 -> 2
    concurrency = max_concurrency(QUOTA_CALLS_PER_MINUTE, CALLS_PER_IMAGE)
    assert concurrency == 2
    # 2 in flight keep 0.9 image/s only while an image takes at most 2.2 s: a pipeline that
    # doubles from the 1.2 s measured at load 7-10 no longer keeps the quota busy, so the row fails
    assert slowest_image_s(concurrency, QUOTA_CALLS_PER_MINUTE, CALLS_PER_IMAGE) == pytest.approx(2 / 0.9)
    assert max_concurrency(QUOTA_CALLS_PER_MINUTE, CALLS_PER_IMAGE, call_s=LATENCY_S, lambda_s=1.0) == concurrency


def _job(images: int, seconds: float, cpu: float) -> JobRun:
    return JobRun(images, 0.1, seconds, cpu, "COMPLETED", {"SUCCEEDED": images})


def test_the_scale_ratio_is_cpu_per_image_against_the_mean_of_the_interleaved_base_runs() -> None:
    # the 1,000-image job ran while the load was high (wall 1.5x), its CPU per image is the same
    top = _job(1000, 300.0, 100.0)
    bases = [_job(100, 20.0, 10.0), _job(100, 20.0, 10.0)]
    cpu, wall = per_image_ratios(top, bases)
    assert cpu == pytest.approx(1.0) and wall == pytest.approx(1.5)
    # a per-image cost that grows with the job shows in CPU time whatever the load
    cpu, _ = per_image_ratios(_job(1000, 200.0, 150.0), [_job(100, 30.0, 10.0), _job(100, 10.0, 10.0)])
    assert cpu == pytest.approx(1.5)


def test_the_submit_bench_answers_as_aws_does_for_a_job_whose_images_are_uploaded_and_labelled() -> None:
    """Before, the bench's answers were empty: the listing said every upload was missing (so the
    look-up stopped after a wave of batches) and no labels were parsed. Now boto3 parses a real
    listing and real items, and the service finds every upload and every label."""
    import boto3

    from bench import BENCH_OWNER
    from bench.submit import REALISTIC_LABELS, RealisticAnswers
    from chalicelib.core import contracts
    from chalicelib.jobs.service import ImageInput, JobService
    from chalicelib.store.jobs import JobStore

    refs = [contracts.image_ref_of(f"{i // 100:032x}", f"{i:032x}", "jpg") for i in range(250)]
    keys = [contracts.upload_key(BENCH_OWNER, ref) for ref in refs]
    answers = RealisticAnswers(keys, REALISTIC_LABELS)
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    s3, dynamodb = session.client("s3"), session.resource("dynamodb")
    for client in (s3, dynamodb.meta.client):
        client.meta.events.register("before-send.*.*", answers)
    store = JobStore(dynamodb.Table("backdrop-bench-jobs"))
    service = JobService(store, s3, "backdrop-bench-bucket", labels=None)  # type: ignore[arg-type]
    inputs = [ImageInput(ref, f"{i}.jpg", ("Person",), None) for i, ref in enumerate(refs)]
    missing, checked = service._missing_uploads(BENCH_OWNER, inputs)
    assert (missing, checked) == ([], 250)
    found = store.cached_labels_many(keys)
    assert len(found) == 250 and found[keys[0]] == REALISTIC_LABELS
    assert answers.calls == {"ListObjectsV2": 3, "BatchGetItem": 3}
