"""`python -m bench` (or `make bench`): every benchmark, one table with targets and PASS/MISS.

Figures are measured on this machine in this run; docs/performance.md records a run and explains
every MISS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS: list[tuple[str, str, str, str]] = []
ROW_BENCH: list[str] = []  # the benchmark each row of ROWS came from (for --json and --runs)
_CURRENT = [""]
ROWS_MARK = "BENCH-ROWS "  # a child benchmark's last line: its rows, as JSON
BENCHES = (
    "lambda-work",
    "cold-start",
    "package",
    "submit",
    "delete",
    "pick",
    "throughput",
    "cost",
    "quality",
    "scorecard",
    "edges",
    "cutout",
    "webapp",
    "webapp-browser",
    "local-memory",
    "pages",
    "scale",
    "provenance",
)


def row(name: str, value: str, target: str, ok: bool | None) -> None:
    ROWS.append((name, value, target, "PASS" if ok else ("MISS" if ok is not None else "-")))
    ROW_BENCH.append(_CURRENT[0])
    print(f"  {name}: {value}  (target {target})", flush=True)


def in_own_process(module: str, *args: str) -> None:
    """Run `python -m bench.<module> *args --rows-json` and take its rows: a benchmark that
    measures the process's memory must not see the heap the benchmarks before it left (the scale
    run's RSS growth read -16 KB/image after lambda-work's 2 GB, issue 28). Its progress lines
    pass through as they come."""
    child = subprocess.Popen(
        [sys.executable, "-m", f"bench.{module}", *args, "--rows-json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    rows: list[list[object]] = []
    for line in child.stdout:
        if line.startswith(ROWS_MARK):
            rows = json.loads(line[len(ROWS_MARK) :])
        else:
            print(line, end="", flush=True)
    if child.wait() != 0 and not rows:
        raise RuntimeError(f"bench.{module} ended with {child.returncode}")
    for name, value, target, ok in rows:
        row(str(name), str(value), str(target), None if ok is None else bool(ok))


def lambda_work() -> None:
    """Prepare and finalize against a bare Pillow floor, in CPU time (bench/lambda_work.py)."""
    from bench.lambda_work import CASES

    for case in CASES:
        out = subprocess.run(
            [sys.executable, "-m", "bench.lambda_work", case], cwd=ROOT, capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        finalize = r["finalize"] / r["floor_finalize"]
        total = r["total"] / r["floor_total"]
        spread = f"{r['finalize_ratios'][0]:.2f}-{r['finalize_ratios'][-1]:.2f}"
        large = case.startswith(("12MP", "24MP"))
        row(
            f"finalize {case} (CPU)",
            f"{r['finalize'] * 1000:.0f} ms vs floor {r['floor_finalize'] * 1000:.0f} ms = {finalize:.2f}x "
            f"(median of {r['samples']} interleaved; pairs {spread})",
            "<= 1.2x floor" if large else "<= 1.3x floor",
            finalize <= (1.2 if large else 1.3),
        )
        row(
            f"prepare+finalize {case} (CPU)",
            f"{r['total'] * 1000:.0f} ms vs floor {r['floor_total'] * 1000:.0f} ms = {total:.2f}x "
            f"({r['input_mb']:.1f} MB input)",
            "<= 1.3x floor",
            total <= 1.3,
        )
        row(
            f"peak memory {case}",
            f"{r['peak_mb']:.0f} MB of finalize's {r['memory_mb']} MB",
            "<= 70 % of the configured memory",
            r["peak_mb"] <= 0.7 * r["memory_mb"],
        )
        row(f"build-mask {case} (CPU)", f"{r['build_mask'] * 1000:.0f} ms", "(not in the floor)", None)


def cold_start() -> None:
    """The API's cold start as its package runs it (bench/cold_start.py): `import app`, then a
    poller's GET /jobs/{id} building its clients and reading the job from a stand-in endpoint.
    CPU time of fresh children, median of 7."""
    from bench import cold_start as probes

    medians, loaded = probes.measure(7)
    for name, _, _ in probes.PROBES:
        ms = medians[(name, "after")]
        row(f"{name} (cold, CPU)", f"{ms:.0f} ms, median of 7", f"<= {probes.TARGET_MS:.0f} ms", ms <= probes.TARGET_MS)
    row("import app loads pydantic/boto3/botocore/numpy/PIL", loaded, "[]", loaded == "[]")


def package_size() -> None:
    """deployment.zip as a stage's deploy builds it: the deploy's interpreter (backend/runtime.py)
    and the project's vendored wheels (backend/project.py), as the packaging test measures it."""
    from backend import project, runtime

    with tempfile.TemporaryDirectory() as tmp:
        stage_project = Path(tmp) / "project"
        shutil.copytree(
            ROOT,
            stage_project,
            ignore=shutil.ignore_patterns(
                ".venv",
                ".venv-deploy",
                "*.egg-info",
                ".git",
                ".deploy",
                "tests",
                "test-artifacts",
                "docs",
                "samples",
                "bench",
                "*.pyc",
                "deployments",
            ),
        )
        started = time.monotonic()
        project.vendor_wheels(stage_project)
        subprocess.run(
            [*runtime.chalice_command(), "package", "--stage", "dev", str(Path(tmp) / "out")],
            cwd=stage_project,
            capture_output=True,
            check=True,
            # chalice imports the app and zips the .pyc files that writes, as on a deployer's machine
            # and in the packaging test (whose environment has no PYTHONDONTWRITEBYTECODE either)
            env={
                **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        )
        size = (Path(tmp) / "out" / "deployment.zip").stat().st_size
    row(
        "chalice package zip",
        f"{size / 1e6:.1f} MB, {size / 2**20:.1f} MiB ({time.monotonic() - started:.0f} s to build)",
        f"< {project.PACKAGE_SIZE_LIMIT / 1e6:.0f} MB",
        size < project.PACKAGE_SIZE_LIMIT,
    )


def main(argv: list[str] | None = None) -> int:
    from bench import (
        cost,
        cutout,
        delete,
        edges,
        local_memory,
        pages,
        pick,
        provenance,
        quality,
        quiet_logs,
        scale,
        scorecard,
        submit,
        throughput,
        webapp,
        webapp_browser,
    )

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale-max",
        type=int,
        default=scale.DEFAULT_MAX,
        help=f"largest job of the scale benchmark (default {scale.DEFAULT_MAX:,}; 10,000 takes 40-60 min here)",
    )
    parser.add_argument(
        "--pages-max",
        type=int,
        default=pages.SIZES[-1],
        help=f"largest job of the pages benchmark (default {pages.SIZES[-1]:,}; ~11 min here, 1000: ~4 min)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=submit.IMAGES,
        help=f"images of the submit, delete and pick jobs (default {submit.IMAGES:,}; building one on moto takes "
        "minutes under load; the rows they judge do not depend on the size)",
    )
    parser.add_argument(
        "--only", action="append", choices=BENCHES, help="run only these benchmarks (repeatable): " + ", ".join(BENCHES)
    )
    parser.add_argument("--skip", action="append", choices=BENCHES, default=[], help="leave these out (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the rows and each benchmark's seconds to this file")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the table this many times, each in a fresh process, and print per row whether the verdicts "
        "agree (bench/stability.py); the other options apply to every run",
    )
    args = parser.parse_args(argv)
    if args.runs > 1:
        from bench import stability

        return stability.main(args.runs, _without_runs(argv if argv is not None else sys.argv[1:]))
    quiet_logs()
    benches = {
        "lambda-work": lambda_work,
        "cold-start": cold_start,
        "package": package_size,
        "submit": lambda: (submit.run(row, args.images), submit.run_refusal(row)),
        "delete": lambda: delete.run(row, args.images),
        "pick": lambda: pick.run(row, args.images),
        "throughput": lambda: throughput.run(row),
        "cost": lambda: cost.run(row),
        "quality": lambda: quality.run(row),
        "scorecard": lambda: scorecard.run(row),
        "edges": lambda: edges.rows(row),
        "cutout": lambda: cutout.run(row),
        "webapp": lambda: webapp.run(row),
        "webapp-browser": lambda: webapp_browser.run(row),
        "local-memory": lambda: local_memory.run(row),
        "pages": lambda: pages.run(row, args.pages_max),
        "scale": lambda: in_own_process("scale", "--max", str(args.scale_max)),
        "provenance": lambda: provenance.run(row),
    }
    print(
        f"Backdrop benchmarks (scale up to {args.scale_max:,} images; --scale-max 10000 for the full run)", flush=True
    )
    failed = []
    seconds: dict[str, float] = {}
    load = [os.getloadavg()[0]]
    for name in [n for n in args.only or BENCHES if n not in args.skip]:
        print(f"- {name} (load average {os.getloadavg()[0]:.1f})", flush=True)
        _CURRENT[0] = name
        started = time.monotonic()
        try:
            benches[name]()
        except Exception as exc:  # one benchmark that breaks is a MISS, and the others still run
            traceback.print_exc()
            row(f"{name} (did not finish)", f"{type(exc).__name__}: {str(exc)[:60]}", "finishes", False)
            failed.append(name)
        seconds[name] = time.monotonic() - started
        load.append(os.getloadavg()[0])
    width = max(len(r[0]) for r in ROWS)
    print("\n" + "\n".join(f"{n:<{width}}  {v:<70} {t:<22} {s}" for n, v, t, s in ROWS))
    print(
        f"\n{sum(seconds.values()):.0f} s in all (slowest: "
        + ", ".join(f"{n} {s:.0f} s" for n, s in sorted(seconds.items(), key=lambda kv: -kv[1])[:5])
        + f"); load average (1 min) {min(load):.1f}-{max(load):.1f}",
        flush=True,
    )
    if args.json:
        rows = [[bench, *r] for bench, r in zip(ROW_BENCH, ROWS, strict=True)]
        args.json.write_text(json.dumps({"rows": rows, "seconds": seconds, "load": load}, indent=1))
    return 1 if failed else 0


def _without_runs(argv: list[str]) -> list[str]:
    """The arguments a stability run passes on to each run: all but --runs and its value."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--runs":
            skip = True
        elif not arg.startswith("--runs="):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
