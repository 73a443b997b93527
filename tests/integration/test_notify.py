"""sd_notify as systemd sees it: a real datagram socket bound by the test, NOTIFY_SOCKET set.

Following python-systemd's own test/test_daemon.py: bind a real socket, point
NOTIFY_SOCKET at it, and read what the daemon sends.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from harness import base_config, wait_for, write_config
from notify_socket import NotifySocket


def test_ready_status_watchdog_stopping_in_order(tmp_path: Path, daemons,
                                                 notify_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
    daemon = daemons(base_config(tmp_path), env=env)
    wait_for(lambda: notify_socket.keys().count("WATCHDOG") >= 3, 60, "three WATCHDOG=1 pings")
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    keys = notify_socket.keys()
    ready = keys.index("READY")
    assert "STATUS" in keys[:ready], "STATUS while starting"
    assert keys.index("WATCHDOG") > ready, "no ping before READY"
    assert keys[-2:] == ["STOPPING", "STATUS"]
    statuses = [f for f in notify_socket.received if f.startswith("STATUS=")]
    assert any("fps classified" in s for s in statuses)


def test_a_stuck_inference_stops_the_watchdog_pings(tmp_path: Path, daemons,
                                                    notify_socket: NotifySocket) -> None:
    """The fault hook hangs the inference thread; pings must stop (so systemd restarts us)."""
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000",
           "EDGECAM_FAULT_HANG_AFTER": "30"}
    daemon = daemons(base_config(tmp_path, camera={"fps": 50}), env=env)
    wait_for(lambda: "fault injected" in daemon.log(), 60, "the injected hang")
    before = notify_socket.keys().count("WATCHDOG")
    assert before >= 1
    # Ten watchdog half-periods: a ping from a live pipeline would arrive in any one of them.
    # A slow machine can only make a missing ping more certain, never fail this.
    time.sleep(2.0)
    assert notify_socket.keys().count("WATCHDOG") == before
    assert daemon.proc.poll() is None, "the process itself is still there: only systemd acts"


@pytest.mark.parametrize(("source", "waiting_for"), [
    ("/dev/video9", "waiting for the camera: /dev/video9: no such device"),
    # picamera2 cannot be installed here (it needs Raspberry Pi OS's libcamera): the real
    # import fails as it does on a Pi without python3-picamera2.
    ("picamera2", "waiting for the camera: picamera2 is not installed"),
])
def test_a_missing_camera_is_waited_for_and_a_reload_to_photos_classifies(
        tmp_path: Path, daemons, notify_socket: NotifySocket, source: str, waiting_for: str) -> None:
    """The service starts, says what it waits for once (not per retry), stays watched."""
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "2000000"}
    config = base_config(tmp_path, camera={"source": source, "stall_timeout_s": 0.5})
    daemon = daemons(config, env=env)
    wait_for(lambda: notify_socket.keys().count("READY"), 60, "READY=1 without a camera")
    statuses = [f for f in notify_socket.drain() if f.startswith("STATUS=")]
    assert statuses[-1].startswith(f"STATUS={waiting_for}"), statuses
    client = daemon.client()
    stats = wait_for(lambda: next(m for m in [client.messages("stats", 1)[0]]
                                  if m["source"]["source_errors"] >= 3), 60, "three failed opens")
    assert stats["frames"]["classified"] == 0
    assert daemon.log().count("waiting for the camera") == 1, daemon.log()
    pings = notify_socket.keys().count("WATCHDOG")
    wait_for(lambda: notify_socket.keys().count("WATCHDOG") > pings, 30, "watchdog pings while waiting")
    assert "Traceback" not in daemon.log()

    config["camera"] = {"source": base_config(tmp_path)["camera"]["source"], "fps": 20}
    write_config(daemon.config_path, config)
    daemon.signal(signal.SIGHUP)
    assert client.results(3)
    wait_for(lambda: "fps classified" in notify_socket.drain()[-1], 30, "STATUS on the photos")
    assert daemon.proc.poll() is None
