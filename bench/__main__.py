"""`python -m bench` (or `make bench`): every benchmark, one table with targets and PASS/MISS.

Figures are measured on this machine in this run; docs/performance.md records a run and explains
every MISS.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS: list[tuple[str, str, str, str]] = []


def row(name: str, value: str, target: str, ok: bool | None) -> None:
    ROWS.append((name, value, target, "PASS" if ok else ("MISS" if ok is not None else "-")))
    print(f"  {name}: {value}  (target {target})", flush=True)


def lambda_work() -> None:
    from bench.lambda_work import CASES

    for case in CASES:
        results = {}
        for which in ("floor", "backdrop"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.lambda_work", case, which],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            results[which] = json.loads(out.stdout.strip().splitlines()[-1])
        ratio = results["backdrop"]["ms"] / results["floor"]["ms"]
        row(
            f"prepare+finalize {case}",
            f"{results['backdrop']['ms']:.0f} ms vs floor {results['floor']['ms']:.0f} ms = {ratio:.2f}x",
            "<= 1.3x floor",
            ratio <= 1.3,
        )
        row(f"build-mask {case}", f"{results['backdrop']['build_mask_ms']:.0f} ms", "(not in the floor)", None)
        peak = results["backdrop"]["peak_mb"]
        row(f"peak RSS {case}", f"{peak:.0f} MB", "<= 512 MB", peak <= 512)


def cold_start() -> None:
    best = math.inf
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import app"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        line = [ln for ln in out.stderr.splitlines() if re.search(r"\|\s+app$", ln)][-1]
        best = min(best, int(line.split("|")[1]) / 1000)
    row("import app (cold start)", f"{best:.0f} ms", "<= 300 ms", best <= 300)


def package_size() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(
            ROOT,
            project,
            ignore=shutil.ignore_patterns(
                ".venv", ".git", "tests", "test-artifacts", "docs", "samples", "bench", "*.pyc"
            ),
        )
        started = time.monotonic()
        subprocess.run(
            [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "dev", str(Path(tmp) / "out")],
            cwd=project,
            capture_output=True,
            check=True,
            env={**__import__("os").environ, "AWS_DEFAULT_REGION": "us-east-1"},
        )
        size = (Path(tmp) / "out" / "deployment.zip").stat().st_size / 2**20
    row("chalice package zip", f"{size:.1f} MB ({time.monotonic() - started:.0f} s to build)", "<= 20 MB", size <= 20)


def main() -> int:
    import logging

    from bench import cost, cutout, quality, throughput, webapp

    for noisy in ("werkzeug", "moto"):  # the local stack's request logs
        logging.getLogger(noisy).setLevel(logging.ERROR)
    print("Backdrop benchmarks", flush=True)
    for name, bench in (
        ("per-image Lambda work", lambda_work),
        ("cold start", cold_start),
        ("package", package_size),
        ("throughput at the quota", throughput.run),
        ("orchestration cost", cost.run),
        ("result quality", quality.run),
        ("local cut-out engine", cutout.run),
        ("web app at 1,000 images", webapp.run),
    ):
        print(f"- {name}", flush=True)
        bench(row) if bench in (throughput.run, cost.run, quality.run, cutout.run, webapp.run) else bench()
    width = max(len(r[0]) for r in ROWS)
    print("\n" + "\n".join(f"{n:<{width}}  {v:<55} {t:<22} {s}" for n, v, t, s in ROWS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
