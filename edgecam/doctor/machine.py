"""The machine: edgecam needs a 64-bit OS, because its TensorFlow Lite runtimes only exist for one.

ai-edge-litert (LiteRT) publishes aarch64 wheels and no 32-bit ARM ones, and
tflite-runtime's last release (2.14) has no wheel for Python 3.11 on aarch64
nor any for armv7l: on a 32-bit Raspberry Pi OS (armhf, Python 3.11) there is
no runtime to install, so the doctor says so on its first line instead of
letting pip fail later, in the words of edgecam.dependencies (`EDGECAM_ARCH`
plays a 32-bit Pi on any machine, as for install.sh's same check).
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from edgecam.dependencies import thirty_two_bit_os
from edgecam.doctor.check import Check, failed, passed

_BOARD_MODEL = Path("/proc/device-tree/model")


def check_machine() -> Check:
    refusal = thirty_two_bit_os()  # the same line `edgecam run` gives without a runtime
    if refusal:
        return failed("platform", refusal,
                      "install Raspberry Pi OS (64-bit) with Raspberry Pi Imager (a Pi 3, 4, 5, 400 "
                      "or Zero 2 W runs it)")
    board = board_model()
    where = f" ({board})" if board else ""
    return passed("platform", f"{platform.machine()}{where}, Python {platform.python_version()}")


def board_model() -> str | None:
    """The board's name from the device tree ("Raspberry Pi 4 Model B Rev 1.4"), None elsewhere."""
    try:
        return _BOARD_MODEL.read_bytes().rstrip(b"\0").decode(errors="replace").strip() or None
    except OSError:
        return None


def package_version(distribution: str) -> str:
    """An installed pip distribution's version ("(version unknown)" when it has no metadata)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "(version unknown)"
