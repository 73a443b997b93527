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

from edgecam.core.results import Classification

#: a rectangle of a frame: x, y, width, height as fractions of its width and height
Crop = tuple[float, float, float, float]
#: the crop of the whole frame (a result about the whole frame, a network on the whole sensor)
WHOLE: Crop = (0.0, 0.0, 1.0, 1.0)


class FrameFormatError(ValueError):
    """A frame that cannot be an image: empty, corrupt, or an unknown channel layout."""

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
    """What a source delivers: an image now, or the means to make one at the model's size.

    Who holds its memory, and for how long (picamera2's request.py writes down the same for
    its requests; here a picture never holds a camera's):

    - A source hands over only memory it owns. A camera buffer (picamera2's request, a V4L2
      buffer behind OpenCV) is copied out and given back to the camera inside `read()`,
      before the picture exists (sources.picamera: make_array copies, then release()); a
      camera that waits for a buffer nobody returns stops delivering frames. What a picture
      may keep is its own: a JPEG's bytes, a decoded PyAV VideoFrame (refcounted, the
      decoder's next frame is another), a numpy array.
    - Once handed over a picture is immutable, and so is what decode() returns: `Decoded`
      marks its array read-only, and decode() may return the picture's own array (no copy),
      so nobody may write to it. Whoever wants to change pixels works on a copy.
    - decode() is called once, on the inference thread, and only for the frame the model
      takes; a picture replaced in the slot first is dropped undecoded (counted as
      `superseded_reason`), and its memory goes with the last reference.
    - The decoded image may then be held, without a copy, by: the inference thread and the
      finisher (the frame being classified and finished), the preview's one-slot hand-off
      (core.latest: the newest only), and the snapshot writer (at most FRAMES_WAITING shots).
      Each holds it only until the next frame replaces it or the write is done: every
      holder is bounded, so a picture's memory is never kept by a slow reader.
    """

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


def cut(frame: np.ndarray, crop: Crop) -> np.ndarray:
    """The rectangle `crop` (x, y, width, height as fractions) of a full frame, as a view.

    The one place a zone's pixels are chosen: the daemon classifies them and `edgecam learn
    --zone` learns from them, so a class learned from a snapshot or the camera is learned
    from exactly what the zone will be shown.
    """
    if not isinstance(frame, np.ndarray) or frame.ndim < 2 or frame.size == 0:
        raise FrameFormatError(f"unsupported frame {getattr(frame, 'shape', type(frame))}")
    height, width = frame.shape[:2]
    x, y, w, h = crop
    left, top = round(x * width), round(y * height)
    right, bottom = max(left + 1, round((x + w) * width)), max(top + 1, round((y + h) * height))
    return frame[top:bottom, left:right]


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
