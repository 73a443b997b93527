"""How far behind live a stream is read: its timestamps against the monotonic clock.

The gap between the clock and a frame's timestamp is constant while the
reader keeps up (the stream's clock has its own origin) and grows while the
stream backs up upstream. The smallest gap seen is taken as "live". It is
the smallest over the last two windows, not since the start, so that a
camera clock drifting against the Pi's (tens of ppm) is forgotten, and a
jump in the timestamps larger than the stall timeout (a camera reboot, the
33-bit MPEG-TS wrap) starts again from scratch: a real backlog can only grow
by the time between two reads, and a read that slow is a stall.
"""

from __future__ import annotations

import math

WINDOW_S = 30.0


class LiveLag:
    def __init__(self, max_jump_s: float) -> None:
        self._max_jump_s = max_jump_s
        self._last = math.nan
        self._window_start = -math.inf
        self._current = self._previous = math.inf

    def update(self, timestamp_s: float, now: float) -> float:
        """How many milliseconds the frame stamped `timestamp_s`, read at `now`, is behind live."""
        gap = now - timestamp_s
        if abs(gap - self._last) > self._max_jump_s:
            self._window_start, self._current, self._previous = now, gap, math.inf
        elif now - self._window_start >= WINDOW_S:
            self._window_start, self._previous, self._current = now, self._current, gap
        else:
            self._current = min(self._current, gap)
        self._last = gap
        return max(0.0, gap - min(self._current, self._previous)) * 1000
