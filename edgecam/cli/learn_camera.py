"""`edgecam learn add LABEL --from-camera N`: the camera's frames to learn from.

The CLI reads them, not models/: a source is a floor above the model back-ends
(tests/unit/test_layers.py), and learning only needs the images.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgecam.config import CameraConfig
from edgecam.core.frames import IDENTITY, Dropped, Picture
from edgecam.errors import EdgecamError, SourceError

if TYPE_CHECKING:
    from edgecam.sources.base import Source


def capture_frames(camera: CameraConfig, input_size: tuple[int, int], count: int, *,
                   countdown_s: float = 3.0, spread_s: float = 3.0, say: Callable[[str], None],
                   stop: threading.Event | None = None) -> list[np.ndarray]:
    """`count` frames of the configured camera, spread evenly over `spread_s` seconds.

    The camera is opened (and only then is the countdown announced, so that a camera that
    cannot open is the one line said), read through a countdown (so that exposure settles
    and no stale buffered frame is used), then sampled; it is always closed, whatever happens.
    """
    from edgecam.sources import make_source  # OpenCV and camera modules only when capturing

    stop = stop or threading.Event()
    source = make_source(camera, input_size)
    frames: list[np.ndarray] = []
    try:
        source.open()
        say(f"{count} frame(s) from {camera.source} over {spread_s:g} s, starting in {countdown_s:g} s")
        started = time.monotonic()
        shown = 0
        while (left := countdown_s - (time.monotonic() - started)) > 0:
            second = int(left) + 1  # 3… 2… 1…
            if second != shown:
                say(f"{second}…")
                shown = second
            _next_frame(source, stop, frames, count)
        interval = spread_s / (count - 1) if count > 1 else 0.0
        due = time.monotonic()
        while len(frames) < count:
            frame = _next_frame(source, stop, frames, count)
            now = time.monotonic()
            if now >= due:
                frames.append(np.array(frame, copy=True))
                say(f"frame {len(frames)}/{count}")
                due += interval
    finally:
        source.close()
    return frames


def _next_frame(source: Source, stop: threading.Event, frames: list[np.ndarray], count: int) -> np.ndarray:
    if stop.is_set():
        raise EdgecamError("stopped")
    frame = source.read_picture(stop)
    while isinstance(frame, Dropped) and not stop.is_set():
        frame = source.read_picture(stop)
    if not isinstance(frame, Picture):
        raise SourceError(f"camera.source: {source.name}: no more frames after {len(frames)} of "
                          f"{count} (nothing was learned)")
    return frame.decode(IDENTITY)
