"""The frame slot between capture and inference: one frame, latest wins.

A queue would let frames pile up behind a slow model and latency would grow
without bound; one slot keeps only the newest frame, and every frame it
overwrites before inference took it is counted as a drop: `undecoded` when
its decoding had been left for later (and so never happened), `overwritten`
when it had been decoded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from edgecam.core.frames import Frame


class FrameSlot:
    def __init__(self, on_overwrite: Callable[[Frame], None]) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._on_overwrite = on_overwrite

    def put(self, frame: Frame) -> None:
        """Stores the newest frame; never blocks the capture thread for longer than the lock."""
        with self._cond:
            if self._frame is not None:
                self._on_overwrite(self._frame)
            self._frame = frame
            self._cond.notify_all()

    def take(self, timeout: float, *, notify: bool = True) -> Frame | None:
        """The newest frame not yet taken, waiting up to `timeout` seconds; None if none came.

        With `notify=False` a reader waiting in `wait_taken` is not woken yet: the caller
        wakes it with `notify_taken()` when it suits it (the inference thread does, right
        before invoke(), so the reader runs while the model does, not in its way).
        """
        with self._cond:
            if self._frame is None and timeout > 0:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            if notify:
                self._cond.notify_all()
            return frame

    def waiting(self) -> bool:
        """Whether a frame is in the slot now: a hint read without the lock (the capture thread
        may put one the next moment), for the inference thread to know if one waits for it."""
        return self._frame is not None

    def notify_taken(self) -> None:
        """Wakes whoever waits in `wait_taken` (after a `take(notify=False)`)."""
        with self._cond:
            self._cond.notify_all()

    def wait_taken(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the slot to be empty; whether it is.

        For sources read on demand (files and images at `realtime: false`): the next frame
        is read only once inference took the last, so none is read just to be dropped.
        """
        with self._cond:
            if self._frame is not None:
                self._cond.wait(timeout)
            return self._frame is None

    def clear(self) -> None:
        with self._cond:
            self._frame = None
