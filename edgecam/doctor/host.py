"""The host around the daemon: the journal, free memory and disk, the board's temperature and power.

None of these stops edgecam from running, so all are advisory: without a
journal results go to stderr, and a Pi short of memory, disk, cooling or
power keeps classifying, only slower or less reliably. The thresholds: the
daemon uses about 200 MB of memory (its unit caps it at 512 MB); the disk
needs room for heads and snapshots, and for the journal and apt beside them;
a Pi's firmware slows the CPU from 80 °C.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from edgecam.config import JournalConfig
from edgecam.daemon.board import FLAGS, BoardState
from edgecam.doctor.check import Check, failed, passed
from edgecam.doctor.files import nearest_existing
from edgecam.doctor.machine import package_version
from edgecam.outputs.journal import systemd_sender

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
MEMINFO = Path("/proc/meminfo")
MIN_MEMORY_BYTES = 256 * 2**20
MIN_DISK_BYTES = 256 * 2**20
HOT_C = 80.0
_COOLING_FIX = "improve cooling: a heatsink or a fan, a case with air flow, out of the sun"
_POWER_FIX = ("use the official 5.1 V power supply (3 A for a Pi 4, 5 A for a Pi 5), not a phone charger "
              "or a long thin cable")


def check_journal(journal: JournalConfig) -> Check:
    if not journal.enabled:
        return passed("journal", "not used (outputs.journal.enabled: false)")
    if systemd_sender() is None:
        return failed("journal", "python-systemd is not installed: results go to stderr, without their "
                                 "EDGECAM_* fields", "sudo apt install python3-systemd (or pip install "
                                                     "'edgecam[systemd]' into its virtualenv)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(str(JOURNAL_SOCKET))
    except OSError as exc:
        return failed("journal", f"journald does not answer at {JOURNAL_SOCKET} ({exc.strerror}): "
                                 "results cannot reach the journal",
                      "run edgecam under systemd, or set outputs.journal.enabled: false and read the "
                      "socket or MQTT")
    finally:
        probe.close()
    return passed("journal", f"systemd-python {package_version('systemd-python')}, journald at "
                             f"{JOURNAL_SOCKET}")


def check_memory() -> Check:
    try:
        fields = dict(line.split(":", 1) for line in MEMINFO.read_text().splitlines() if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
        total = int(fields["MemTotal"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return failed("memory", f"{MEMINFO} cannot be read", "mount /proc")
    detail = f"{_size(available)} available of {_size(total)}"
    if available < MIN_MEMORY_BYTES:
        return failed("memory", f"{detail}: the daemon needs about 200 MB",
                      "stop programs and services the camera does not need")
    return passed("memory", detail)


def check_disk(folder: Path) -> Check:
    """Free space where heads (and snapshots) are written: `folder`, or the nearest parent that exists."""
    existing = nearest_existing(folder)
    try:
        stats = os.statvfs(existing)
    except OSError as exc:
        return failed("disk", f"{existing}: cannot tell the free space: {exc.strerror}",
                      "check that the disk is mounted")
    free = stats.f_bavail * stats.f_frsize
    where = str(folder) if existing == folder else f"{folder} (would be on {existing})"
    detail = f"{_size(free)} free for {where}"
    if free < MIN_DISK_BYTES:
        return failed("disk", f"{detail}: heads and snapshots may not fit, the journal and apt need room too",
                      "free some space (sudo apt clean; sudo journalctl --vacuum-size=50M) or use a "
                      "larger SD card")
    return passed("disk", detail)


def check_board(board: BoardState) -> list[Check]:
    """The CPU temperature and the firmware's throttle flags (a Pi's; elsewhere not reported)."""
    checks = []
    temperature = board.temperature_c
    if temperature is None:
        checks.append(passed("temperature", "not reported by this board"))
    elif temperature >= HOT_C:
        checks.append(failed("temperature", f"{temperature:.1f} °C: the CPU slows down from {HOT_C:g} °C",
                             _COOLING_FIX))
    else:
        checks.append(passed("temperature", f"{temperature:.1f} °C"))
    active = [name for name, on in board.active().items() if on]
    since_boot = board.since_boot()
    if board.throttled_bits is None:
        checks.append(passed("throttling", "no throttle flags (not a Raspberry Pi)"))
    elif active:  # under-voltage caps the CPU too: the supply is then the cause
        checks.append(failed("throttling", "now: " + ", ".join(FLAGS[name][1] for name in active),
                             _POWER_FIX if "under_voltage" in active else _COOLING_FIX))
    else:
        earlier = f" (since boot: {', '.join(FLAGS[n][1] for n in since_boot)})" if since_boot else ""
        checks.append(passed("throttling", f"none now{earlier}"))
    return checks


def _size(count: float) -> str:
    if count < 1024:
        return f"{count:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024:
            return f"{count:.1f} {unit}"
    return f"{count / 1024:.1f} TiB"
