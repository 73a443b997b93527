"""Watches the board while the daemon runs: its figures in Stats, its troubles in the log.

The service loop calls `sample()` every half second; the board is read every
SAMPLE_S (not per frame: where sysfs lacks `get_throttled`, reading it is a
`vcgencmd` process). Each reading sets the `board` gauges (the stats message,
STATUS=, /metrics and Home Assistant take them from there). Under-voltage,
throttling and the soft temperature limit are each logged once when they
begin (a warning that says what to do) and once when they end (info), never
per reading: journald rate-limits a service that logs too much.

ARM frequency capping is reported but not logged: the firmware caps the
clock because of under-voltage or heat, which are logged with their remedy,
so a line of its own would only double each warning.

EDGECAM_BOARD_ROOT=DIR reads DIR/sys instead of /sys (and never runs
vcgencmd). It exists for tests, which point it at a fake sysfs tree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from edgecam.core.stats import Stats
from edgecam.daemon.board import FLAGS, BoardState, read_board

log = logging.getLogger(__name__)

BOARD_ROOT_ENV = "EDGECAM_BOARD_ROOT"
SAMPLE_S = 5.0

_COOLING = "improve cooling: a heatsink or fan"
#: the troubles logged when they begin and end → what to do about each
ADVICE = {
    "under_voltage": "the power supply is too weak and the Pi slows down; use the official "
                     "5 V / 3 A (Pi 4) or 5 A (Pi 5) supply",
    "throttled": f"the CPU runs slower, so fewer frames are classified; {_COOLING} "
                 "(or the power supply, if under-voltage is reported too)",
    "soft_temp_limit": f"the firmware lowers the CPU clock; {_COOLING}",
}


class BoardWatch:
    """Reads the board every SAMPLE_S into `stats`' board gauges and logs each trouble's changes."""

    def __init__(self, stats: Stats, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._root = Path(env.get(BOARD_ROOT_ENV) or "/")
        self._stats = stats
        self._due = float("-inf")
        self._began: dict[str, float] = {}  # trouble → when it began (monotonic seconds)
        self._first = True
        self._vcgencmd = True

    def sample(self, now: float) -> None:
        """Reads the board if SAMPLE_S have passed since the last reading (`now`: monotonic)."""
        if now < self._due:
            return
        self._due = now + SAMPLE_S
        state = read_board(self._root, vcgencmd=self._vcgencmd)
        if self._first and state.throttled_bits is None:
            # A board without the flags does not grow them: a vcgencmd that is missing or failed
            # (not a Pi, or the service's device policy) is not run every SAMPLE_S in vain.
            self._vcgencmd = False
        self.update(state, now)

    def update(self, state: BoardState, now: float) -> None:
        """Takes one reading: the gauges, then a line for each trouble that began or ended."""
        self._set_gauges(state)
        if self._first:
            self._first = False
            self._log_since_boot(state)
        active, at = state.active(), _at(state.temperature_c)
        for flag, advice in ADVICE.items():
            name, began = FLAGS[flag][1], self._began.get(flag)
            if active.get(flag) and began is None:
                self._began[flag] = now
                log.warning("board: %s began%s: %s", name, at, advice)
            elif not active.get(flag) and began is not None:
                del self._began[flag]
                log.info("board: %s ended after %s%s", name, _duration(now - began), at)

    def _set_gauges(self, state: BoardState) -> None:
        if state.temperature_c is None:
            self._stats.clear_gauge("temperature_c")
        else:
            self._stats.set_gauge("temperature_c", state.temperature_c)
        active = state.active()
        for flag in FLAGS:
            if flag in active:
                self._stats.set_gauge(flag, float(active[flag]))
            else:
                self._stats.clear_gauge(flag)

    @staticmethod
    def _log_since_boot(state: BoardState) -> None:
        """The firmware remembers what happened before edgecam started: say it once."""
        happened = state.since_boot()
        if happened:
            log.warning("board: since boot the Pi has had %s (get_throttled=%#x)",
                        ", ".join(FLAGS[flag][1] for flag in happened),
                        state.throttled_bits)


def _at(temperature_c: float | None) -> str:
    return f" at {temperature_c:.1f} °C" if temperature_c is not None else ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
