"""The board watch (edgecam/daemon/board_watch.py): its gauges, and one line per change, not per reading.

Readings are given with explicit monotonic times, or read from a fake sysfs
tree through EDGECAM_BOARD_ROOT, so nothing here waits on the clock.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from sysfs import fake_sysfs, set_throttled

from edgecam.core.stats import Stats
from edgecam.daemon.board import THROTTLED_FILE, BoardState
from edgecam.daemon.board_watch import BOARD_ROOT_ENV, SAMPLE_S, BoardWatch

WATCH_LOG = "edgecam.daemon.board_watch"
HEALTHY, THROTTLED, UNDER_VOLTAGE = 0x0, 0x4, 0x1


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    found = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == WATCH_LOG]
    caplog.clear()
    return found


@pytest.fixture
def stats() -> Stats:
    return Stats()


@pytest.fixture
def watch(stats: Stats, caplog: pytest.LogCaptureFixture) -> BoardWatch:
    caplog.set_level(logging.INFO, logger=WATCH_LOG)
    return BoardWatch(stats, environ={})


def test_throttling_begins_stays_and_ends_one_line_each(watch: BoardWatch, caplog) -> None:
    watch.update(BoardState(55.0, HEALTHY), now=0.0)
    assert lines(caplog) == []
    watch.update(BoardState(82.0, THROTTLED), now=5.0)
    assert lines(caplog) == [(logging.WARNING, "board: throttling began at 82.0 °C: the CPU runs slower, "
                              "so fewer frames are classified; improve cooling: a heatsink or fan "
                              "(or the power supply, if under-voltage is reported too)")]
    for now in (10.0, 15.0, 20.0):
        watch.update(BoardState(83.0, THROTTLED), now=now)
    assert lines(caplog) == [], "still throttled: nothing more"
    watch.update(BoardState(74.0, HEALTHY), now=45.0)
    assert lines(caplog) == [(logging.INFO, "board: throttling ended after 40 s at 74.0 °C")]
    watch.update(BoardState(70.0, HEALTHY), now=50.0)
    assert lines(caplog) == []


def test_each_trouble_has_its_own_lines_and_advice(watch: BoardWatch, caplog) -> None:
    watch.update(BoardState(None, HEALTHY), now=0.0)
    watch.update(BoardState(None, UNDER_VOLTAGE | THROTTLED), now=1.0)
    warnings = lines(caplog)
    assert [m.split(":")[1].strip() for _, m in warnings] == ["under-voltage began", "throttling began"]
    assert "use the official 5 V / 3 A (Pi 4) or 5 A (Pi 5) supply" in warnings[0][1]
    assert "°C" not in warnings[0][1], "no temperature reported: none shown"
    watch.update(BoardState(None, THROTTLED), now=181.0)
    assert lines(caplog) == [(logging.INFO, "board: under-voltage ended after 3 min")]
    watch.update(BoardState(62.0, 0x8), now=200.0)
    assert lines(caplog) == [
        (logging.INFO, "board: throttling ended after 3 min at 62.0 °C"),
        (logging.WARNING, "board: soft temperature limit began at 62.0 °C: the firmware lowers the "
                          "CPU clock; improve cooling: a heatsink or fan")]


def test_frequency_capping_alone_is_reported_not_logged(watch: BoardWatch, stats: Stats,
                                                        caplog) -> None:
    watch.update(BoardState(60.0, 0x2), now=0.0)
    watch.update(BoardState(60.0, 0x0), now=5.0)
    assert lines(caplog) == []
    watch.update(BoardState(60.0, 0x2), now=10.0)
    assert stats.figures()["board"]["freq_capped"] is True


def test_what_happened_since_boot_is_said_once(watch: BoardWatch, caplog) -> None:
    watch.update(BoardState(48.0, 0x50000), now=0.0)
    assert lines(caplog) == [(logging.WARNING, "board: since boot the Pi has had under-voltage, "
                              "throttling (get_throttled=0x50000)")]
    watch.update(BoardState(48.0, 0x50000), now=5.0)
    assert lines(caplog) == []


def test_a_trouble_present_at_start_begins_at_the_first_reading(watch: BoardWatch, caplog) -> None:
    watch.update(BoardState(70.0, 0x50005), now=0.0)
    assert [m for _, m in lines(caplog)] == [
        "board: since boot the Pi has had under-voltage, throttling (get_throttled=0x50005)",
        "board: under-voltage began at 70.0 °C: the power supply is too weak and the Pi slows down; "
        "use the official 5 V / 3 A (Pi 4) or 5 A (Pi 5) supply",
        "board: throttling began at 70.0 °C: the CPU runs slower, so fewer frames are classified; "
        "improve cooling: a heatsink or fan (or the power supply, if under-voltage is reported too)"]


def test_the_gauges_follow_the_readings(watch: BoardWatch, stats: Stats) -> None:
    assert stats.figures()["board"] == {"temperature_c": None, "under_voltage": None,
                                         "freq_capped": None, "throttled": None,
                                         "soft_temp_limit": None}, "not read yet: unknown"
    watch.update(BoardState(48.26, 0x50005), now=0.0)
    assert stats.figures()["board"] == {"temperature_c": 48.3, "under_voltage": True,
                                         "freq_capped": False, "throttled": True,
                                         "soft_temp_limit": False}
    watch.update(BoardState(51.0, None), now=5.0)  # get_throttled went away: the flags are unknown
    assert stats.figures()["board"] == {"temperature_c": 51.0, "under_voltage": None,
                                         "freq_capped": None, "throttled": None,
                                         "soft_temp_limit": None}
    watch.update(BoardState(None, None), now=10.0)
    assert stats.figures()["board"]["temperature_c"] is None


def test_the_board_is_read_every_sample_interval_from_the_root_given(tmp_path: Path, stats: Stats,
                                                                    caplog) -> None:
    caplog.set_level(logging.INFO, logger=WATCH_LOG)
    root = fake_sysfs(tmp_path, {"cpu-thermal": "45000"}, throttled="0")
    watch = BoardWatch(stats, environ={BOARD_ROOT_ENV: str(root)})
    watch.sample(100.0)
    assert stats.figures()["board"]["temperature_c"] == 45.0
    set_throttled(root, "0x4")
    watch.sample(100.0 + SAMPLE_S - 0.1)
    assert stats.figures()["board"]["throttled"] is False, "not due yet"
    assert lines(caplog) == []
    watch.sample(100.0 + SAMPLE_S)
    assert stats.figures()["board"]["throttled"] is True
    assert [m.split(" at ")[0] for _, m in lines(caplog)] == ["board: throttling began"]


@pytest.mark.skipif((Path("/") / THROTTLED_FILE).exists(), reason="a Pi: sysfs answers, not vcgencmd")
@pytest.mark.parametrize(("answer", "runs"), [("echo throttled=0x50005", 3), ("exit 1", 1)])
def test_vcgencmd_is_asked_again_only_if_it_answered(tmp_path: Path, stats: Stats, monkeypatch,
                                                    answer: str, runs: int) -> None:
    """A fake `vcgencmd` on PATH, for the real root (/sys here has no get_throttled)."""
    calls = tmp_path / "calls"
    script = tmp_path / "bin" / "vcgencmd"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n{answer}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    watch = BoardWatch(stats, environ={})
    for n in range(3):
        watch.sample(n * SAMPLE_S)
    assert calls.read_text().splitlines() == ["get_throttled"] * runs
    assert stats.figures()["board"]["throttled"] is (True if runs == 3 else None)
