"""The local stack's background deliveries, each a thread that runs one piece of work on an
interval, as AWS runs it on its own: Lambda's polling of the DynamoDB stream, EventBridge's
execution events to the reconciler, SNS's email to the inbox (backend/local/stack.py).

Each counts its rounds, so a test waits for the next round to have run (`next_round`, the
stack's `settle`) instead of sleeping past the interval and hoping it did; and each can be paused
between rounds (tests that share one stack pause it between tests)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("backdrop.local")


class BackgroundLoop:
    """`work()` every `every_s` until `stop`, counting rounds; `pause()` holds it between rounds."""

    def __init__(self, name: str, every_s: float, work: Callable[[], Any], stop: threading.Event) -> None:
        self.name = name
        self.every_s = every_s
        self.work = work
        self.stop = stop
        self.rounds = 0
        self._running = False
        self._paused = False
        self._changed = threading.Condition()
        self._wake = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with self._changed:  # the check and the start are one step: pause() waits for a round it let begin
                go = self._running = not self._paused
            if go:
                try:
                    self.work()
                except Exception:  # delivered again on the next round: at least once
                    log.exception("%s failed; retrying", self.name)
                with self._changed:
                    self._running = False
                    self.rounds += 1
                    self._changed.notify_all()
            self._wake.wait(self.every_s)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def pause(self, timeout_s: float = 60.0) -> None:
        """No round begins until resume(); returns once the round under way (if any) has ended."""
        with self._changed:
            self._paused = True
            if not self._changed.wait_for(lambda: not self._running, timeout_s):
                raise AssertionError(
                    f"the local stack's {self.name} loop did not finish its round within {timeout_s:.0f} s"
                )

    def resume(self) -> None:
        with self._changed:
            self._paused = False
        self._wake.set()

    def next_round(self, timeout_s: float) -> None:
        """Wake the loop now and block until a round that began after this call has ended;
        AssertionError naming the loop after `timeout_s` (or if it is paused or stopped)."""
        with self._changed:
            if self._paused:
                raise AssertionError(f"the local stack's {self.name} loop is paused")
            target = self.rounds + (2 if self._running else 1)  # a round under way began before the call
            self._wake.set()
            ended = self._changed.wait_for(lambda: self.rounds >= target or self.stop.is_set(), timeout_s)
            if not ended or self.rounds < target:
                state = "is stopped" if self.stop.is_set() else f"did not finish a round within {timeout_s:.0f} s"
                raise AssertionError(f"the local stack's {self.name} loop {state}")
