"""Signals through a pipe (edgecam/daemon/signals.py), with real signals sent to this process.

Every signal used here first gets a recording Python handler (a safety net: the
default action of SIGHUP or SIGUSR1 would end the test run), which also shows
whether Signals replaced it and whether close() put it back.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from edgecam.daemon.signals import Signals

USED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
WAIT_S = 10.0


@pytest.fixture
def recorded() -> Iterator[list[int]]:
    """Installs a recording handler for each signal used; restores the originals afterwards."""
    calls: list[int] = []
    originals = {signum: signal.signal(signum, lambda signum, frame: calls.append(signum))
                 for signum in USED}
    yield calls
    for signum, handler in originals.items():
        signal.signal(signum, handler)


def collect(signals: Signals, count: int) -> list[int]:
    """What wait() hands out until `count` signals came (or a wait found none)."""
    received: list[int] = []
    while len(received) < count and (batch := signals.wait(WAIT_S)):
        received.extend(batch)
    return received


def test_signals_arrive_in_order_through_wait(recorded: list[int]) -> None:
    signals = Signals([signal.SIGHUP, signal.SIGUSR1])
    try:
        for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGHUP, signal.SIGHUP, signal.SIGUSR1):
            os.kill(os.getpid(), signum)
        assert collect(signals, 5) == [signal.SIGHUP, signal.SIGUSR1, signal.SIGHUP, signal.SIGHUP,
                                       signal.SIGUSR1]
        assert signals.wait(0.05) == [], "each signal is handed out once"
    finally:
        signals.close()
    assert recorded == [], "while Signals was open, the previous handlers were not called"


def test_wait_times_out_with_nothing(recorded: list[int]) -> None:
    signals = Signals([signal.SIGHUP])
    try:
        assert signals.wait(0.05) == []
    finally:
        signals.close()


def test_signals_it_was_not_asked_for_are_not_handed_out(recorded: list[int]) -> None:
    signals = Signals([signal.SIGHUP])
    try:
        os.kill(os.getpid(), signal.SIGUSR2)  # handled by Python (the recorder), so it reaches the pipe
        os.kill(os.getpid(), signal.SIGHUP)
        assert collect(signals, 1) == [signal.SIGHUP]
        assert signals.wait(0.05) == []
    finally:
        signals.close()
    assert recorded == [signal.SIGUSR2], "a signal Signals does not take still goes to its own handler"


def test_close_restores_the_handlers_and_the_wakeup_fd(recorded: list[int]) -> None:
    before = {signum: signal.getsignal(signum) for signum in USED}
    wakeup_before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_before)
    signals = Signals([signal.SIGHUP, signal.SIGUSR1])
    assert signal.getsignal(signal.SIGHUP) is not before[signal.SIGHUP]
    assert signal.getsignal(signal.SIGUSR2) is before[signal.SIGUSR2], "only the signals asked for"
    signals.close()
    assert {signum: signal.getsignal(signum) for signum in USED} == before
    wakeup_after = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_after)
    assert wakeup_after == wakeup_before
    os.kill(os.getpid(), signal.SIGHUP)
    assert recorded == [signal.SIGHUP], "after close() the previous handler gets the signal again"


def test_signals_can_be_opened_again_after_close(recorded: list[int]) -> None:
    for _ in range(3):
        signals = Signals([signal.SIGUSR1])
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert collect(signals, 1) == [signal.SIGUSR1]
        finally:
            signals.close()
    assert recorded == []
