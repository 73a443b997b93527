"""Heat and power awareness in the real daemon, reading a fake sysfs tree (EDGECAM_BOARD_ROOT).

The test rewrites the tree's files as the kernel would change them and
watches /metrics (read at scrape time, so it shows each reading at once),
the socket's stats messages and the daemon's log. Waits only bound hangs.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from brokers import free_port
from harness import Client, base_config, wait_for
from sysfs import fake_sysfs, set_temperature, set_throttled

from edgecam.daemon.board import THROTTLED_FILE
from edgecam.daemon.board_watch import BOARD_ROOT_ENV

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

FLAG_METRICS = {"under_voltage": "edgecam_board_under_voltage",
                "freq_capped": "edgecam_board_frequency_capped",
                "throttled": "edgecam_board_throttled",
                "soft_temp_limit": "edgecam_board_soft_temperature_limit"}
READING_S = 30  # bounds a wait for the next reading (one every 5 s)


def scrape(port: int) -> dict[str, float]:
    """Every sample of /metrics without labels, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def metrics_show(port: int, **expected: float) -> bool:
    try:
        samples = scrape(port)
    except OSError:
        return False  # not serving yet
    return all(samples.get(name) == value for name, value in expected.items())


def board_stats(client: Client, temperature_c: float) -> dict[str, Any]:
    """The board section of the first stats message from the socket that shows `temperature_c`."""
    for _ in range(12):
        board = client.messages("stats", 1)[0]["board"]
        if board["temperature_c"] == temperature_c:
            return board
    raise AssertionError(f"no stats message showed {temperature_c} °C: last {board}")


def test_throttling_is_reported_and_logged_once_when_it_begins_and_ends(tmp_path: Path, daemons) -> None:
    root = fake_sysfs(tmp_path / "board", {"cpu-thermal": "48300"}, throttled="0x0")
    port = free_port()
    config = base_config(tmp_path, outputs={"metrics": {"enabled": True, "listen": f"127.0.0.1:{port}"}})
    daemon = daemons(config, env={BOARD_ROOT_ENV: str(root)})
    client = daemon.client()

    # A healthy Pi: its temperature and every flag, in the stats and in /metrics.
    assert board_stats(client, 48.3) == {"temperature_c": 48.3, "under_voltage": False,
                                         "freq_capped": False, "throttled": False,
                                         "soft_temp_limit": False}
    wait_for(lambda: metrics_show(port, edgecam_cpu_temperature_celsius=48.3), READING_S, "48.3 °C")
    assert all(scrape(port)[metric] == 0 for metric in FLAG_METRICS.values())

    # It heats up and the firmware throttles it (the temperature first: one file at a time).
    set_temperature(root, 82.0)
    set_throttled(root, "0x4")
    wait_for(lambda: metrics_show(port, edgecam_board_throttled=1), READING_S, "throttled in /metrics")
    wait_for(lambda: "board: throttling began" in daemon.log(), READING_S, "the line that says so")
    # Still throttled at the next readings: nothing more is logged.
    set_temperature(root, 83.0)
    assert board_stats(client, 83.0)["throttled"] is True
    assert metrics_show(port, edgecam_board_throttled=1, edgecam_cpu_temperature_celsius=83.0)

    # It cools down.
    set_temperature(root, 70.0)
    set_throttled(root, "0x0")
    wait_for(lambda: metrics_show(port, edgecam_board_throttled=0), READING_S, "not throttled")
    set_temperature(root, 69.0)
    wait_for(lambda: metrics_show(port, edgecam_cpu_temperature_celsius=69.0), READING_S, "69 °C")
    assert board_stats(client, 69.0)["throttled"] is False

    log = daemon.log()
    assert log.count("board: throttling began at 82.0 °C: the CPU runs slower") == 1, log
    assert log.count("board: throttling ended after") == 1, log
    assert log.count("board: ") == 2, log

    # The firmware's file goes (a board that has none): the flags are unknown, not "no problem".
    (root / THROTTLED_FILE).unlink()
    wait_for(lambda: FLAG_METRICS["throttled"] not in scrape(port), READING_S, "the flags gone")
    assert set(FLAG_METRICS.values()).isdisjoint(scrape(port))
    set_temperature(root, 68.0)
    board = board_stats(client, 68.0)
    assert board == {"temperature_c": 68.0, **dict.fromkeys(FLAG_METRICS)}
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()
