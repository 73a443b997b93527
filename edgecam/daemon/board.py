"""The board's health: CPU temperature and the Pi firmware's throttle flags.

A Pi that overheats (the SoC throttles at 80-85 °C) or gets too little power
(a weak supply) classifies at half its rate without anything else going
wrong, so the daemon reports both. On a Pi the firmware exposes its flags in
sysfs (`get_throttled`, the same bits `vcgencmd get_throttled` prints);
`vcgencmd` is asked only where that file is missing. Elsewhere only the
temperature is known, from the kernel's thermal zones. Everything is read
under `root` so tests can point it at a fake sysfs tree.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

THROTTLED_FILE = "sys/devices/platform/soc/soc:firmware/get_throttled"
THERMAL_DIR = "sys/class/thermal"
# Thermal zones that measure the CPU, best first (Pi: cpu-thermal; x86: x86_pkg_temp).
_CPU_ZONES = ("cpu-thermal", "cpu_thermal", "x86_pkg_temp", "soc_thermal", "cpu")
_VCGENCMD_S = 2.0

# get_throttled bits: "now" in the low half, "has happened since boot" 16 bits up.
UNDER_VOLTAGE = 1 << 0
FREQ_CAPPED = 1 << 1
THROTTLED = 1 << 2
SOFT_TEMP_LIMIT = 1 << 3
SINCE_BOOT_SHIFT = 16

#: flag name (as the stats message names it) → (bit, what the log calls it)
FLAGS = {
    "under_voltage": (UNDER_VOLTAGE, "under-voltage"),
    "freq_capped": (FREQ_CAPPED, "ARM frequency capping"),
    "throttled": (THROTTLED, "throttling"),
    "soft_temp_limit": (SOFT_TEMP_LIMIT, "soft temperature limit"),
}


@dataclass(frozen=True)
class BoardState:
    """One reading. None: the board does not report it (no thermal zone, not a Pi)."""

    temperature_c: float | None
    throttled_bits: int | None  # the raw get_throttled value

    def active(self) -> dict[str, bool]:
        """Each flag's state now; empty where the board has no throttle flags."""
        if self.throttled_bits is None:
            return {}
        return {name: bool(self.throttled_bits & bit) for name, (bit, _) in FLAGS.items()}

    def since_boot(self) -> list[str]:
        """The flags that have been set at some point since boot."""
        if self.throttled_bits is None:
            return []
        return [name for name, (bit, _) in FLAGS.items()
                if self.throttled_bits & (bit << SINCE_BOOT_SHIFT)]


def read_board(root: Path = Path("/"), *, vcgencmd: bool = True) -> BoardState:
    return BoardState(read_temperature(root), read_throttled(root, vcgencmd=vcgencmd))


def read_temperature(root: Path = Path("/")) -> float | None:
    """The CPU's temperature in °C from the best thermal zone, None if there is none."""
    zones: dict[str, Path] = {}
    try:
        for zone in sorted((root / THERMAL_DIR).glob("thermal_zone*")):
            kind = _read(zone / "type")
            if kind is not None:
                zones.setdefault(kind, zone)
    except OSError:
        return None
    ranked = [zones[k] for k in _CPU_ZONES if k in zones] + list(zones.values())
    for zone in ranked:
        text = _read(zone / "temp")
        try:
            return int(text) / 1000 if text is not None else None
        except ValueError:
            continue
    return None


def read_throttled(root: Path = Path("/"), *, vcgencmd: bool = True) -> int | None:
    """The firmware's throttle bits (sysfs, else `vcgencmd get_throttled` if allowed); None off a Pi."""
    text = _read(root / THROTTLED_FILE)
    if text is None and vcgencmd and root == Path("/") and shutil.which("vcgencmd"):
        text = _vcgencmd()
    if text is None:
        return None
    try:
        return int(text.removeprefix("throttled="), 16)
    except ValueError:
        return None


def _vcgencmd() -> str | None:
    try:
        done = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True,
                              timeout=_VCGENCMD_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
