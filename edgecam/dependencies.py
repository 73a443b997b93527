"""The optional pieces some work needs, and the one line each says when it is not installed.

OpenCV, a TensorFlow Lite runtime, picamera2 and paho-mqtt 2.x come from apt
(Raspberry Pi OS, in a virtualenv made with --system-site-packages) or from
pip extras, and only some commands and configs need each. One that is missing
ends the work with one line naming what to install and an exit code of its
own (errors.py, 80-86), never an ImportError's traceback. The modules that
import a piece lazily raise MissingDependency themselves (models/runtime.py,
models/onnx.py, picam.py, outputs/mqtt_client.py, fleet/signing.py); OpenCV is imported at the top
of many modules, so the CLI turns a ModuleNotFoundError of a piece's module
into its line (`from_import_error`, at one seam: cli._call).
"""

from __future__ import annotations

import os
import platform
import struct
from dataclasses import dataclass

from edgecam.errors import (
    EX_NO_CRYPTOGRAPHY,
    EX_NO_HAILORT,
    EX_NO_ONNXRUNTIME,
    EX_NO_OPENCV,
    EX_NO_PAHO,
    EX_NO_PICAMERA2,
    EX_NO_RUNTIME,
    EdgecamError,
)


@dataclass(frozen=True)
class Piece:
    """An optional piece: the top-level modules it provides, its exit code, and its one line."""

    modules: tuple[str, ...]
    exit_code: int
    message: str


OPENCV = Piece(("cv2",), EX_NO_OPENCV,
               "OpenCV is not installed: sudo apt install python3-opencv (with a virtualenv made with "
               "--system-site-packages), or pip install 'edgecam[opencv]'")
RUNTIME = Piece(("ai_edge_litert", "tflite_runtime"), EX_NO_RUNTIME,
                "no TensorFlow Lite runtime is installed: pip install 'edgecam[litert]' "
                "(LiteRT: Raspberry Pi OS has no apt package of it)")
PICAMERA2 = Piece(("picamera2", "libcamera"), EX_NO_PICAMERA2,
                  "picamera2 is not installed (on Raspberry Pi OS: sudo apt install python3-picamera2, "
                  "and make the virtualenv with --system-site-packages)")
PAHO = Piece(("paho",), EX_NO_PAHO,
             "outputs.mqtt needs paho-mqtt 2.x: pip install 'edgecam[mqtt]' into the virtualenv "
             "(bookworm's python3-paho-mqtt is 1.6, whose API differs)")
ONNXRUNTIME = Piece(("onnxruntime",), EX_NO_ONNXRUNTIME,
                    "an .onnx model needs ONNX Runtime: pip install 'edgecam[onnx]' into the "
                    "virtualenv (on a Jetson: NVIDIA's onnxruntime-gpu wheel for its JetPack)")
HAILORT = Piece(("hailo_platform",), EX_NO_HAILORT,
                "a .hef model needs the Hailo runtime: sudo apt install hailo-all, then reboot "
                "(and make the virtualenv with --system-site-packages)")
CRYPTOGRAPHY = Piece(("cryptography",), EX_NO_CRYPTOGRAPHY,
                     "signed fleet rollouts need cryptography: sudo apt install python3-cryptography "
                     "(with a virtualenv made with --system-site-packages), or pip install "
                     "'edgecam[fleet]'")
PIECES = (OPENCV, RUNTIME, PICAMERA2, PAHO, ONNXRUNTIME, HAILORT, CRYPTOGRAPHY)

#: what `uname -m` and dpkg call the 32-bit platforms no runtime has a wheel for
_32BIT = {"armv6l", "armv7l", "armv8l", "armhf", "armel", "i386", "i486", "i586", "i686"}


class MissingDependency(EdgecamError):
    """A piece the work needs is not installed; `piece` says which, its exit code goes with it."""

    def __init__(self, piece: Piece, message: str | None = None) -> None:
        super().__init__(message or piece.message)
        self.piece = piece
        self.exit_code = piece.exit_code


def from_import_error(exc: ModuleNotFoundError) -> MissingDependency | None:
    """The MissingDependency a failed import means, or None if the module is no piece's."""
    top = (exc.name or "").partition(".")[0]
    piece = next((p for p in PIECES if top in p.modules), None)
    return None if piece is None else MissingDependency(piece)


def runtime_missing() -> MissingDependency:
    """No runtime: on a 32-bit OS, where none can be installed, the line says so instead."""
    return MissingDependency(RUNTIME, thirty_two_bit_os())


def thirty_two_bit_os() -> str | None:
    """The one line saying that a 64-bit OS is needed, and why, when this one is 32-bit; else None.

    EDGECAM_ARCH stands for the machine's name (`uname -m`'s or dpkg's: armv7l, armhf...)
    as in systemd/install.sh, so that the refusal is testable on any machine. A 32-bit
    Python on a 64-bit kernel (32-bit Raspberry Pi OS on a Pi 4 says aarch64) is 32-bit:
    so are the wheels it can install.
    """
    override = os.environ.get("EDGECAM_ARCH")
    if override:
        arch, is_32bit = override, override in _32BIT
    else:
        arch = platform.machine()
        is_32bit = arch in _32BIT or struct.calcsize("P") == 4
    if not is_32bit:
        return None
    return (f"edgecam needs a 64-bit OS (on a Raspberry Pi, 64-bit Raspberry Pi OS), not 32-bit "
            f"{arch}: its runtime, LiteRT, has no 32-bit wheel (nor has tflite-runtime)")
