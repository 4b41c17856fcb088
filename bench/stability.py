"""`python -m bench --runs N` (or `make bench-stability`): the benchmark table N times, each run a
fresh `python -m bench --json` process (no heap or cache carried from one run to the next), with
the machine's load average noted before and after each run; then, per row, the verdict of every
run and whether they agree.

A row is known by its benchmark and its name (two benchmarks print "  writing the finished job
first"; a name repeated within one benchmark is numbered). A row absent from a run (its
benchmark broke) counts as a disagreement: a table that does not come back whole is not stable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ABSENT = "absent"
FIGURE = "-"


@dataclass
class Run:
    """One run of the table: its rows as (benchmark, name, value, target, verdict), the load
    average (1 min) before and after, and the seconds each benchmark took."""

    rows: list[tuple[str, str, str, str, str]]
    load_before: float = float("nan")
    load_after: float = float("nan")
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Agreement:
    bench: str
    name: str
    verdicts: tuple[str, ...]  # one per run, ABSENT where the run had no such row
    values: tuple[str, ...]

    @property
    def figure(self) -> bool:
        """A row with no target in every run: nothing to agree on."""
        return all(v == FIGURE for v in self.verdicts)

    @property
    def agree(self) -> bool:
        return len(set(self.verdicts)) == 1 and ABSENT not in self.verdicts


def keyed(rows: Iterable[tuple[str, str, str, str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """{(benchmark, name): (value, verdict)}, a name repeated within a benchmark numbered #2, #3."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for bench, name, value, _target, verdict in rows:
        key, n = (bench, name.strip()), 1
        while key in out:
            n += 1
            key = (bench, f"{name.strip()} #{n}")
        out[key] = (value, verdict)
    return out


def aggregate(runs: Sequence[Sequence[tuple[str, str, str, str, str]]]) -> list[Agreement]:
    """Per row (in the order rows first appear across the runs), every run's verdict and value."""
    tables = [keyed(rows) for rows in runs]
    order: dict[tuple[str, str], None] = {}
    for table in tables:
        order.update(dict.fromkeys(table))
    return [
        Agreement(
            bench,
            name,
            tuple(t[(bench, name)][1] if (bench, name) in t else ABSENT for t in tables),
            tuple(t[(bench, name)][0] if (bench, name) in t else "" for t in tables),
        )
        for bench, name in order
    ]


def summary(agreements: Sequence[Agreement]) -> tuple[int, int]:
    """(rows with a target whose verdicts agree in every run, rows with a target)."""
    judged = [a for a in agreements if not a.figure]
    return sum(a.agree for a in judged), len(judged)


def markdown(agreements: Sequence[Agreement], runs: Sequence[Run]) -> str:
    """The stability table as docs/performance.md shows it (rows with a target only)."""
    head = "| row | " + " | ".join(f"run {i + 1} (load {r.load_before:.1f})" for i, r in enumerate(runs)) + " | agree |"
    lines = [head, "|" + "---|" * (len(runs) + 2)]
    for a in agreements:
        if a.figure:
            continue
        lines.append(f"| {a.name} | " + " | ".join(a.verdicts) + f" | {'yes' if a.agree else '**NO**'} |")
    return "\n".join(lines)


def run_once(argv: Sequence[str]) -> Run:
    """`python -m bench --json FILE *argv` in a fresh process; its output goes to this one's."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        load_before = os.getloadavg()[0]
        subprocess.run([sys.executable, "-m", "bench", "--json", str(out), *argv], cwd=ROOT, check=False)
        load_after = os.getloadavg()[0]
        data: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"rows": [], "seconds": {}}
    rows = [tuple(r) for r in data["rows"]]
    return Run(rows, load_before, load_after, data.get("seconds", {}))  # type: ignore[arg-type]


def main(runs: int, argv: Sequence[str]) -> int:
    done: list[Run] = []
    started = time.monotonic()
    for i in range(runs):
        print(f"=== stability run {i + 1} of {runs} (load average {os.getloadavg()[0]:.1f}) ===", flush=True)
        done.append(run_once(argv))
    agreements = aggregate([r.rows for r in done])
    width = max((len(a.name) for a in agreements), default=10)
    print(f"\nStability: {runs} runs of `python -m bench {' '.join(argv)}` in {time.monotonic() - started:.0f} s")
    for i, r in enumerate(done):
        slowest = sorted(r.seconds.items(), key=lambda kv: -kv[1])[:4]
        print(
            f"  run {i + 1}: load {r.load_before:.1f} -> {r.load_after:.1f}, {sum(r.seconds.values()):.0f} s "
            f"(slowest: {', '.join(f'{n} {s:.0f} s' for n, s in slowest)})"
        )
    print()
    for a in agreements:
        if a.figure:
            continue
        print(f"{a.name:<{width}}  {'  '.join(f'{v:<6}' for v in a.verdicts)}  {'agree' if a.agree else 'DIFFER'}")
    agreed, judged = summary(agreements)
    print(f"\n{agreed} of {judged} rows with a target give the same verdict in every run\n")
    print(markdown(agreements, done))
    return 0 if agreed == judged else 1
