"""A real systemd 252 (../shared/tools/systemd-sandbox) with a throw-away /etc, /opt and /var/lib.

The sandbox shares the host's filesystem, so installing into it as a Pi user
would (a system user, /opt/edgecam, /etc/edgecam, /var/lib/edgecam, a unit
in /etc/systemd/system) would change this machine. Inside the sandbox's own
mount namespace, /etc, /opt and /var/lib are therefore overlaid with writable
layers on the sandbox's private /run: the install is real, the host is
untouched, and everything vanishes when the sandbox stops.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import SHARED

TOOL = SHARED / "tools" / "systemd-sandbox"
OVERLAID = ("/etc", "/opt", "/var/lib")


class Sandbox:
    def __init__(self, state_file: Path, overlaid: tuple[str, ...] = OVERLAID) -> None:
        """`overlaid`: the folders given throw-away layers; a package install (dpkg) also writes
        /usr, /var/cache and /var/log."""
        self.env = {**os.environ, "SYSTEMD_SANDBOX_STATE": str(state_file)}
        self.overlaid = overlaid

    def start(self) -> None:
        subprocess.run([str(TOOL), "start"], env=self.env, check=True, capture_output=True,
                       timeout=120)
        for index, lower in enumerate(self.overlaid):
            layer = f"/run/overlay/{index}"
            self.sh(f"mkdir -p {layer}/upper {layer}/work && mount -t overlay overlay "
                    f"-o lowerdir={lower},upperdir={layer}/upper,workdir={layer}/work {lower}")

    def stop(self) -> None:
        subprocess.run([str(TOOL), "stop"], env=self.env, capture_output=True, timeout=120)

    def run(self, *argv: str, check: bool = True, timeout: float = 300, **kw: Any
            ) -> subprocess.CompletedProcess[str]:
        """Runs a command inside the sandbox (its pid, mount, uts and ipc namespaces)."""
        result = subprocess.run([str(TOOL), "exec", *argv], env=self.env, capture_output=True,
                                text=True, timeout=timeout, **kw)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n"
                                 f"{result.stderr}")
        return result

    def sh(self, script: str, check: bool = True, timeout: float = 300
           ) -> subprocess.CompletedProcess[str]:
        return self.run("bash", "-c", script, check=check, timeout=timeout)

    def files(self, *paths: str) -> str:
        """Every file and folder under `paths` with its size, mode, owner and mtime, sorted (byte
        code caches left out): equal listings before and after mean nothing was rewritten."""
        listed = " ".join(shlex.quote(path) for path in paths)
        return self.sh(f"find {listed} -xdev -not -path '*/__pycache__*' "
                       "-printf '%p %s %m %u %T@\\n' | LC_ALL=C sort").stdout

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", *args, check=check, timeout=120)

    def show(self, *properties: str, unit: str = "edgecam") -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str, unit: str = "edgecam") -> list[dict[str, Any]]:
        out = self.run("journalctl", "-u", unit, "-o", "json", "--no-pager", *args).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def cursor(self, unit: str = "edgecam") -> str:
        """The journal's position now: `labels_since` reads what comes after it."""
        entries = self.journal("-n", "1", unit=unit)
        return entries[-1]["__CURSOR"] if entries else ""

    def labels_since(self, cursor: str, unit: str = "edgecam") -> list[str]:
        """The EDGECAM_LABEL of each result journalled after `cursor`."""
        return [e["EDGECAM_LABEL"] for e in self.journal(f"--after-cursor={cursor}", unit=unit)
                if "EDGECAM_LABEL" in e]

    def messages(self, *args: str, unit: str = "edgecam") -> list[str]:
        return [_text(entry.get("MESSAGE", "")) for entry in self.journal(*args, unit=unit)]


def _text(message: Any) -> str:
    """journalctl -o json gives a non-UTF-8 MESSAGE as a list of byte values."""
    return bytes(message).decode(errors="replace") if isinstance(message, list) else message


def sandbox_available() -> str | None:
    """Why the sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if not TOOL.exists():
        return f"{TOOL} not found"
    if not Path("/lib/systemd/systemd").exists():
        return "systemd is not installed"
    if shutil.which("nsenter") is None or shutil.which("unshare") is None:
        return "util-linux nsenter/unshare missing"
    return None


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    reason = sandbox_available()
    if reason:
        pytest.skip(f"systemd sandbox: {reason}")
    box = Sandbox(tmp_path_factory.mktemp("sandbox") / "pid")
    try:
        box.start()
        yield box
    finally:
        box.stop()
