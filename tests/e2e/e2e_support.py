"""Waiting on conditions, not on the clock, for the e2e tier (issue #28 point 7).

- `wait_until(condition, what)`: poll a condition every few milliseconds up to a deadline, and
  fail naming what was awaited (never a fixed sleep that hopes the thing happened).
- `Gate`: stands in for the Bedrock stand-in's latency sleep (`StandInBedrock.sleep`): every model
  call blocks in it until the test opens it, so "the batch is mid-flight" is a fact the test
  waits for, not a second of latency it hopes is long enough.
- `use_local_stack(local, monkeypatch)`: one LocalStack shared by the tests of a module
  (module-scoped fixture); each test gets the stack's environment and IAM names back, which the
  suite's per-test fixtures reset (tests/conftest.py: `_test_env`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import pytest

    from backend.local.stack import LocalStack

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 60.0, every_s: float = 0.02) -> T:
    """The condition's first truthy answer; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = condition()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout_s:.0f} s for {what}; last answer: {answer!r}")
        time.sleep(every_s)


class Gate:
    """A sleep that blocks until `open()`: assigned to `StandInBedrock.sleep` (with a latency_s
    above 0), each model call waits here. `arrived` counts the calls that reached it."""

    LIMIT_S = 120.0  # a gate left closed by a failing test releases its callers after this long

    def __init__(self) -> None:
        self.arrived = 0
        self._opened = threading.Event()
        self._changed = threading.Condition()

    def __call__(self, seconds: float) -> None:
        with self._changed:
            self.arrived += 1
            self._changed.notify_all()
        self._opened.wait(self.LIMIT_S)

    def wait_for_arrivals(self, count: int, timeout_s: float = 60.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.arrived >= count, timeout_s):
                raise AssertionError(f"waited {timeout_s:.0f} s for {count} model call(s) to start: {self.arrived}")

    def open(self) -> None:
        self._opened.set()


def use_local_stack(local: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """Point this test at a LocalStack started for the whole module: its variables (credentials,
    endpoint, table, state machine; the suite resets them per test), fresh clients, and the IAM
    guard evaluating for its names."""
    import boto3

    from backend.local import iam
    from chalicelib.store import clients as aws

    for name, value in local.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    aws.reset()
    guard = iam.installed()
    if guard is not None:
        monkeypatch.setattr(guard, "deployment", iam.local_deployment(local.stage, local.region))
    return local
