"""The API handler's cold start before and after a change: `import app` timed in fresh interpreters.

`python -m bench.cold_start [--before main] [--samples 9]` exports the `--before` commit's tree
(`git archive`) next to this working tree and, in one run, alternates fresh `python -c "import
app"` processes between the two (before, after, before, after, ...), so both see the same machine
load. It prints each side's median and best, the difference, what the first writing request then
pays once (importing chalicelib/catalogue/schemas.py: pydantic and the request models), and whether
`import app` loads pydantic at all (it must not: the polling routes never need it).

PASS when the after best is within 5 % (or 15 ms) of the before best (the best of several runs is
the least disturbed by other work on the machine; the medians are printed too) and `import app`
does not load pydantic.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"
SCHEMAS = (
    "import time, app; t = time.perf_counter(); from chalicelib.catalogue import schemas; "
    "schemas.JobRequest.model_json_schema(); print(time.perf_counter() - t)"
)
LOADS_PYDANTIC = "import sys, app; print(any(m == 'pydantic' or m.startswith('pydantic.') for m in sys.modules))"


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _seconds(tree: Path, code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="the commit to compare with (default main)")
    parser.add_argument("--samples", type=int, default=9)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = _export(args.before, Path(tmp))
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.samples):
            times["before"].append(_seconds(before_tree, PROBE))
            times["after"].append(_seconds(ROOT, PROBE))
        schemas_ms = [1000 * _seconds(ROOT, SCHEMAS) for _ in range(max(3, args.samples // 3))]
        loads = subprocess.run(
            [sys.executable, "-c", LOADS_PYDANTIC], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    before, after = (min(times[k]) * 1000 for k in ("before", "after"))
    for side in ("before", "after"):
        ms = [t * 1000 for t in times[side]]
        print(f"import app, {side:6}: median {statistics.median(ms):6.1f} ms, best {min(ms):6.1f} ms ({len(ms)} runs)")
    print(f"difference of the bests: {after - before:+.1f} ms ({100 * (after - before) / before:+.1f} %)")
    print(
        f"first writing request, once: import chalicelib.catalogue.schemas {statistics.median(schemas_ms):.1f} ms (median)"
    )
    print(f"import app loads pydantic: {loads}")
    ok = (after - before <= max(0.05 * before, 15.0)) and loads == "False"
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
