"""Benchmarks: scripts that print figures against targets (never timed tests)."""

from __future__ import annotations

import logging
import os

# The user the benchmarks act as: a Cognito sub is a UUID, and the API refuses any other
# (chalicelib/api/auth.py, docs/aws-notes.md#n86-whole-string-patterns-and-cognito-sub)
BENCH_OWNER = "0b5e7c1d-2f4a-4e6b-9c8d-1a2b3c4d5e6f"


def quiet_logs() -> None:
    """The local stack's request logs and the steps' per-image log lines off (they would cost
    the run CPU and bury the figures). app.py sets its logger ("backdrop", which the steps'
    Powertools logger shares) to INFO when it is imported, so it is imported first."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    import app  # noqa: F401

    for noisy in ("werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("backdrop").setLevel(logging.WARNING)
