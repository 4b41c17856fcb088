"""Waiting on conditions, not on the clock, for the e2e tier (issue #28 point 7).

- `wait_until(condition, what)`: poll a condition every few milliseconds up to a deadline, and
  fail naming what was awaited (never a fixed sleep that hopes the thing happened).
- `Gate`: stands in for the Bedrock stand-in's latency sleep (`StandInBedrock.sleep`): every model
  call blocks in it until the test opens it, so "the batch is mid-flight" is a fact the test
  waits for, not a second of latency it hopes is long enough.
- `shared_local_stack(stage)` and `on_shared_stack(local, monkeypatch)`: one LocalStack shared by
  the tests of a module (a module-scoped fixture); each test gets the stack's environment and IAM
  names back, which the suite's per-test fixtures reset (tests/conftest.py: `_test_env`), and the
  stack's background deliveries run only while a test holds it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

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


def wait_until_executions_ended(local: LocalStack, timeout_s: float = 60.0) -> None:
    """Every execution of the stack's state machine has ended (a job's status is final before its
    execution's last states, the notification and the webhook, have run)."""
    sfn = local.client("stepfunctions")
    machine = local.outputs["state_machine_arn"]

    def running() -> list[str]:
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine, statusFilter="RUNNING")
        return [e["name"] for page in pages for e in page["executions"]]

    wait_until(lambda: not running(), "every execution to end", timeout_s)


@contextlib.contextmanager
def shared_local_stack(stage: str, **options: Any) -> Iterator[LocalStack]:
    """A LocalStack for the tests of one module (a module-scoped fixture): Retry waits recorded,
    not slept, and its background deliveries paused until a test takes it (`on_shared_stack`),
    so that nothing runs between tests under the suite's per-test settings."""
    from backend.local.stack import LocalStack

    local = LocalStack(api_port=0, stage=stage, retry_time_scale=0, **options).start()
    try:
        local.pause_deliveries()
        yield local
    finally:
        local.stop()


@contextlib.contextmanager
def on_shared_stack(local: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """This test on the module's stack: its variables (credentials, endpoint, table, state
    machine; the suite resets them per test), fresh clients, the IAM guard evaluating for its
    names, its deliveries running. On the way out the test's executions must have ended (their
    Lambdas would otherwise run between tests) and the deliveries are paused again."""
    import boto3

    from backend.local import iam
    from backend.local.sfn_hooks import interpreter_threads, wait_until_interpreter_idle
    from chalicelib.store import clients as aws

    assert local.aws_side_intact(), (
        f"another LocalStack started since the shared stack {local.stage!r} (a start resets moto's state in this "
        "process): start it before the first test on the shared stack, or share no stack in this module"
    )
    for name, value in local.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    aws.reset()
    guard = iam.installed()
    restore = guard.use(iam.local_deployment(local.stage, local.region)) if guard is not None else None
    earlier = interpreter_threads()  # another file's, in a pytest-xdist worker that runs several
    local.resume_deliveries()
    try:
        yield local
    finally:
        try:
            wait_until_interpreter_idle(started_before=earlier)
        finally:
            local.pause_deliveries()
            if restore is not None:
                restore()
