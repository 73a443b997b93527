"""The optional pieces: which import means which piece, their exit codes, the 64-bit line."""

from __future__ import annotations

import pytest

from edgecam import errors
from edgecam.dependencies import (
    OPENCV,
    PIECES,
    RUNTIME,
    from_import_error,
    runtime_missing,
    thirty_two_bit_os,
)


def test_each_piece_has_its_own_code_beside_sysexits() -> None:
    sysexits = {errors.EX_DATAERR, errors.EX_NOINPUT, errors.EX_UNAVAILABLE, errors.EX_SOFTWARE,
                errors.EX_TEMPFAIL, errors.EX_CONFIG}
    codes = [piece.exit_code for piece in PIECES]
    assert len(set(codes)) == len(codes) and not set(codes) & sysexits
    assert all("\n" not in piece.message for piece in PIECES)


@pytest.mark.parametrize("module", ["cv2", "cv2.typing"])
def test_a_missing_opencv_module_is_the_opencv_line(module: str) -> None:
    missing = from_import_error(ModuleNotFoundError(f"No module named '{module}'", name=module))
    assert missing is not None and missing.piece is OPENCV
    assert missing.exit_code == errors.EX_NO_OPENCV and str(missing) == OPENCV.message


def test_another_missing_module_is_no_piece() -> None:
    assert from_import_error(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None


@pytest.mark.parametrize("arch", ["armv7l", "armv6l", "armhf", "i686"])
def test_a_32_bit_os_is_said_at_once(monkeypatch: pytest.MonkeyPatch, arch: str) -> None:
    monkeypatch.setenv("EDGECAM_ARCH", arch)
    line = thirty_two_bit_os()
    assert line == (f"edgecam needs a 64-bit OS (on a Raspberry Pi, 64-bit Raspberry Pi OS), not 32-bit "
                    f"{arch}: its runtime, LiteRT, has no 32-bit wheel (nor has tflite-runtime)")
    assert str(runtime_missing()) == line and runtime_missing().exit_code == errors.EX_NO_RUNTIME


@pytest.mark.parametrize("arch", ["aarch64", "arm64", "x86_64", ""])
def test_a_64_bit_os_gets_the_install_line(monkeypatch: pytest.MonkeyPatch, arch: str) -> None:
    monkeypatch.setenv("EDGECAM_ARCH", arch)  # "": this machine, a 64-bit one
    assert thirty_two_bit_os() is None
    assert str(runtime_missing()) == RUNTIME.message
