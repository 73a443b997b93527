"""The newest classified frame, handed from the inference thread to the status page's thread.

One slot, latest wins, no lock: `put` replaces one attribute with a new tuple
(atomic under the GIL) and `get` reads it once, so the inference thread never
waits for the web side, however slow its encoding or its viewers are. The
image is never copied or written to (frames are immutable: core.frames);
the web thread resizes and encodes it only while someone watches, at most
`web.preview_fps` times a second. Frames the page never showed are not
losses: only the newest one is ever wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassifiedImage:
    seq: int
    ts: float  # capture time, seconds since the epoch
    image: np.ndarray  # the whole frame, as the model's zones see it


class LatestFrame:
    def __init__(self) -> None:
        self._held: ClassifiedImage | None = None

    def put(self, seq: int, ts: float, image: np.ndarray) -> None:
        """The inference thread: the frame it just classified (one allocation, no lock)."""
        self._held = ClassifiedImage(seq, ts, image)

    def get(self) -> ClassifiedImage | None:
        return self._held

    def clear(self) -> None:
        """Forgets the frame (the page was turned off: nothing keeps its memory)."""
        self._held = None
