"""The interface every frame source implements, and the pacing they share.

A source is opened, read until it returns None (the end of a file, or a lost
camera or stream) and closed. The capture thread owns the life cycle:
stall detection, reconnects and backoff live there, so each source only
knows how to talk to its device.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from edgecam.core.frames import IDENTITY, Decoded, Dropped, Fitter, Picture


class Source(ABC):
    """A camera, stream or file; `read` returns its frames one at a time."""

    #: a human name for logs: the device, URL or path
    name: str
    #: a network stream (timed against the wall clock, read with network options)
    network: bool = False
    #: a camera or a stream, which may answer later (plugged in, booted, its ribbon reseated):
    #: the daemon starts and waits for it rather than refusing to start
    awaited: bool = False
    #: a file that ends (a video without `loop`): its end stops the daemon instead of a reconnect
    finite: bool = False
    #: read on demand: the next frame only once inference took the last (files and images
    #: at `realtime: false`); a camera or stream is read continuously, the newest frame wins
    on_demand: bool = False
    #: the seconds between frames this source is asked for (0: as fast as it comes)
    frame_interval_s: float = 0.0
    #: how far behind live the last frame read was (a live stream with timestamps), else None
    behind_ms: float | None = None

    @abstractmethod
    def open(self) -> None:
        """Opens the device; raises SourceError with one clear line when it cannot."""

    @abstractmethod
    def read(self, stop: threading.Event) -> np.ndarray | Picture | Dropped | None:
        """The next frame; None when the source ended or was lost. Returns early once `stop` is set.

        A decoded image (BGR, gray or BGRA uint8), or a Picture whose decoding waits until the
        model takes it, or Dropped for a frame the source read and threw away itself.
        """

    def read_picture(self, stop: threading.Event, fit: Fitter = IDENTITY) -> Picture | Dropped | None:
        """read(), with a decoded image wrapped as a Picture (fitted by `fit`): the one place that
        unpacks read()'s four kinds, so a reader handles three (a Picture, Dropped, the end)."""
        delivered = self.read(stop)
        return Decoded(fit(delivered)) if isinstance(delivered, np.ndarray) else delivered

    @abstractmethod
    def close(self) -> None:
        """Releases the device; safe to call more than once."""


class Pacer:
    """Releases frames at a fixed rate (still images, video files played in real time)."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps if fps > 0 else 0.0
        self._next = time.monotonic()

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        delay = self._next - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        # Do not try to catch up after a pause: a late frame sets the new schedule.
        self._next = max(self._next + self.interval, time.monotonic())
