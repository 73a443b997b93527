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
    def capture(cls, seq: int, image: np.ndarray) -> Frame:
        """Stamps an image just taken from a source; the array is made read-only."""
        image.flags.writeable = False
        return cls(seq, image, time.monotonic(), time.time())

    def age_ms(self, now_mono: float | None = None) -> float:
        return ((time.monotonic() if now_mono is None else now_mono) - self.captured_mono) * 1000
