"""The doctor's verdicts in process, on real files: a Pi's sysfs, socket folders, the report's lines.

The command as a whole (real model, camera, daemon, an unprivileged user) is
tested in tests/integration/test_doctor.py.
"""

from __future__ import annotations

from pathlib import Path

from edgecam.cli.doctor import report
from edgecam.config import SocketConfig
from edgecam.daemon.board import THERMAL_DIR, THROTTLED_FILE, read_board
from edgecam.doctor.check import Check, failed, passed
from edgecam.doctor.host import check_board, check_disk
from edgecam.doctor.socket import RUNTIME_DIR, check_socket_folder, check_socket_group


def pi_sysfs(root: Path, millidegrees: int, throttled: str) -> Path:
    zone = root / THERMAL_DIR / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{millidegrees}\n")
    flags = root / THROTTLED_FILE
    flags.parent.mkdir(parents=True)
    flags.write_text(f"throttled={throttled}\n")
    return root


def test_a_hot_underpowered_pi_fails_both_with_the_power_supply_first(tmp_path: Path) -> None:
    temperature, throttling = check_board(read_board(pi_sysfs(tmp_path, 81234, "0x50005")))
    assert not temperature.ok and temperature.detail.startswith("81.2 °C")
    assert "cooling" in (temperature.fix or "")
    assert not throttling.ok and throttling.detail.startswith("now: under-voltage")
    assert "power supply" in (throttling.fix or "")
    assert not temperature.required and not throttling.required


def test_a_pi_throttled_only_since_boot_passes_and_says_so(tmp_path: Path) -> None:
    temperature, throttling = check_board(read_board(pi_sysfs(tmp_path, 52000, "0x10000")))
    assert temperature == passed("temperature", "52.0 °C")
    assert throttling.ok and throttling.detail.startswith("none now (since boot: under-voltage")


def test_a_board_without_sensors_passes_with_a_note(tmp_path: Path) -> None:
    temperature, throttling = check_board(read_board(tmp_path))
    assert temperature.ok and throttling.ok
    assert throttling.detail == "no throttle flags (not a Raspberry Pi)"


def test_disk_is_measured_on_the_nearest_folder_that_exists(tmp_path: Path) -> None:
    disk = check_disk(tmp_path / "heads" / "later")
    assert disk.ok and disk.detail.endswith(f"free for {tmp_path}/heads/later (would be on {tmp_path})")


def test_socket_folders(tmp_path: Path) -> None:
    missing = check_socket_folder(SocketConfig(path=str(tmp_path / "new" / "results.sock")))
    assert missing.ok and "the daemon creates it" in missing.detail
    if not RUNTIME_DIR.exists():  # systemd makes it when the service starts
        systemd = check_socket_folder(SocketConfig(path=str(RUNTIME_DIR / "results.sock")))
        assert systemd.ok and "RuntimeDirectory=edgecam" in systemd.detail
    (tmp_path / "file").write_text("")
    not_a_folder = check_socket_folder(SocketConfig(path=str(tmp_path / "file" / "results.sock")))
    assert not not_a_folder.ok and not_a_folder.required
    assert not_a_folder.detail == f"{tmp_path / 'file'} is a file, not a folder"
    (tmp_path / "taken").write_text("")
    taken = check_socket_folder(SocketConfig(path=str(tmp_path / "taken")))
    assert not taken.ok and taken.detail == f"{tmp_path / 'taken'} exists and is not a socket"
    off = SocketConfig(enabled=False, path=str(tmp_path / "file" / "results.sock"))
    assert check_socket_folder(off).ok and check_socket_group(off).ok


def test_the_report_puts_advisory_checks_apart_and_names_what_blocks() -> None:
    checks = [passed("platform", "aarch64"), failed("camera", "camera.source: /dev/video9: no such device",
                                                    "plug it in"),
              failed("clock", "not synchronised", "turn NTP on"), passed("groups", "root needs no groups")]
    assert report(checks).splitlines() == [
        "✓ platform: aarch64",
        "✗ camera: camera.source: /dev/video9: no such device — plug it in",
        "advisory (edgecam runs without these):",
        "✗ clock: not synchronised — turn NTP on",
        "✓ groups: root needs no groups",
        "not ready: camera must pass; advisory ✗: clock",
    ]
    assert Check("clock", True, "synchronised").as_dict() == {
        "check": "clock", "ok": True, "detail": "synchronised", "fix": None}
