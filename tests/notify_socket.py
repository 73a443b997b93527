"""systemd's end of sd_notify for tests: a datagram socket bound by the test (python-systemd's way).

`notify_socket` (a plugin of conftest.py) binds one under tmp_path and closes
it at teardown; a daemon started with NOTIFY_SOCKET set to its path sends it
READY=1, STATUS=, WATCHDOG=1, EXTEND_TIMEOUT_USEC= as it would to systemd.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.received: list[str] = []
        self._lock = threading.Lock()

    def drain(self) -> list[str]:
        """Every field received so far (one entry per KEY=value line), in order."""
        with self._lock:
            while True:
                try:
                    datagram = self.sock.recv(4096)
                except BlockingIOError:
                    return list(self.received)
                self.received.extend(datagram.decode().splitlines())

    def keys(self) -> list[str]:
        return [field.split("=", 1)[0] for field in self.drain()]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()
