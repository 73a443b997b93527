"""Frame sources behind one interface, chosen from `camera.source`.

Network streams and video files are read with PyAV when it is installed
(decoding only what the model will take; see sources.pyav), else with
OpenCV, which decodes every frame. USB/V4L2 devices and their raw MJPEG
buffers go through OpenCV's V4L2 backend; the Pi camera through picamera2.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecam.config import CameraConfig, picamera_number, picamera_source
from edgecam.core.sensor import OnSensor
from edgecam.errors import SourceError
from edgecam.sources.base import Source
from edgecam.sources.images import IMAGE_SUFFIXES, ImageSource
from edgecam.sources.opencv import OpenCVSource

__all__ = ["OpenCVSource", "Source", "make_source"]

log = logging.getLogger(__name__)


def make_source(camera: CameraConfig, input_size: tuple[int, int], max_behind_ms: float = 200.0,
                sensor: OnSensor | None = None) -> Source:
    """The source `camera.source` names; `input_size` is the model's (width, height).

    `sensor`: the AI Camera's network, whose results the Pi camera source reads per frame.

    A live stream more than `max_behind_ms` behind (pipeline.max_frame_age_ms) skips to its
    next keyframe, where the codec and the container allow it.
    """
    target = camera.source
    number = picamera_number(target)
    if number is not None:
        from edgecam.sources.picamera import Picamera2Source

        if sensor is not None and sensor.classifier.camera_num != number:
            # The instance claimed the camera its config names (daemon.claims): opening the AI
            # Camera under another number would leave it free for a second instance to claim.
            actual = sensor.classifier.camera_num
            raise SourceError(f"camera.source: {target} is camera {number}, but the AI Camera "
                              f"(IMX500) is camera {actual}: write camera.source: "
                              f"{picamera_source(actual)}")
        return Picamera2Source(camera, input_size, number, sensor)
    if target.isdigit() or target.startswith("/dev/"):
        return OpenCVSource(target, "device", width=camera.width, height=camera.height, fps=camera.fps,
                            timeout_s=camera.stall_timeout_s)
    if Path(target).is_dir() or Path(target).suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(target, camera.fps, camera.realtime)
    kind = "stream" if "://" in target else "file"
    try:
        from edgecam.sources.pyav import AVSource
    except ImportError:
        log.info("PyAV is not installed (apt install python3-av, or pip's av): %s is read with OpenCV, "
                 "which decodes every frame", target)
        return OpenCVSource(target, kind, width=camera.width, height=camera.height, fps=camera.fps,
                            realtime=camera.realtime, loop=camera.loop, timeout_s=camera.stall_timeout_s)
    return AVSource(target, kind, realtime=camera.realtime, loop=camera.loop,
                    timeout_s=camera.stall_timeout_s, max_behind_ms=max_behind_ms)
