"""Frames: immutable images with a sequence number and capture times.

The monotonic capture time makes staleness and latency checkable whatever
the wall clock does (a Pi without an RTC steps its clock at boot when NTP
syncs); the wall time is what results report as `ts`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    seq: int
    image: np.ndarray
    captured_mono: float
    captured_wall: float

    @classmethod
    def capture(cls, seq: int, image: np.ndarray, at: tuple[float, float] | None = None) -> Frame:
        """Stamps an image taken from a source (now, or `at` = (monotonic, wall) time);
        the array is made read-only."""
        image.flags.writeable = False
        mono, wall = at or (time.monotonic(), time.time())
        return cls(seq, image, mono, wall)

    def age_ms(self, now_mono: float | None = None) -> float:
        return ((time.monotonic() if now_mono is None else now_mono) - self.captured_mono) * 1000
