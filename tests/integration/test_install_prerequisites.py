"""`make install`'s checks before it installs anything: each missing prerequisite is one line.

These run on this machine, not in the systemd sandbox: each check fails before the
install touches anything. As a safety net, when the tests run as root the script
runs as `nobody`, so that a check that wrongly passed ends at "run as root", not
in an install on this machine.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import REPO

from edgecam.dependencies import thirty_two_bit_os

INSTALL = REPO / "systemd" / "install.sh"


def install(**env: str) -> subprocess.CompletedProcess[str]:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*as_nobody, "bash", str(INSTALL), "install"], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "HOME": "/", **env})


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == "", result.stdout  # nothing was done, so nothing said
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecam install: error: ")
    return lines[0].removeprefix("edgecam install: error: ")


@pytest.mark.parametrize("arch", ["armv7l", "armhf", "i686"])
def test_a_32_bit_os_is_refused_at_once(monkeypatch: pytest.MonkeyPatch, arch: str) -> None:
    monkeypatch.setenv("EDGECAM_ARCH", arch)
    line = one_error_line(install())
    assert line == thirty_two_bit_os()  # what `edgecam` says on such a machine: the same line
    assert "64-bit Raspberry Pi OS" in line and "LiteRT, has no 32-bit wheel" in line


def test_an_architecture_without_a_runtime_is_refused() -> None:
    assert one_error_line(install(EDGECAM_ARCH="riscv64")) == (
        "edgecam's runtime, LiteRT, has no wheel for riscv64 (only for aarch64 and x86_64)")


def test_a_python_that_is_not_there_is_one_line() -> None:
    assert one_error_line(install(PYTHON="/nonexistent/python3")) == (
        "/nonexistent/python3 not found: sudo apt install python3 (or set PYTHON)")


def test_without_python3_systemd_nor_its_build_tools_it_says_to_install_python3_systemd() -> None:
    if subprocess.run(["/usr/bin/python3", "-c", "import systemd.journal"], capture_output=True,
                      check=False).returncode == 0:
        pytest.skip("apt's python3-systemd is installed here: nothing to build")
    # pkg-config finds no libsystemd in an empty search path, as without libsystemd-dev.
    line = one_error_line(install(PKG_CONFIG_LIBDIR="/nonexistent"))
    assert line.startswith("install python3-systemd first: sudo apt install python3-systemd (")
