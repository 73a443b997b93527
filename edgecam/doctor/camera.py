"""The camera: it opens and delivers frames, at what size and rate.

The source is made and read as the daemon's capture thread would (sources.
make_source, open(), read() until a frame), in a thread of its own so that a
camera or stream that never answers costs a bounded wait, not a hung doctor.
After the first frame it keeps reading for a moment to measure the rate the
camera really delivers. While the daemon runs it holds the camera (a Pi
camera or a V4L2 device opens only once), so the check is then skipped with
what the daemon's own stats say.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecam.config import CameraConfig
from edgecam.core.frames import IDENTITY, Dropped
from edgecam.doctor.check import Check, failed, passed
from edgecam.doctor.socket import RunningDaemon
from edgecam.doctor.users import user_name
from edgecam.errors import EdgecamError
from edgecam.sources import kind_of, make_source
from edgecam.sources.base import Source
from edgecam.sources.picamera import NOT_INSTALLED

#: after the first frame, read this many more or for this long, to measure the frame rate
SAMPLE_FRAMES = 15
SAMPLE_S = 1.5


@dataclass
class _Sample:
    """What the reading thread saw (written by it, read once it is done or given up on)."""

    first: np.ndarray | None = None
    frames: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    problem: str | None = None

    def fps(self) -> float | None:
        span = self.last_at - self.first_at
        return (self.frames - 1) / span if self.frames > 1 and span > 0 else None


def check_camera(camera: CameraConfig, input_size: tuple[int, int], max_behind_ms: float,
                 daemon: RunningDaemon | None) -> tuple[Check, np.ndarray | None]:
    """The camera's verdict and its first frame (None when skipped or failed)."""
    if daemon is not None:
        return passed("camera", daemon.note()), None
    try:
        source = make_source(camera, input_size, max_behind_ms)
    except EdgecamError as exc:
        return failed("camera", str(exc), camera_fix(camera.source, str(exc))), None
    sample = _Sample()
    stop = threading.Event()
    reader = threading.Thread(target=_read, args=(source, sample, stop), name="edgecam-doctor-camera",
                              daemon=True)
    # Opening and the first read each have their own timeout of about the stall timeout.
    budget_s = 2 * camera.stall_timeout_s + SAMPLE_S
    reader.start()
    reader.join(budget_s)
    stop.set()  # a read still blocked is abandoned: the thread closes the source when it returns
    image = sample.first
    if image is None:
        problem = sample.problem or (f"camera.source: {camera.source}: no frame within {budget_s:g} s"
                                     if reader.is_alive() else
                                     f"camera.source: {camera.source}: opened, but delivered no frame")
        return failed("camera", problem, camera_fix(camera.source, problem)), None
    height, width = image.shape[:2]
    fps = sample.fps()
    rate = ("read on demand (camera.realtime: false)" if source.on_demand
            else f"{fps:.1f} fps" if fps is not None else f"one frame in {SAMPLE_S:g} s")
    return passed("camera", f"{camera.source}: {width}x{height} frames, {rate}"), image


def _read(source: Source, sample: _Sample, stop: threading.Event) -> None:
    try:
        source.open()
        while not stop.is_set() and sample.frames <= SAMPLE_FRAMES:
            delivered = source.read_picture(stop)
            now = time.monotonic()
            if delivered is None:
                break
            if isinstance(delivered, Dropped):
                continue
            if sample.first is None:
                sample.first = delivered.decode(IDENTITY)
                sample.first_at = now
            sample.frames += 1
            sample.last_at = now
            if now - sample.first_at >= SAMPLE_S:
                break
    except EdgecamError as exc:
        sample.problem = str(exc)
    except Exception as exc:  # a driver's own error is the camera's failure, not the doctor's
        sample.problem = f"camera.source: {source.name}: {type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        with contextlib.suppress(Exception):
            source.close()


def camera_fix(source: str, problem: str) -> str:
    """What to try, by the kind of source and the `problem` it reported."""
    if problem == NOT_INSTALLED:
        return ("on a Pi: sudo apt install python3-picamera2 (and sudo make install, whose virtualenv "
                "sees it); elsewhere set camera.source to /dev/video0, a stream or a folder of images")
    kind = kind_of(source).name
    if kind == "picamera2":
        return ("check the ribbon cable and that `rpicam-hello --list-cameras` lists the camera; stop "
                "anything else using it (sudo systemctl stop edgecam)")
    if kind == "device":
        device = Path(source if source.startswith("/dev/") else f"/dev/video{source}")
        if device.exists() and not os.access(device, os.R_OK | os.W_OK):
            return f"join the video group: sudo usermod -aG video {user_name()}, then log in again"
        return ("plug the camera in and set camera.source to its device (v4l2-ctl --list-devices); stop "
                "anything else using it (sudo systemctl stop edgecam)")
    if kind == "stream":
        return "check the URL and that the camera is on and reachable (ffprobe URL shows what it sends)"
    return "set camera.source to an existing video file, image or folder of images"
