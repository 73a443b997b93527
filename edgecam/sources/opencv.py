"""OpenCV sources: V4L2 devices (path or index), and streams and files where PyAV is missing.

A webcam that offers MJPEG is read raw: each frame stays a JPEG until the
model takes it (sources.pictures). Streams and files are decoded in full,
every frame, which is why sources.pyav is preferred for them.

OpenCV's FFmpeg backend can block in `read()` for a long time on a dead
network stream; its open/read timeouts are set here, and the capture thread
does not trust them either (it watches for stalls and abandons the read).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from edgecam.errors import SourceError
from edgecam.sources.base import Pacer, Source
from edgecam.sources.pictures import JpegPicture

log = logging.getLogger(__name__)


class OpenCVSource(Source):
    """A cv2.VideoCapture; `kind` is "device", "stream" or "file"."""

    def __init__(self, target: str, kind: str, *, width: int, height: int, fps: float,
                 realtime: bool = True, loop: bool = False, timeout_s: float = 5.0) -> None:
        self.name = target
        self.kind = kind
        self.network = kind == "stream"
        self.awaited = kind in ("stream", "device")
        self.finite = kind == "file" and not loop
        self.on_demand = kind == "file" and not realtime
        self._target: str | int = int(target) if target.isdigit() else target
        self._width, self._height, self._fps = width, height, fps
        self._realtime, self._loop = realtime, loop
        self._timeout_ms = int(timeout_s * 1000)
        # The capture thread's stall detection (after timeout_s without a frame) must fire first:
        # a read timeout equal to it won the race and turned every stall into a "lost" source.
        # OpenCV's read timeout only ends the read the capture thread has already given up on.
        self._read_timeout_ms = int(max(2 * timeout_s, timeout_s + 1.0) * 1000)
        self._capture: cv2.VideoCapture | None = None
        self._pacer = Pacer(0)
        self._jpeg = False
        self._size = (0, 0)

    def open(self) -> None:
        if self.kind != "stream" and isinstance(self._target, str) and not Path(self._target).exists():
            what = "no such device" if self.kind == "device" else "no such file"
            raise SourceError(f"camera.source: {self.name}: {what}")
        backend = cv2.CAP_V4L2 if self.kind == "device" else cv2.CAP_FFMPEG
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self._timeout_ms,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._read_timeout_ms]
        capture = cv2.VideoCapture(self._target, backend, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"camera.source: cannot open {self.name}")
        if self.kind == "device":
            self._jpeg = _ask_raw_jpeg(capture)
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._height)
            capture.set(cv2.CAP_PROP_FPS, self._fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames queued in the driver
        native_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        if self.kind == "file":
            self._pacer = Pacer(native_fps if self._realtime else 0.0)
            self.frame_interval_s = self._pacer.interval
        else:
            self.frame_interval_s = 1.0 / native_fps if native_fps > 0 else 0.0
        self._capture = capture
        self._size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        log.info("source %s opened (%s via OpenCV, %dx%d, %.3g fps; %s)", self.name, self.kind,
                 *self._size, native_fps,
                 "raw MJPEG, decoded only for the model" if self._jpeg else "every frame decoded")

    def read(self, stop: threading.Event) -> np.ndarray | JpegPicture | None:
        capture = self._capture
        if capture is None:
            return None
        self._pacer.wait(stop)
        ok, image = capture.read()
        if not ok and self.kind == "file" and self._loop:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = capture.read()
        if not ok or image is None or not image.size:
            return None
        return JpegPicture(image.tobytes(), *self._size) if self._jpeg else image

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


_MJPG = cv2.VideoWriter.fourcc(*"MJPG")


def _ask_raw_jpeg(capture: cv2.VideoCapture) -> bool:
    """Asks a V4L2 webcam for MJPEG, undecoded; whether it agreed (else frames come decoded).

    A USB webcam sends 720p at 30 fps only as MJPEG; OpenCV would decode every frame to
    BGR, including the ones the model never takes. Raw, each read is a JPEG's bytes.
    """
    capture.set(cv2.CAP_PROP_FOURCC, _MJPG)
    if int(capture.get(cv2.CAP_PROP_FOURCC)) != _MJPG:
        return False
    return bool(capture.set(cv2.CAP_PROP_CONVERT_RGB, 0))
