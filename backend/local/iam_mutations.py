"""Mutation run of the IAM declarations: remove each declared permission unit in turn and expect a
test to fail (`make iam-mutations`; docs/reliability.md has the last table).

    python -m backend.local.iam_mutations record            # the functional + e2e suites, recording
    python -m backend.local.iam_mutations run [--per-unit 2] # each unit removed, its tests re-run

`record` runs the suites once with $BACKDROP_IAM_RECORD: tests/conftest.py writes, for each unit
(`finalize:table_actions:Query`, `start_workflow:grants:stop-workflow`, `prepare:s3_read:uploads/`),
the tests whose AWS calls it allowed, and each test's duration. `run` then removes one unit
($BACKDROP_IAM_MUTATION, read by the guard in backend/local/iam.py) and re-runs the quickest tests
that needed it with -x: a failure kills the mutant; none is SURVIVED (another unit allows the same
calls: one of them is redundant); a unit no test needed is UNUSED (unnecessary, or untested).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.local.iam import MUTATION_ENV, declared_units
from chalicelib.core.functions import FUNCTIONS

RECORD_ENV = "BACKDROP_IAM_RECORD"
DEFAULT_RECORD = Path("test-artifacts/iam-usage.json")
SUITES = ("tests/functional", "tests/e2e")
# the browser test drives a real Chromium against the local stack (minutes, and not about IAM)
IGNORED = ("tests/e2e/test_browser.py",)


@dataclass(frozen=True)
class Outcome:
    function: str
    unit: str  # kind:value
    verdict: str  # KILLED / SURVIVED / UNUSED
    test: str  # the failing test, or what was tried
    seconds: float


def _pytest(args: list[str], env: dict[str, str], timeout_s: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)


def record(path: Path, timeout_s: int) -> None:
    """The suites, each in its own process at the same time, each recording; then merged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ignores = [f"--ignore={p}" for p in IGNORED]
    parts = [path.with_suffix(f".{i}.json") for i in range(len(SUITES))]

    def one(suite: str, part: Path) -> None:
        env = {**os.environ, RECORD_ENV: str(part.resolve())}
        env.pop(MUTATION_ENV, None)
        done = _pytest([suite, *ignores], env, timeout_s)
        part.with_suffix(".log").write_text(done.stdout + done.stderr)  # the whole run, to read its failures
        print(f"{suite}: {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]}")

    with ThreadPoolExecutor(len(SUITES)) as pool:
        list(pool.map(one, SUITES, parts))
    merged: dict[str, Any] = {"units": {}, "durations": {}}
    for part in parts:
        recorded = json.loads(part.read_text())
        for unit, tests in recorded["units"].items():
            merged["units"][unit] = sorted({*merged["units"].get(unit, []), *tests})
        merged["durations"].update(recorded["durations"])
    path.write_text(json.dumps(merged, indent=1))


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED tests/", "ERROR tests/")):
            return line.split(" ", 1)[1].split(" - ")[0]
    return "(the run failed without naming a test)"


def run(path: Path, per_unit: int, timeout_s: int, only: str | None, jobs: int = 1) -> list[Outcome]:
    recorded = json.loads(path.read_text())
    usage: dict[str, list[str]] = recorded["units"]
    durations: dict[str, float] = recorded["durations"]
    units = [
        (declared.name, kind, value)
        for declared in FUNCTIONS
        if not only or declared.name == only
        for kind, value in declared_units(declared)
    ]

    def one(name: str, kind: str, value: str) -> Outcome:
        unit = f"{name}:{kind}:{value}"
        tests = sorted(usage.get(unit, []), key=lambda t: durations.get(t, 1e9))[:per_unit]
        if not tests:
            outcome = Outcome(name, f"{kind}:{value}", "UNUSED", "no test needs it", 0.0)
        else:
            started = time.monotonic()
            done = _pytest(["-x", *tests], {**os.environ, MUTATION_ENV: unit}, timeout_s)
            seconds = round(time.monotonic() - started, 1)
            if done.returncode == 0:
                outcome = Outcome(name, f"{kind}:{value}", "SURVIVED", ", ".join(tests), seconds)
            else:
                outcome = Outcome(name, f"{kind}:{value}", "KILLED", _first_failure(done.stdout), seconds)
        print(f"{unit}: {outcome.verdict} {outcome.test} ({outcome.seconds}s)", flush=True)
        return outcome

    with ThreadPoolExecutor(jobs) as pool:  # pytest processes: the work is theirs
        return list(pool.map(lambda u: one(*u), units))


def table(outcomes: list[Outcome]) -> str:
    lines = ["| function | removed unit | verdict | failing test (or what was tried) |", "|---|---|---|---|"]
    lines += [f"| {o.function} | `{o.unit}` | {o.verdict} | `{o.test}` |" for o in outcomes]
    killed = sum(o.verdict == "KILLED" for o in outcomes)
    lines.append("")
    lines.append(
        f"{killed} of {len(outcomes)} units killed, {sum(o.verdict == 'SURVIVED' for o in outcomes)} survived, "
        f"{sum(o.verdict == 'UNUSED' for o in outcomes)} unused."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.local.iam_mutations", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["record", "run", "all"])
    parser.add_argument("--record-file", type=Path, default=DEFAULT_RECORD)
    parser.add_argument("--per-unit", type=int, default=2, help="the quickest N tests that needed the unit")
    parser.add_argument("--function", help="only this function's units")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once")
    parser.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args(argv)
    if args.command in ("record", "all"):
        record(args.record_file, args.timeout)  # failing tests still record what they used
    if args.command in ("run", "all"):
        text = table(run(args.record_file, args.per_unit, args.timeout, args.function, args.jobs))
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
