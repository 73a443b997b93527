"""A fake picamera2 (and the bit of libcamera it needs), following the real API surface.

picamera2 needs libcamera's Python bindings from Raspberry Pi OS and cannot be
installed here. This fake copies the *behaviour* edgecam relies on, as read in
raspberrypi/picamera2 0.3.36 (3e6dff0; picamera2/picamera2.py, request.py, job.py):

- `Picamera2.global_camera_info()` (static): one dict per camera with Model,
  Location, Rotation, Id, Num; `[]` without a camera, and then `Picamera2(0)`
  raises IndexError (it indexes that list before anything else). `Num` is the
  camera's index in libcamera's own list (`Rig.cameras`' order here, whatever
  Num the dicts carry), and the list is sorted by Id, descending, USB cameras
  last (picamera2.py: `sorted(cameras, key=lambda cam: ("/usb" not in
  cam['Id'], cam['Id']), reverse=True)`): on a Pi 5 the two orders can differ.
- `Picamera2(camera_num)` opens list position `camera_num` of that list (it
  looks up that entry's `Num` and opens libcamera's camera Num; a Pi 5 has two
  ports); each camera delivers its own frames (`Rig.camera_images`, by Num).
- A camera held elsewhere (`Rig.busy`, or the same camera_num open in another
  Picamera2 instance): libcamera's acquire() raises RuntimeError("Failed to
  acquire camera: Device or resource busy"), which `Picamera2.__init__` wraps
  as RuntimeError("Camera __init__ sequence did not complete.") from it.
- `create_video_configuration(main=, lores=, raw=, transform=, colour_space=,
  buffer_count=6, controls=, display=, encode=, queue=, sensor=, use_case=)`
  returns a plain dict; unknown stream keys raise ValueError; sizes are rounded
  down to even numbers. `configure()` refuses a lores larger than main, odd
  sizes, and (on a Pi 4, the default here) a lores that is not YUV, then fills
  in each stream's `stride` (YUV420 rows padded to a multiple of 64 bytes here: the ISP
  may pad rows, and picamera2 leaves the padding in the array).
- `capture_request(wait=False)` returns a job; `wait(job, timeout)` returns the
  CompletedRequest or raises TimeoutError (concurrent.futures); a job cancelled
  by `cancel_all_and_flush()` raises CancelledError.
- `CompletedRequest.get_metadata()` returns the frame's metadata dict (the
  rig's `metadata_for`, the IMX500's tensors: fake_picamera2_devices; only an
  imx500's frames carry them, the other cameras' only SensorTimestamp).
- `Picamera2.camera_properties["PixelArraySize"]`: the sensor's full size.
- `CompletedRequest.make_array(name)` returns a copy: YUV420 as
  (height * 3 / 2, stride) I420 planes, RGB888 as (height, width, 3) in B, G, R
  order. `release()` more often than acquired raises RuntimeError.
- `stop()` and `close()`; close() calls stop() itself, as the real one does.

The frames are real pictures: each photo is resized to the stream size (the
ISP's job) and converted with cv2.COLOR_BGR2YUV_I420, so what a source
delivers can be classified by the real model.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

PADDING_BYTE = 0xEE  # what the stride padding holds, so that a frame that keeps it is visible

IMX708 = {"Model": "imx708", "Location": 2, "Rotation": 180,
          "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a", "Num": 0}


@dataclass
class Rig:
    """The fake hardware and the record of every call; one per test."""

    images: list[np.ndarray] = field(default_factory=list)  # camera 0's frames (and the others')
    #: a camera's own frames, by its Num (libcamera's index)
    camera_images: dict[int, list[np.ndarray]] = field(default_factory=dict)
    #: libcamera's cameras, in libcamera's order: a camera's Num is its index here
    cameras: list[dict[str, Any]] = field(default_factory=lambda: [dict(IMX708)])
    busy: bool = False
    platform: str = "vc4"  # vc4: lores must be YUV (Pi 4); pisp: RGB lores allowed (Pi 5)
    frames_stalled: bool = False  # the camera delivers nothing (a loose cable)
    stop_error: Exception | None = None  # what stop() raises, the next `stop_failures` times
    stop_failures: int = 1
    close_error: Exception | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    instances: list[FakePicamera2] = field(default_factory=list)
    requests: list[FakeRequest] = field(default_factory=list)
    frame_count: int = 0
    #: a frame number's request metadata (None: only SensorTimestamp)
    metadata_for: Callable[[int], dict[str, Any]] | None = None

    def images_of(self, camera_num: int) -> list[np.ndarray]:
        return self.camera_images.get(camera_num, self.images)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def unreleased(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.ref_count > 0]


class FakeColorSpace:
    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeColorSpace) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<ColorSpace {self.name}>"

    @staticmethod
    def Sycc() -> FakeColorSpace:  # libcamera spells them so
        return FakeColorSpace("sYCC")

    @staticmethod
    def Smpte170m() -> FakeColorSpace:
        return FakeColorSpace("SMPTE170M")

    @staticmethod
    def Rec709() -> FakeColorSpace:
        return FakeColorSpace("Rec709")


class FakeJob:
    """picamera2.job.Job: a capture waiting for a frame."""

    def __init__(self, rig: Rig, camera: FakePicamera2) -> None:
        self._rig = rig
        self._camera = camera
        self._result: FakeRequest | None = None
        self.cancelled = False

    def get_result(self, timeout: float | None = None) -> FakeRequest:
        if self.cancelled:
            raise CancelledError()
        if self._result is None:
            if self._rig.frames_stalled:
                if timeout:
                    time.sleep(timeout)  # the real one blocks this long for a frame that never comes
                raise TimeoutError()  # concurrent.futures.TimeoutError is the builtin since 3.11
            self._result = self._rig_frame()
        return self._result

    def _rig_frame(self) -> FakeRequest:
        camera = self._camera
        request = FakeRequest(self._rig, camera.camera_config, self._rig.frame_count,
                              self._rig.images_of(camera.camera_idx), camera.info["Model"])
        self._rig.frame_count += 1
        self._rig.requests.append(request)
        return request


class FakeRequest:
    """picamera2.request.CompletedRequest: one frame's buffers, held until released."""

    def __init__(self, rig: Rig, config: dict[str, Any], number: int, images: list[np.ndarray],
                 model: str = "imx708") -> None:
        self._rig = rig
        self._model = model
        self.config = config
        self.number = number
        self._images = images
        self.ref_count = 1
        self.arrays_made: list[str] = []

    def make_array(self, name: str) -> np.ndarray:
        if self.ref_count <= 0:
            raise AssertionError("make_array on a released request")  # the real one asserts too
        stream = self.config.get(name)
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        self.arrays_made.append(name)
        image = self._images[self.number % len(self._images)]
        return render(image, stream["format"], stream["size"], stream["stride"])

    def get_metadata(self) -> dict[str, Any]:
        if self.ref_count <= 0:
            raise AssertionError("get_metadata on a released request")
        if self._rig.metadata_for is None or self._model != "imx500":
            return {"SensorTimestamp": 1_000_000 * self.number}
        return self._rig.metadata_for(self.number)

    def release(self) -> None:
        self.ref_count -= 1
        if self.ref_count < 0:
            raise RuntimeError("CompletedRequest: lock now has negative ref_count")
        self._rig.calls.append(("release", self.number))


def render(image: np.ndarray, fmt: str, size: tuple[int, int], stride: int) -> np.ndarray:
    """A BGR photo as the ISP would write it into a buffer of this format, size and stride."""
    width, height = size
    bgr = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if fmt == "RGB888":  # picamera2's RGB888 is B, G, R in memory
        return bgr.copy()
    if fmt == "BGR888":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if fmt != "YUV420":
        raise RuntimeError(f"Format {fmt} not supported by the fake")
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    y = i420[: width * height].reshape(height, width)
    u = i420[width * height: width * height * 5 // 4].reshape(height // 2, width // 2)
    v = i420[width * height * 5 // 4:].reshape(height // 2, width // 2)
    # Each plane's rows padded to its stride (chroma: half the luma stride), planes back to back.
    planes = [_pad(y, stride), _pad(u, stride // 2), _pad(v, stride // 2)]
    return np.concatenate([p.reshape(-1) for p in planes]).reshape(height * 3 // 2, stride)


def _pad(plane: np.ndarray, stride: int) -> np.ndarray:
    padded = np.full((plane.shape[0], stride), PADDING_BYTE, np.uint8)
    padded[:, : plane.shape[1]] = plane
    return padded


def _stride(fmt: str, width: int) -> int:
    if fmt == "YUV420":
        return -(-width // 64) * 64
    if fmt in ("RGB888", "BGR888"):
        return width * 3
    return width * 4


class FakePicamera2:
    """picamera2.Picamera2, for one camera."""

    rig: Rig  # set on the subclass that make_module() builds

    @classmethod
    def global_camera_info(cls) -> list[dict[str, Any]]:
        cls.rig.calls.append(("global_camera_info", None))
        cameras = [dict(c, Num=num) for num, c in enumerate(cls.rig.cameras)]
        return sorted(cameras, key=lambda cam: ("/usb" not in cam["Id"], cam["Id"]), reverse=True)

    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None,
                 allocator: Any = None) -> None:
        rig = self.rig
        self.is_open = False
        self.started = False
        self.camera_config: dict[str, Any] = {}
        self._jobs: list[FakeJob] = []
        rig.calls.append(("__init__", camera_num))
        info = self.global_camera_info()[camera_num]  # IndexError without a camera, as the real one
        camera_idx = info["Num"]  # libcamera's camera (picamera2 keeps it as camera_idx)
        held = any(other.is_open and other.camera_idx == camera_idx for other in rig.instances)
        if rig.busy or held:
            try:
                raise RuntimeError("Failed to acquire camera: Device or resource busy")
            except RuntimeError as e:
                raise RuntimeError("Camera __init__ sequence did not complete.") from e
        self.info = info
        self.camera_idx = camera_idx
        self.is_open = True
        rig.instances.append(self)

    @property
    def camera_properties(self) -> dict[str, Any]:
        size = {"imx500": (4056, 3040), "imx708": (4608, 2592)}.get(self.info["Model"], (3280, 2464))
        return {"Model": self.info["Model"], "PixelArraySize": size, "Location": self.info["Location"],
                "Rotation": self.info["Rotation"]}

    @property
    def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
        return {"FrameDurationLimits": (33333, 120000, 33333), "NoiseReductionMode": (0, 4, 0),
                "ExposureTime": (75, 11766829, None)}

    def create_video_configuration(self, main: dict | None = None, lores: dict | None = None,
                                   raw: dict | None = None, transform: Any = None,
                                   colour_space: Any = None, buffer_count: int = 6,
                                   controls: dict | None = None, display: str | None = "main",
                                   encode: str | None = "main", queue: bool = True,
                                   sensor: dict | None = None, use_case: str = "video") -> dict[str, Any]:
        self.rig.calls.append(("create_video_configuration", {
            "main": main, "lores": lores, "colour_space": colour_space, "buffer_count": buffer_count,
            "controls": controls}))
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main_cfg = _stream({"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}, main or {})
        lores_cfg = None if lores is None else _stream(
            {"format": "YUV420", "size": main_cfg["size"], "preserve_ar": False}, lores)
        if colour_space is None:
            w, h = main_cfg["size"]
            colour_space = FakeColorSpace.Smpte170m() if w < 1280 or h < 720 else FakeColorSpace.Rec709()
        merged = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)} | (controls or {})
        return {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                "buffer_count": buffer_count, "queue": queue, "main": main_cfg, "lores": lores_cfg,
                "raw": None, "controls": merged, "sensor": sensor, "display": display, "encode": encode}

    def configure(self, camera_config: dict[str, Any]) -> None:
        self.rig.calls.append(("configure", camera_config))
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in camera_config.items()}
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is None:
                continue
            w, h = stream["size"]
            if w % 2 or h % 2:
                raise RuntimeError("width and height should be even")
        lores = config.get("lores")
        if lores is not None:
            (main_w, main_h), (lores_w, lores_h) = config["main"]["size"], lores["size"]
            if lores_w > main_w or lores_h > main_h:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if self.rig.platform == "vc4" and lores["format"] not in ("YUV420", "YVU420"):
                raise RuntimeError("lores stream must be YUV")
        for name in ("main", "lores"):
            if config.get(name) is not None:
                config[name]["stride"] = _stride(config[name]["format"], config[name]["size"][0])
        self.camera_config = config

    def camera_configuration(self) -> dict[str, Any]:
        return self.camera_config

    def stream_configuration(self, name: str = "main") -> dict[str, Any]:
        return self.camera_config[name]

    def start(self, config: Any = None, show_preview: Any = False) -> None:
        self.rig.calls.append(("start", None))
        if config is not None:
            self.configure(config)
        if not self.camera_config:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def capture_request(self, wait: Any = None, signal_function: Any = None, flush: Any = None) -> Any:
        self.rig.calls.append(("capture_request", wait))
        job = FakeJob(self.rig, self)
        self._jobs.append(job)
        if wait is False or (wait is None and signal_function is not None):
            return job
        return self.wait(job, None if wait in (None, True) else wait)

    def wait(self, job: FakeJob, timeout: float | None = None) -> FakeRequest:
        result = job.get_result(timeout)
        if job in self._jobs:
            self._jobs.remove(job)
        return result

    def cancel_all_and_flush(self) -> None:
        self.rig.calls.append(("cancel_all_and_flush", None))
        for job in self._jobs:
            job.cancelled = True
        self._jobs.clear()

    def stop(self) -> None:
        self.rig.calls.append(("stop", None))
        if self.rig.stop_error is not None and self.rig.stop_failures > 0:
            self.rig.stop_failures -= 1
            raise self.rig.stop_error
        self.started = False

    def close(self) -> None:
        self.rig.calls.append(("close", None))
        if not self.is_open:
            return
        self.stop()  # the real close() stops first too
        if self.rig.close_error is not None:
            raise self.rig.close_error
        self.is_open = False


def _stream(defaults: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    valid = ("format", "size", "stride", "preserve_ar")
    for key in updates:
        if key not in valid:
            raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {valid}")
    stream = defaults | updates
    w, h = stream["size"]
    stream["size"] = (w - w % 2, h - h % 2)  # align_stream(optimal=False)
    return stream


def make_modules(rig: Rig) -> tuple[types.ModuleType, types.ModuleType]:
    """Fresh `picamera2` and `libcamera` modules wired to `rig`, for sys.modules."""
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = type("Picamera2", (FakePicamera2,), {"rig": rig})
    picamera2.CancelledError = CancelledError
    picamera2.TimeoutError = TimeoutError
    libcamera = types.ModuleType("libcamera")
    libcamera.ColorSpace = FakeColorSpace
    return picamera2, libcamera
