"""The machine: edgecam needs a 64-bit OS, because its TensorFlow Lite runtimes only exist for one.

ai-edge-litert (LiteRT) publishes aarch64 wheels and no 32-bit ARM ones, and
tflite-runtime's last release (2.14) has no wheel for Python 3.11 on aarch64
nor any for armv7l: on a 32-bit Raspberry Pi OS (armhf, Python 3.11) there is
no runtime to install, so the doctor says so on its first line instead of
letting pip fail later. `EDGECAM_ARCH` stands in for `platform.machine()`,
so tests (and install.sh's same check) can play a 32-bit Pi on any machine.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from edgecam.doctor.check import Check, failed, passed

ARCH_VARIABLE = "EDGECAM_ARCH"
# What uname reports for 32-bit ARM userlands (armv8l: a 32-bit OS on a 64-bit CPU).
_32BIT_ARM = frozenset({"arm", "armel", "armhf", "armv6l", "armv7l", "armv8l"})
_BOARD_MODEL = Path("/proc/device-tree/model")


def check_machine() -> Check:
    machine = os.environ.get(ARCH_VARIABLE) or platform.machine()
    board = board_model()
    if machine in _32BIT_ARM:
        return failed(
            "platform",
            f"{machine} is a 32-bit OS: edgecam needs a 64-bit Raspberry Pi OS, because ai-edge-litert "
            "has aarch64 wheels only and tflite-runtime 2.14 has neither cp311 aarch64 nor armv7l ones",
            "install Raspberry Pi OS (64-bit) with Raspberry Pi Imager (a Pi 3, 4, 5, 400 or Zero 2 W "
            "runs it)")
    where = f" ({board})" if board else ""
    return passed("platform", f"{machine}{where}, Python {platform.python_version()}")


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
