"""The Lambda runtime of a deploy, and the Python that runs chalice to give it.

Chalice cannot be told the runtime: it takes it from the interpreter that runs `chalice
deploy/package` (3.11 → python3.11, 3.12 → python3.12, ...;
docs/aws-notes.md#n78-lambda-python-runtimes-and-their-wheels). python3.11 runs on Amazon Linux 2,
past its end of life, so Backdrop's Lambdas are deployed with python3.12 or 3.13 (Amazon Linux
2023): the deploy runs chalice under such an interpreter and refuses, saying how to get one, when
it cannot find one.

Which interpreter runs chalice, first found:
1. BACKDROP_CHALICE_PYTHON: any Python 3.12/3.13 that has chalice and Backdrop's requirements;
2. `.venv-deploy/bin/python` in the checkout (`make deploy-env` creates it);
3. the Python running the deploy, if it is 3.12 or 3.13.

    python -m backend.runtime          # the interpreter chalice would run under, and its runtime
    python -m backend.runtime --find   # a Python 3.12/3.13 on this machine to make .venv-deploy with
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from backend.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_VENV: Final = ROOT / ".venv-deploy"
CHALICE_PYTHON_VARIABLE: Final = "BACKDROP_CHALICE_PYTHON"
# Amazon Linux 2023 runtimes (glibc 2.34); see RUNTIME_DEPRECATION in backend/doctor.py for their dates
SUPPORTED_RUNTIMES: Final = ("python3.12", "python3.13")
# chalice's own entry point (`chalice` the script is the same function); run with a chosen interpreter
_CHALICE_MAIN: Final = "import sys; from chalice.cli import main; sys.exit(main())"
_ASK_CHALICE: Final = "from chalice.config import Config; print(Config.create().lambda_python_version)"


def chalice_python() -> str:
    """The interpreter that will run chalice (the order is in the module's docstring)."""
    chosen = os.environ.get(CHALICE_PYTHON_VARIABLE)
    if chosen:
        return chosen
    deploy_env = DEPLOY_VENV / "bin" / "python"
    if deploy_env.exists():
        return str(deploy_env)
    return sys.executable


def chalice_command(python: str | None = None) -> list[str]:
    """`chalice` run by `python` (the deploy's chosen interpreter by default)."""
    return [python or chalice_python(), "-c", _CHALICE_MAIN]


@functools.cache
def lambda_runtime(python: str) -> str:
    """The runtime chalice picks under `python`, as chalice itself answers it there; "" when that
    interpreter cannot run chalice (then the answer says why)."""
    try:
        answer = subprocess.run([python, "-c", _ASK_CHALICE], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return ""
    return answer.stdout.strip() if answer.returncode == 0 else ""


def require_supported(python: str | None = None) -> str:
    """The runtime of this deploy, or a DeployError that says how to get a supported one."""
    python = python or chalice_python()
    runtime = lambda_runtime(python)
    if runtime in SUPPORTED_RUNTIMES:
        return runtime
    found = f"chalice under {python} would deploy {runtime}" if runtime else f"{python} cannot run chalice"
    raise DeployError(
        f"{found}; Backdrop's Lambdas need {' or '.join(SUPPORTED_RUNTIMES)} (python3.11 runs on Amazon Linux 2, "
        "past its end of life). Chalice takes the runtime from the Python that runs it: run `make deploy-env` "
        f"(a Python 3.12/3.13 environment in {DEPLOY_VENV.name}/, used by the deploy from then on), or set "
        f"{CHALICE_PYTHON_VARIABLE} to a Python 3.12 or 3.13 that has chalice and Backdrop installed"
    )


def find_supported_python() -> str | None:
    """A Python 3.13 or 3.12 on this machine (PATH, then pyenv's versions), for `make deploy-env`."""
    candidates = [shutil.which(name) for name in ("python3.13", "python3.12")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for minor in ("3.13", "3.12"):
        candidates += sorted(glob.glob(str(pyenv / "versions" / f"{minor}.*" / "bin" / f"python{minor}")), reverse=True)
    for candidate in candidates:
        if not candidate:
            continue
        try:  # a pyenv shim exists on PATH but fails when that version is not selected
            answer = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
        except OSError:
            continue
        if answer.returncode == 0 and answer.stdout.strip() in (b"(3, 12)", b"(3, 13)"):
            return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--find"]:
        found = find_supported_python()
        if found is None:
            print("no Python 3.12 or 3.13 found (PATH, pyenv): install one", file=sys.stderr)
            return 1
        print(found)
        return 0
    python = chalice_python()
    try:
        print(f"{python}: {require_supported(python)}")
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
