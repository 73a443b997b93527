"""Log the first of a repeated failure, then one in N.

A failure that repeats every frame (an unusable frame, an output that keeps
failing, a broker that stays away) must be visible at once but must not
flood the journal, which would rate-limit the service and drop lines.
"""

from __future__ import annotations


class LogThrottle:
    """`throttle()` is True for the 1st, the every-th, the 2·every-th… call since the last reset."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.count = 0

    def __call__(self) -> bool:
        self.count += 1
        return self.count == 1 or self.count % self.every == 0

    def reset(self) -> None:
        self.count = 0
