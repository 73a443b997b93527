"""Frame sources behind one interface, chosen from `camera.source`."""

from __future__ import annotations

from pathlib import Path

from edgecam.config import CameraConfig
from edgecam.sources.base import Source
from edgecam.sources.images import IMAGE_SUFFIXES, ImageSource
from edgecam.sources.opencv import OpenCVSource

__all__ = ["Source", "make_source"]


def make_source(camera: CameraConfig, input_size: tuple[int, int]) -> Source:
    """The source `camera.source` names; `input_size` is the model's (width, height)."""
    target = camera.source
    if target == "picamera2":
        from edgecam.sources.picamera import Picamera2Source

        return Picamera2Source(camera, input_size)
    if target.isdigit() or target.startswith("/dev/"):
        kind = "device"
    elif "://" in target:
        kind = "stream"
    elif Path(target).is_dir() or Path(target).suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(target, camera.fps, camera.realtime)
    else:
        kind = "file"
    return OpenCVSource(target, kind, width=camera.width, height=camera.height, fps=camera.fps,
                        realtime=camera.realtime, loop=camera.loop,
                        timeout_s=camera.stall_timeout_s)
