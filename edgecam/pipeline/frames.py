"""Frames: immutable values with a sequence number and arrival times, decoded only when needed.

The monotonic arrival time makes staleness and latency checkable whatever
the wall clock does (a Pi without an RTC steps its clock at boot when NTP
syncs); the wall time is what results report as `ts`. Arrival is when the
source handed the frame over (for a stream, when its packet was read), so
`latency_ms` includes any time the frame waited before it was decoded.

A frame's picture is a `Picture`: either already decoded (`Decoded`) or work
left for later (a compressed JPEG, a decoded H.264 picture not yet converted
and scaled). The inference thread calls `Frame.decode()` only for the frame
the model takes next, so a frame superseded in the slot costs nothing more.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from edgecam.models.base import Classification


class Fitter(Protocol):
    """Crops and scales an image to the model's input size (preprocess.FrameFitter)."""

    width: int
    height: int
    resize: str

    def __call__(self, frame: np.ndarray) -> np.ndarray: ...


class Picture(ABC):
    """What a source delivers: an image now, or the means to make one at the model's size."""

    #: the drop reason counted when a newer frame replaces this one before the model took it
    superseded_reason: ClassVar[str] = "undecoded"
    #: decode() only hands over an image made earlier (no decoding, no conversion)
    instant: ClassVar[bool] = False
    #: what the camera itself found in the picture (the AI Camera's sensor): no model runs on it
    classification: Classification | None = None

    @abstractmethod
    def decode(self, fit: Fitter) -> np.ndarray:
        """The picture as a BGR (or gray/BGRA) uint8 image fitted by `fit`; FrameFormatError if none."""


class Decoded(Picture):
    """An image that is already decoded and fitted (photos, OpenCV sources, picamera2's lores)."""

    superseded_reason = "overwritten"
    instant = True

    def __init__(self, image: np.ndarray) -> None:
        if isinstance(image, np.ndarray):
            image.flags.writeable = False
        self.image = image

    def decode(self, fit: Fitter) -> np.ndarray:
        return self.image


class Classified(Decoded):
    """A frame the camera classified itself (the AI Camera's IMX500), with the sensor's result."""

    def __init__(self, image: np.ndarray, classification: Classification) -> None:
        super().__init__(image)
        self.classification = classification


@dataclass(frozen=True)
class Dropped:
    """A frame a source read and dropped itself (an H.264 frame skipped to catch up with live)."""

    reason: str


@dataclass(frozen=True)
class Frame:
    seq: int
    picture: Picture
    captured_mono: float
    captured_wall: float
    fit: Fitter | None = None

    @classmethod
    def capture(cls, seq: int, image: np.ndarray | Picture, at: tuple[float, float] | None = None,
                fit: Fitter | None = None) -> Frame:
        """Stamps what a source delivered (now, or `at` = (monotonic, wall) time of its arrival)."""
        mono, wall = at or (time.monotonic(), time.time())
        picture = image if isinstance(image, Picture) else Decoded(image)
        return cls(seq, picture, mono, wall, fit)

    @property
    def superseded_reason(self) -> str:
        return self.picture.superseded_reason

    def decode(self) -> np.ndarray:
        """The image for the model: the deferred work happens here, once, on the inference thread."""
        return self.picture.decode(self.fit or IDENTITY)

    def age_ms(self, now_mono: float | None = None) -> float:
        return ((time.monotonic() if now_mono is None else now_mono) - self.captured_mono) * 1000


class _Identity:
    """No fitting: the picture at its own size (width and height 0 mean "as it is")."""

    width = height = 0
    resize = "stretch"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return frame


IDENTITY = _Identity()
