"""The Raspberry Pi camera through picamera2 (libcamera).

picamera2 is imported only in `open()`, through edgecam.picam (the one module
that imports it): importing picamera2 starts libcamera and probes /dev/video*
for the ISP, so doing it at import time would touch the hardware in every
command, test and machine without a camera.

With the AI Camera's network (models.imx500) the sensor classifies: its
`IMX500` object was created before the camera is opened here (picamera2
requires that order: it uploads the network firmware), the camera opened is
the IMX500's, and each frame's result is read from the request's metadata
while the request is held. A frame whose metadata carries no output tensor
(the sensor had no result for it yet) is dropped as `sensor_skipped`.

The ISP scales, not the CPU. Two streams are configured: `main` at
camera.width x camera.height (which also fixes the field of view, since the
ISP crops the sensor to main's aspect ratio) and `lores` in YUV420, the one
lores format every Pi accepts (the Pi 4's VC4 ISP refuses anything else; the
Pi 5's PiSP would also take RGB). Only lores is read. On both ISPs lores
shows main's whole field scaled to lores' size, so lores keeps main's aspect
ratio at the smallest size that covers the model's input (298x224 for a 4:3
main and a 224x224 model): `model.resize` then crops or stretches it as for
every other source, and converting and cropping a frame that small costs a
fraction of a millisecond.

picamera2 facts this relies on (checked in raspberrypi/picamera2 0.3.36,
picamera2/picamera2.py and request.py):
- `Picamera2.global_camera_info()` lists the cameras, sorted by Id; `[]` when
  there is none, and `Picamera2(0)` then fails with IndexError. `Picamera2(n)`
  opens position n of that list (camera.source picamera2:N), whatever its
  `Num` (libcamera's index, picam.camera_position). A camera held by another
  process fails in libcamera's acquire() ("Failed to acquire camera: Device
  or resource busy"), wrapped in RuntimeError("Camera __init__ sequence did
  not complete.").
- `capture_request(wait=False)` returns a job; `Picamera2.wait(job, timeout)`
  raises TimeoutError when no frame came in time, so a read can never block
  forever; `cancel_all_and_flush()` (0.3.20+) clears jobs queued behind a
  hung camera so that `stop()` can run.
- `request.make_array(name)` already copies the buffer out, so the request is
  released right after it, before any conversion.
- YUV420 arrays are (height * 3 / 2, stride) with Y, then U, then V planes
  (I420); bytes past the width on each row are padding, cut after conversion.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import Any

import cv2
import numpy as np

from edgecam.common.throttle import LogThrottle
from edgecam.config import CameraConfig, picamera_source
from edgecam.core.frames import Classified, Dropped
from edgecam.core.sensor import OnSensor
from edgecam.dependencies import PICAMERA2
from edgecam.errors import ModelError, SourceError
from edgecam.picam import picamera2, reason
from edgecam.sources.base import Source

log = logging.getLogger(__name__)

NOT_INSTALLED = f"camera.source: {PICAMERA2.message}"

#: camera buffers per stream: one held by picamera2 as "latest", one being read, the rest in flight.
BUFFER_COUNT = 4
LIBCAMERA_LOG_LEVELS = "*:WARN"
#: one sensor result that cannot be used is logged, then every this many
_LOG_EVERY = 100
#: how often a read waiting for a frame looks at its stop event
_POLL_S = 0.1
#: how long close() waits for a capture that completed while it was being abandoned
_ABANDON_WAIT_S = 0.2


class Picamera2Source(Source):
    """Frames from the Pi camera's `lores` stream, as BGR images at the model's input size."""

    awaited = True

    def __init__(self, camera: CameraConfig, input_size: tuple[int, int], number: int = 0,
                 sensor: OnSensor | None = None) -> None:
        # Picamera2(camera_num): a Pi 5 has two camera ports (with the AI Camera, `number` is the
        # IMX500's own: make_source checks it)
        self._number = number
        self.name = picamera_source(number)
        self._sensor = sensor
        self._unusable = LogThrottle(_LOG_EVERY)
        self._main_size = (camera.width, camera.height)
        self._input_size = input_size
        self._fps = camera.fps
        self.frame_interval_s = 1.0 / camera.fps
        # A backstop: the capture supervisor notices a stall first (stall_timeout_s, or three
        # frame intervals) and sets `stop`; if nobody does, a read that sees no frame for twice
        # that long reports the camera lost (returns None) instead of waiting forever.
        self._timeout_s = 2 * max(camera.stall_timeout_s, 3 * self.frame_interval_s)
        self._camera: Any = None
        self._pending: Any = None  # a capture job a read gave up waiting for, reused by the next read
        self._lores_width = 0

    def open(self) -> None:
        # libcamera logs every frame's details at INFO; keep warnings and errors unless
        # the user asked for more (the systemd unit sets the same).
        os.environ.setdefault("LIBCAMERA_LOG_LEVELS", LIBCAMERA_LOG_LEVELS)
        Picamera2, libcamera = picamera2("camera.source")
        try:
            cameras = Picamera2.global_camera_info()
        except Exception as exc:
            raise SourceError(f"camera.source: picamera2: cannot list cameras: {reason(exc)}") from None
        number = self._number
        if number >= len(cameras):
            raise SourceError(_no_camera(number, len(cameras)))
        model = cameras[number].get("Model", "camera")  # Picamera2(n) opens position n, not Num n
        try:
            camera = Picamera2(number)
        except IndexError:  # unplugged between the listing and the open
            raise SourceError(_no_camera(number, 0)) from None
        except Exception as exc:
            why = reason(exc)
            hint = " (is another program, or another edgecam, using the camera?)" if _busy(why) else ""
            raise SourceError(f"camera.source: picamera2 camera {number} ({model}): cannot open: "
                              f"{why}{hint}") from None

        try:
            config = self._configuration(camera, libcamera)
            camera.configure(config)
            camera.start()
        except Exception as exc:
            _close_camera(camera)
            raise SourceError(f"camera.source: picamera2 camera {number} ({model}): cannot start: "
                              f"{reason(exc)}") from None
        if self._sensor is not None:
            self._sensor.classifier.aim(self._sensor.crop,
                                        tuple(camera.camera_properties["PixelArraySize"]))
        lores = camera.stream_configuration("lores")
        self._lores_width = lores["size"][0]
        self._camera, self._pending = camera, None
        main = camera.stream_configuration("main")
        log.info("source %s opened (%s, main %dx%d %s, lores %dx%d %s, %.3g fps)", self.name, model,
                 *main["size"], main["format"], *lores["size"], lores["format"], self._fps)

    def _configuration(self, camera: Any, libcamera: Any) -> dict[str, Any]:
        """A video configuration: main at the configured size, lores just covering the model input.

        lores keeps main's aspect ratio (see the module docstring); it may not be larger
        than main (picamera2 refuses it), and sizes must be even.
        The colour space is fixed to SMPTE 170M (BT.601, limited range), the one OpenCV's
        YUV->BGR conversion assumes; picamera2 would pick Rec.709 for a main of 720p or more.
        The frame rate is a fixed frame duration, on cameras that have the control (USB
        cameras driven through libcamera may not).
        """
        main_w, main_h = self._main_size
        cover = max(self._input_size[0] / main_w, self._input_size[1] / main_h)
        lores_w = min(main_w, math.ceil(main_w * cover)) // 2 * 2
        lores_h = min(main_h, math.ceil(main_h * cover)) // 2 * 2
        controls: dict[str, Any] = {}
        if "FrameDurationLimits" in camera.camera_controls:
            frame_us = round(1_000_000 / self._fps)
            controls["FrameDurationLimits"] = (frame_us, frame_us)
        return camera.create_video_configuration(
            main={"size": (main_w, main_h), "format": "RGB888"},
            lores={"size": (lores_w, lores_h), "format": "YUV420"},
            colour_space=libcamera.ColorSpace.Smpte170m(),
            buffer_count=BUFFER_COUNT,
            controls=controls,
        )

    def read(self, stop: threading.Event) -> np.ndarray | Classified | Dropped | None:
        camera = self._camera
        if camera is None:
            return None
        request = self._next_request(camera, stop)
        if request is None:
            return None
        result = None
        try:
            yuv = request.make_array("lores")  # a copy: the buffer can go straight back to the camera
            if self._sensor is not None:
                result = self._sensor.classifier.result(request.get_metadata())
        except ModelError as exc:  # the sensor's output does not fit the labels: every frame alike
            if self._unusable():
                log.warning("IMX500: result dropped (%d so far): %s", self._unusable.count, exc)
            return Dropped("bad_frame")
        except Exception as exc:
            log.warning("picamera2: cannot read the lores buffer: %s", reason(exc))
            return None
        finally:
            request.release()
        if self._sensor is not None and result is None:
            return Dropped("sensor_skipped")
        image = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
        if image.shape[1] != self._lores_width:  # rows padded to the stride
            image = np.ascontiguousarray(image[:, : self._lores_width])
        return image if result is None else Classified(image, result)

    def _next_request(self, camera: Any, stop: threading.Event) -> Any:
        """The next completed request, or None once `stop` is set or no frame came in time.

        A capture job given up on stays pending and is the one the next read waits for:
        a second job would take a second buffer, and a job abandoned in picamera2's queue
        takes a request that nobody ever releases.
        """
        if self._pending is None:
            try:
                self._pending = camera.capture_request(wait=False)
            except Exception as exc:
                log.warning("picamera2: cannot request a frame: %s", reason(exc))
                return None
        job = self._pending
        deadline = time.monotonic() + self._timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                request = camera.wait(job, timeout=max(0.0, min(_POLL_S, remaining)))
            except TimeoutError:
                if stop.is_set():
                    return None
                if remaining <= 0:
                    log.warning("picamera2: no frame for %.1f s", self._timeout_s)
                    return None
                continue
            except Exception as exc:  # the job failed or was cancelled
                self._pending = None
                log.warning("picamera2: capture failed: %s", reason(exc))
                return None
            self._pending = None
            return request

    def close(self) -> None:
        """Stops and closes the camera, whatever fails on the way; safe to call twice.

        A process that keeps the camera acquired stops every later start, ours included,
        so close() is attempted even when stop() raises.
        """
        camera, self._camera = self._camera, None
        job, self._pending = self._pending, None
        if camera is None:
            return
        # Pending jobs would queue stop() behind them (it runs in picamera2's event loop).
        cancel = getattr(camera, "cancel_all_and_flush", None)
        if cancel is not None:
            try:
                cancel()
            except Exception as exc:
                log.warning("picamera2: cancel_all_and_flush failed: %s", reason(exc))
        if job is not None:
            _release_late_result(camera, job)
        _close_camera(camera)


def _close_camera(camera: Any) -> None:
    """stop() then close(), each guarded: close() must run even when stop() fails."""
    try:
        camera.stop()
    except Exception as exc:
        log.warning("picamera2: stop failed: %s", reason(exc))
    try:
        camera.close()
    except Exception as exc:
        log.warning("picamera2: close failed, the camera may stay busy: %s", reason(exc))


def _release_late_result(camera: Any, job: Any) -> None:
    """Releases the request of an abandoned capture job that completed after all."""
    try:
        request = camera.wait(job, timeout=_ABANDON_WAIT_S)
    except Exception:  # cancelled, failed or still waiting: there is no request to give back
        return
    try:
        request.release()
    except Exception as exc:
        log.debug("picamera2: releasing an abandoned request failed: %s", reason(exc))


def _no_camera(number: int, found: int) -> str:
    if not found:
        return ("camera.source: picamera2: no camera detected on the CSI port (check the ribbon "
                "cable and that `rpicam-hello --list-cameras` lists it)")
    return (f"camera.source: picamera2:{number}: {found} camera(s) detected, numbered from 0 (check "
            "the ribbon cable and that `rpicam-hello --list-cameras` lists it)")


def _busy(reason: str) -> bool:
    text = reason.lower()
    return "busy" in text or "in use" in text


