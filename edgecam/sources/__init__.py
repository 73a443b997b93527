"""Frame sources behind one interface, chosen from `camera.source`.

Network streams and video files are read with PyAV when it is installed
(decoding only what the model will take; see sources.pyav), else with
OpenCV, which decodes every frame. USB/V4L2 devices and their raw MJPEG
buffers go through OpenCV's V4L2 backend; the Pi camera through picamera2.
Each kind is one row of KINDS: how its camera.source is recognised, how it opens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecam.config import CameraConfig, picamera_number, picamera_source
from edgecam.core.sensor import OnSensor
from edgecam.errors import SourceError
from edgecam.sources.base import Source
from edgecam.sources.images import IMAGE_SUFFIXES, ImageSource
from edgecam.sources.opencv import OpenCVSource

__all__ = ["KINDS", "OpenCVSource", "Source", "SourceKind", "kind_of", "make_source"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wants:
    """What the pipeline asks of every source: the model's (width, height), how far behind live
    a stream may fall (pipeline.max_frame_age_ms), and the AI Camera's network (picamera2 reads
    its results per frame)."""

    input_size: tuple[int, int]
    max_behind_ms: float
    sensor: OnSensor | None


@dataclass(frozen=True)
class SourceKind:
    """One kind of camera.source: which values name it, and how a source of it is opened."""

    name: str
    matches: Callable[[str], bool]
    open: Callable[[CameraConfig, Wants], Source]


def _picamera(camera: CameraConfig, wants: Wants) -> Source:
    from edgecam.sources.picamera import Picamera2Source  # picamera2's, only for a Pi camera

    number = picamera_number(camera.source)
    assert number is not None  # KINDS matched it
    sensor = wants.sensor
    if sensor is not None and sensor.classifier.camera_num != number:
        # The instance claimed the camera its config names (daemon.claims): opening the AI
        # Camera under another number would leave it free for a second instance to claim.
        actual = sensor.classifier.camera_num
        raise SourceError(f"camera.source: {camera.source} is camera {number}, but the AI Camera "
                          f"(IMX500) is camera {actual}: write camera.source: "
                          f"{picamera_source(actual)}")
    return Picamera2Source(camera, wants.input_size, number, sensor)


def _device(camera: CameraConfig, wants: Wants) -> Source:
    return OpenCVSource(camera.source, "device", width=camera.width, height=camera.height,
                        fps=camera.fps, timeout_s=camera.stall_timeout_s)


def _images(camera: CameraConfig, wants: Wants) -> Source:
    return ImageSource(camera.source, camera.fps, camera.realtime)


def _video(kind: str) -> Callable[[CameraConfig, Wants], Source]:
    """A stream's or a video file's opener: PyAV when installed, else OpenCV."""
    def open_video(camera: CameraConfig, wants: Wants) -> Source:
        target = camera.source
        try:
            from edgecam.sources.pyav import AVSource
        except ImportError:
            log.info("PyAV is not installed (apt install python3-av, or pip's av): %s is read with "
                     "OpenCV, which decodes every frame", target)
            return OpenCVSource(target, kind, width=camera.width, height=camera.height,
                                fps=camera.fps, realtime=camera.realtime, loop=camera.loop,
                                timeout_s=camera.stall_timeout_s)
        return AVSource(target, kind, realtime=camera.realtime, loop=camera.loop,
                        timeout_s=camera.stall_timeout_s, max_behind_ms=wants.max_behind_ms)
    return open_video


#: every kind of camera.source, in the order they are tried: the first that matches opens it
KINDS = (
    SourceKind("picamera2", lambda target: picamera_number(target) is not None, _picamera),
    SourceKind("device", lambda target: target.isdigit() or target.startswith("/dev/"), _device),
    SourceKind("images", lambda target: Path(target).is_dir()
               or Path(target).suffix.lower() in IMAGE_SUFFIXES, _images),
    SourceKind("stream", lambda target: "://" in target, _video("stream")),
    SourceKind("file", lambda target: True, _video("file")),
)


def kind_of(source: str) -> SourceKind:
    """The kind of source `source` (camera.source's value) names."""
    return next(kind for kind in KINDS if kind.matches(source))


def make_source(camera: CameraConfig, input_size: tuple[int, int], max_behind_ms: float = 200.0,
                sensor: OnSensor | None = None) -> Source:
    """The source `camera.source` names; `input_size` is the model's (width, height).

    `sensor`: the AI Camera's network, whose results the Pi camera source reads per frame.

    A live stream more than `max_behind_ms` behind (pipeline.max_frame_age_ms) skips to its
    next keyframe, where the codec and the container allow it.
    """
    return kind_of(camera.source).open(camera, Wants(input_size, max_behind_ms, sensor))
