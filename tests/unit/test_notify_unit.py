"""sd_notify in process (edgecam/daemon/notify.py): Notifier and Watchdog against a real datagram socket.

As python-systemd's test/test_daemon.py does it: the test binds a real
AF_UNIX datagram socket and hands its address over as NOTIFY_SOCKET.
(tests/integration/test_notify.py does the same with the real daemon.)
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecam.daemon.notify import Notifier, Watchdog

WAIT_S = 10.0


class Systemd:
    """The receiving end: a bound datagram socket; `datagrams()` reads what arrived."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def datagram(self, timeout: float = WAIT_S) -> list[str]:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode().split("\n")

    def datagrams(self) -> list[list[str]]:
        """Every datagram waiting now."""
        found = []
        self.sock.setblocking(False)
        try:
            while True:
                found.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            return found


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[Systemd, str]]:
    address = str(tmp_path / "notify.sock")
    receiver = Systemd(address)
    yield receiver, address
    receiver.sock.close()


@pytest.fixture
def notifier(systemd) -> Iterator[Notifier]:
    made = Notifier({"NOTIFY_SOCKET": systemd[1]})
    yield made
    made.close()


def test_ready_status_reloading_stopping_payloads(systemd, notifier: Notifier) -> None:
    receiver, _ = systemd
    notifier.ready("3.0 fps classified")
    assert receiver.datagram() == ["READY=1", "STATUS=3.0 fps classified"]
    notifier.status("starting: loading the model")
    assert receiver.datagram() == ["STATUS=starting: loading the model"]
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, monotonic = receiver.datagram()
    assert reloading == "RELOADING=1"
    key, usec = monotonic.split("=")
    assert key == "MONOTONIC_USEC" and before <= int(usec) <= after, "systemd 253 wants the time"
    notifier.stopping()
    assert receiver.datagram() == ["STOPPING=1", "STATUS=stopping"]
    notifier.send("EXTEND_TIMEOUT_USEC=5000000", "STATUS=x")
    assert receiver.datagram() == ["EXTEND_TIMEOUT_USEC=5000000", "STATUS=x"]


def test_an_abstract_socket_address(tmp_path: Path) -> None:
    """NOTIFY_SOCKET=@name is the abstract namespace (a leading NUL byte)."""
    name = f"edgecam-test-{os.getpid()}-{time.monotonic_ns()}"
    receiver = Systemd("\0" + name)
    notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
    try:
        notifier.ready("up")
        assert receiver.datagram() == ["READY=1", "STATUS=up"]
    finally:
        notifier.close()
        receiver.sock.close()


def test_without_notify_socket_every_call_does_nothing() -> None:
    notifier = Notifier({})
    assert notifier.watchdog_s is None
    notifier.ready("up")
    notifier.status("x")
    notifier.reloading()
    notifier.stopping()
    Watchdog(notifier).kick()
    notifier.close()


def test_a_socket_that_went_away_is_not_an_error(tmp_path: Path) -> None:
    """systemd restarted (or the socket file is gone): notifications are lost, the daemon goes on."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    notifier.ready("up")
    notifier.stopping()
    notifier.close()
    notifier.status("after close")  # closed: nothing is sent, nothing raised


@pytest.mark.parametrize(("environ", "expected"), [
    ({"WATCHDOG_USEC": "2000000"}, 2.0),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, None),  # another process is watched
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "me"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_the_watchdog_period_comes_from_the_environment(environ: dict[str, str], expected) -> None:
    assert Notifier(environ).watchdog_s == expected


def test_the_watchdog_pings_only_after_arm(systemd) -> None:
    receiver, address = systemd
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000"})  # a ping every 1 ms at most
    watchdog = Watchdog(notifier)
    try:
        watchdog.kick()
        watchdog.kick()
        assert receiver.datagrams() == [], "no WATCHDOG=1 before READY (arm)"
        watchdog.arm()
        watchdog.kick()
        assert receiver.datagram() == ["WATCHDOG=1"]
        time.sleep(0.002)
        watchdog.kick()
        assert receiver.datagram() == ["WATCHDOG=1"]
    finally:
        notifier.close()


def test_the_watchdog_pings_at_most_twice_per_period(systemd) -> None:
    receiver, address = systemd
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(60 * 1_000_000)})
    watchdog = Watchdog(notifier)
    watchdog.arm()
    try:
        for _ in range(1000):
            watchdog.kick()
        assert receiver.datagram() == ["WATCHDOG=1"]
        assert receiver.datagrams() == [], "one ping, then none until half the period has passed"
    finally:
        notifier.close()


def test_without_a_watchdog_nothing_is_pinged_even_when_armed(systemd) -> None:
    receiver, address = systemd
    notifier = Notifier({"NOTIFY_SOCKET": address})
    watchdog = Watchdog(notifier)
    watchdog.arm()
    try:
        watchdog.kick()
        notifier.status("marker")
        assert receiver.datagram() == ["STATUS=marker"], "the status came, no WATCHDOG=1 before it"
    finally:
        notifier.close()
