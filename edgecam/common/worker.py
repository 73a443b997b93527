"""A named worker thread with one stop Event and a bounded join.

Every long-running thread of the daemon (capture, inference, the output
dispatcher, the socket server, MQTT, metrics) has the same life: started
once, told to stop through an Event (never a boolean flag), joined with a
timeout so a stuck thread cannot hang shutdown, and a warning naming it when
it does not stop in time (DESIGN.md, habit 1).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    """Runs `target(stop)` in a daemon thread called `name` until `stop` is set."""

    def __init__(self, name: str, target: Callable[[threading.Event], None]) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=target, args=(self.stopping,), name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Asks the thread to stop and waits up to `timeout` seconds; whether it stopped."""
        self.stopping.set()
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s thread did not stop within %.1f s", self.name, timeout)
            return False
        return True

    def is_alive(self) -> bool:
        return self._thread.is_alive()
