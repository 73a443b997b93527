"""Fault injection for tests, enabled only by environment variables that tests set.

EDGECAM_FAULT_HANG_AFTER=N makes the inference thread hang after N classified
frames (until the daemon is stopped), the way a stuck interpreter would: the
watchdog pings stop and systemd restarts the service. Unset, it costs one
integer comparison per frame.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

HANG_AFTER_ENV = "EDGECAM_FAULT_HANG_AFTER"


class Faults:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        value = env.get(HANG_AFTER_ENV, "")
        self._hang_after = int(value) if value.isdigit() else None
        self._classified = 0

    def after_classified(self, stop: threading.Event,
                         before_hang: Callable[[], None] | None = None) -> None:
        """Hangs until `stop` after the Nth frame, first calling `before_hang` (if any)."""
        if self._hang_after is None:
            return
        self._classified += 1
        if self._classified == self._hang_after:
            log.warning("fault injected (%s): inference hangs now", HANG_AFTER_ENV)
            if before_hang is not None:
                before_hang()
            stop.wait()
