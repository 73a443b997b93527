"""The one module that imports picamera2 (and its `devices`), only when called.

Importing picamera2 starts libcamera and probes /dev/video* for the ISP, so
nothing imports it at module level: the Pi camera source (sources.picamera)
and the accelerator back-ends (models.imx500, models.hailo) ask here, at the
moment they open their device. A missing picamera2 is one line
(dependencies.PICAMERA2, exit 82); a picamera2 without the Hailo runtime
(`picamera2.devices` leaves `Hailo` out when hailo_platform is missing) is
another (dependencies.HAILORT).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecam.dependencies import HAILORT, PICAMERA2, MissingDependency
from edgecam.errors import EdgecamError, MissingFileError, SourceError


def picamera2(what: str) -> tuple[Any, Any]:
    """The `Picamera2` class and the `libcamera` module; `what` (a config key) starts the errors."""
    try:
        import libcamera
        from picamera2 import Picamera2
    except ImportError:
        # Also the case where picamera2 was pip-installed into a venv that cannot see
        # the system's libcamera bindings: the fix is the same.
        raise MissingDependency(PICAMERA2, f"{what}: {PICAMERA2.message}") from None
    except Exception as exc:  # e.g. a numpy ABI mismatch between the venv and the system packages
        raise SourceError(f"{what}: picamera2 cannot be imported: {reason(exc)}") from None
    return Picamera2, libcamera


def imx500_class() -> Any:
    """picamera2.devices.IMX500 (the AI Camera)."""
    picamera2("model.path")
    from picamera2.devices import IMX500

    return IMX500


def camera_position(num: int) -> int:
    """The position in `Picamera2.global_camera_info()` of libcamera's camera `num`.

    picamera2 (0.3.36, picamera2.py) numbers cameras two ways: `Num` is the camera's
    index in libcamera's list, and `IMX500.camera_num` returns it; `Picamera2(n)` opens
    position n of global_camera_info(), which is sorted by Id. A Pi 5 may enumerate
    its two cameras in the other order, so edgecam's camera numbers (camera.source
    picamera2:N) are positions, and a Num is mapped through the list.
    """
    Picamera2, _ = picamera2("model.path")
    cameras = Picamera2.global_camera_info()
    return next((position for position, camera in enumerate(cameras) if camera.get("Num") == num), num)


def hailo_class() -> Any:
    """picamera2.devices.Hailo (the AI Kit / AI HAT+); HAILORT's line without hailo_platform."""
    picamera2("model.path")
    import picamera2.devices as devices

    hailo = getattr(devices, "Hailo", None)
    if hailo is None:
        raise MissingDependency(HAILORT, f"model.path: {HAILORT.message}")
    return hailo


def open_network(path: str, device: Callable[[], Any], package: str, folder: str,
                 refused: Callable[[Exception], EdgecamError]) -> Any:
    """`device()(path)`: an accelerator's class (imx500_class, hailo_class) loading a network file.

    A missing file names the apt package whose networks live in `folder`; anything the
    device raises becomes `refused(it)`, the one line saying what to connect or fix (by the
    exception's class where the library has one per cause, as hailo_platform does).
    """
    if not Path(path).is_file():
        raise MissingFileError(f"model file not found: {path} (Raspberry Pi OS: sudo apt install "
                               f"{package} puts networks in {folder})")
    opener = device()
    try:
        return opener(path)
    except Exception as exc:
        raise refused(exc) from None


def reason(exc: BaseException) -> str:
    """The most specific message in an exception chain, as one line.

    picamera2 wraps libcamera's errors ("Failed to acquire camera: Device or resource
    busy") in generic ones ("Camera __init__ sequence did not complete."); the innermost
    cause is the one that tells the user what to do. A cause that is only a number is a
    status code (pyhailort raises `HailoRTInvalidHEFException("Invalid HEF...") from
    HailoRTStatusException("26")`): the message it was raised from says it in words, and
    the number follows it.
    """
    chosen, status = exc, None
    seen = {id(exc)}
    cause = exc.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        text = str(cause).strip()
        if text.isdigit():
            status = status or text
        elif text:
            chosen = cause
        cause = cause.__cause__
    text = str(chosen).strip() or type(chosen).__name__
    if status is not None and status not in text:
        text += f" (status {status})"
    return " ".join(text.split())
