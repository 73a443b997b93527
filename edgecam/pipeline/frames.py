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

import cv2
import numpy as np

from edgecam.models.base import Classification
from edgecam.models.preprocess import FrameFormatError

#: a thumbnail is its picture shrunk by at most this factor (libjpeg's smallest DCT scale)
THUMBNAIL_SCALE = 8
_THUMBNAIL_MIN_SIDE = 60  # ... and shrunk less where that would leave fewer pixels on a side


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

    def thumbnail(self) -> np.ndarray:
        """The whole picture, small and gray, for the motion gate (pipeline.motion): decoded
        whole here; the pictures of the sources override it with a cheaper way."""
        return gray_thumbnail(self.decode(IDENTITY))


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

    def thumbnail(self) -> np.ndarray:
        return gray_thumbnail(self.image)


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


def thumbnail_scale(width: int, height: int) -> int:
    """The factor a width x height picture is shrunk by for its thumbnail (1..THUMBNAIL_SCALE)."""
    return max(1, min(THUMBNAIL_SCALE, min(width, height) // _THUMBNAIL_MIN_SIDE))


def gray_thumbnail(image: np.ndarray) -> np.ndarray:
    """A decoded image (BGR, BGRA or gray) as gray, shrunk by averaging thumbnail_scale() pixels
    a side: the averaging takes a sensor's noise down as libjpeg's 1/8 scale does for a JPEG."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise FrameFormatError(f"unsupported frame {getattr(image, 'shape', type(image))}")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    height, width = image.shape
    scale = thumbnail_scale(width, height)
    if scale == 1:
        return image
    return cv2.resize(image, (width // scale, height // scale), interpolation=cv2.INTER_AREA)
