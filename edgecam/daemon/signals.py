"""Signals delivered through a pipe, so no lock is ever taken inside a signal handler.

A Python signal handler runs in the main thread between two bytecodes, possibly
while that thread holds a lock: a handler that sets a threading.Event takes the
Event's lock and can deadlock the daemon (seen with a storm of SIGHUPs). Here the
C-level handler only writes the signal number to a pipe (signal.set_wakeup_fd),
and the main loop reads it when it is ready, in ordinary code.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterable


def _ignore(_signum: int, _frame: object) -> None:
    """Replaces the default action (SIGHUP and SIGTERM would kill us; SIGINT would raise)."""


class Signals:
    def __init__(self, signums: Iterable[int]) -> None:
        self._signums = tuple(signums)
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous = {signum: signal.signal(signum, _ignore) for signum in self._signums}
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def wait(self, timeout: float) -> list[int]:
        """The signals received, in order, waiting up to `timeout` seconds for one."""
        ready, _, _ = select.select([self._read], [], [], timeout)
        if not ready:
            return []
        received: list[int] = []
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._read, 512):
                received.extend(data)
        return [signum for signum in received if signum in self._signums]

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        os.close(self._read)
        os.close(self._write)
