"""What the e2e tier waits with instead of the clock (issue #28 point 7): moto's Retry waits
recorded (sfn_hooks.RetryWaits), the local stack's deliveries waited for round by round
(loops.BackgroundLoop). No stack here: these run in milliseconds."""

from __future__ import annotations

import threading
import time

import pytest

from backend.local.loops import BackgroundLoop
from backend.local.sfn_hooks import RetryWaits, install_retry_waits


def test_retry_waits_are_recorded_and_slept_at_their_scale() -> None:
    slept: list[float] = []
    none = RetryWaits(scale=0, sleep=slept.append)
    none(4.0)
    none(0.5)
    assert list(none.waits) == [4.0, 0.5] and none.count == 2 and slept == []
    tenth = RetryWaits(scale=0.1, sleep=slept.append)
    tenth(4.0)
    assert slept == [pytest.approx(0.4)] and list(tenth.waits) == [4.0]


def test_a_held_wait_blocks_until_released_and_wait_for_names_what_it_waited_for() -> None:
    waits = RetryWaits(scale=0)
    waits.hold()
    done = threading.Event()
    worker = threading.Thread(target=lambda: (waits(2.0), done.set()), daemon=True)
    worker.start()
    waits.wait_for(1, 10, "the first retry")  # requested (and recorded) before it blocks
    assert not done.wait(0.2), "a held wait returned before release()"
    waits.release()
    assert done.wait(10)
    with pytest.raises(AssertionError, match="waited 0 s for a second retry: 1 of 2"):
        waits.wait_for(2, 0.05, "a second retry")


def test_each_wait_is_recorded_with_the_errors_its_retrier_names() -> None:
    """The waits a test asserts are its step's: a retrier's own ErrorEquals, read from moto's
    RetrierDecl that asks for the wait."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

    waits = RetryWaits(scale=0)

    class Retrier:  # what moto's RetrierDecl holds; its _eval_body is the caller of the sleep
        error_equals = ErrorEqualsDecl([CustomErrorName("WebhookRetry")])

        def _eval_body(self) -> None:
            waits(8.0)

    Retrier()._eval_body()
    waits(1.0)  # from anywhere else: no errors
    assert list(waits.asked) == [(("WebhookRetry",), 8.0), ((), 1.0)]
    assert waits.waits_for("WebhookRetry") == [8.0] and waits.waits_for("StorageBusy") == []


def test_moto_retriers_sleep_goes_to_the_recorder_until_undone() -> None:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    original = retrier_decl.time
    waits = RetryWaits(scale=0)
    undo = install_retry_waits(waits)
    try:
        retrier_decl.time.sleep(30.0)  # what the interpreter calls between attempts
        assert list(waits.waits) == [30.0]
    finally:
        undo()
    assert retrier_decl.time is original


def test_next_round_waits_for_a_round_that_began_after_the_call() -> None:
    stop = threading.Event()
    began: list[float] = []
    loop = BackgroundLoop("test", 30.0, lambda: began.append(time.monotonic()), stop)  # a long interval
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        while loop.rounds < 1:
            time.sleep(0.005)
        asked = time.monotonic()
        loop.next_round(10)  # wakes the loop: no 30 s interval to sit out
        assert loop.rounds >= 2 and began[-1] >= asked
        loop.pause()
        rounds = loop.rounds
        with pytest.raises(AssertionError, match="test loop is paused"):
            loop.next_round(1)
        loop.wake()
        time.sleep(0.05)
        assert loop.rounds == rounds, "a paused loop ran a round"
        loop.resume()
        loop.next_round(10)
        assert loop.rounds > rounds
    finally:
        stop.set()
        loop.wake()
        thread.join(5)
