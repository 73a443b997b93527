"""A fake sysfs tree for the board reader (edgecam/daemon/board.py): thermal zones and a Pi's flags.

The daemon reads it through EDGECAM_BOARD_ROOT. Values are rewritten the way
the kernel's never half-written files would be read: replaced atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgecam.daemon.board import THERMAL_DIR, THROTTLED_FILE


def fake_sysfs(root: Path, zones: dict[str, str], throttled: str | None = None) -> Path:
    """Thermal zones (type → temp in m°C, as text) and, for a Pi, get_throttled's hex text."""
    for number, (kind, temp) in enumerate(zones.items()):
        zone = root / THERMAL_DIR / f"thermal_zone{number}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp + "\n")
    if throttled is not None:
        set_throttled(root, throttled)
    return root


def set_throttled(root: Path, value: str) -> None:
    _replace(root / THROTTLED_FILE, value)


def set_temperature(root: Path, celsius: float, zone: int = 0) -> None:
    _replace(root / THERMAL_DIR / f"thermal_zone{zone}" / "temp", str(round(celsius * 1000)))


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text + "\n")
    os.replace(temp, path)
