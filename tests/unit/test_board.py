"""The board reader against fake sysfs trees: a Pi's firmware flags and thermal zones, and a PC's."""

from __future__ import annotations

from pathlib import Path

from sysfs import fake_sysfs

from edgecam.daemon.board import read_board


def test_a_pi_that_is_hot_and_underpowered(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, {"cpu-thermal": "81234"}, throttled="50005")
    state = read_board(root)
    assert state.temperature_c == 81.234
    assert state.active() == {"under_voltage": True, "freq_capped": False, "throttled": True,
                              "soft_temp_limit": False}
    assert state.since_boot() == ["under_voltage", "throttled"]


def test_a_healthy_pi(tmp_path: Path) -> None:
    state = read_board(fake_sysfs(tmp_path, {"cpu-thermal": "45000"}, throttled="0"))
    assert state.temperature_c == 45.0
    assert not any(state.active().values())
    assert state.since_boot() == []


def test_a_pc_prefers_the_cpu_zone_and_has_no_flags(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, {"acpitz": "27800", "x86_pkg_temp": "52000"})
    state = read_board(root)
    assert state.temperature_c == 52.0
    assert state.throttled_bits is None
    assert state.active() == {}


def test_nothing_reported(tmp_path: Path) -> None:
    state = read_board(tmp_path)
    assert (state.temperature_c, state.throttled_bits) == (None, None)


def test_unreadable_values_are_unknown(tmp_path: Path) -> None:
    state = read_board(fake_sysfs(tmp_path, {"cpu-thermal": "n/a"}, throttled="bogus"))
    assert (state.temperature_c, state.throttled_bits) == (None, None)
