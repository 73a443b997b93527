"""Fault injection for tests, enabled only by environment variables that tests set.

EDGECAM_FAULT_HANG_AFTER=N makes the inference thread hang on its Nth progress report (a
classified frame; a still one or a wait on a source being handled counts too) until the
daemon is stopped, the way a stuck interpreter would: the watchdog pings stop and systemd
restarts the service. The daemon wraps the progress callable it hands the pipeline with it
(`wrap`), so inference knows nothing of it. Unset, the callable is passed on untouched.
"""

from __future__ import annotations

import logging
import os
import threading

from edgecam.core.protocols import Progress

log = logging.getLogger(__name__)

HANG_AFTER_ENV = "EDGECAM_FAULT_HANG_AFTER"


class Faults:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        value = env.get(HANG_AFTER_ENV, "")
        self._hang_after = int(value) if value.isdigit() else None
        self._reported = 0

    def wrap(self, progress: Progress, stop: threading.Event) -> Progress:
        """`progress`, or with a hang set, `progress` that hangs until `stop` on the Nth call."""
        if self._hang_after is None:
            return progress

        def reported() -> None:
            progress()
            self._reported += 1
            if self._reported == self._hang_after:
                log.warning("fault injected (%s): inference hangs now", HANG_AFTER_ENV)
                stop.wait()
        return reported
