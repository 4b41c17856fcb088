"""Benchmarks: scripts that print figures against targets (never timed tests)."""

from __future__ import annotations

import logging
import os


def quiet_logs() -> None:
    """The local stack's request logs and the steps' per-image log lines off (they would cost
    the run CPU and bury the figures). app.py sets its logger ("backdrop", which the steps'
    Powertools logger shares) to INFO when it is imported, so it is imported first."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    import app  # noqa: F401

    for noisy in ("werkzeug", "moto"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("backdrop").setLevel(logging.WARNING)
