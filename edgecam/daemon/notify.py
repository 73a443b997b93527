"""sd_notify(3) without libsystemd: READY, STATUS, RELOADING, STOPPING, EXTEND_TIMEOUT_USEC and
the watchdog.

The protocol is one datagram of `KEY=value` lines to $NOTIFY_SOCKET, so it
needs no library and works on a Pi without python3-systemd. Without
NOTIFY_SOCKET (a plain foreground run) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None
        self._socket: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or (pid.isdigit() and int(pid) == os.getpid())
        #: how often systemd wants WATCHDOG=1, or None when no watchdog is set
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and ours else None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, *fields: str) -> None:
        if self._socket is None or self._address is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Watchdog:
    """Sends WATCHDOG=1 when the pipeline shows progress, at most twice per watchdog period.

    Called from the inference thread after a result (or while it waits on a
    source that is being reconnected), never from a timer: a timer would keep
    pinging while the pipeline is stuck, defeating the point.
    """

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self._interval = notifier.watchdog_s / 2 if notifier.watchdog_s else None
        self._last = 0.0
        self._armed = False

    def arm(self) -> None:
        """Starts the pings once READY=1 was sent, so systemd sees READY before any ping."""
        self._armed = True

    def kick(self) -> None:
        if self._interval is None or not self._armed:
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._notifier.send("WATCHDOG=1")


#: what each EXTEND_TIMEOUT_USEC asks for, how often progress is read, and the longest a start is
#: extended (a network that never starts must still fail the start, and be restarted)
EXTEND_S = 30.0
_PROGRESS_EVERY_S = 1.0
MAX_EXTENDED_S = 900.0


class StartTimeout:
    """Asks systemd for more time to start (EXTEND_TIMEOUT_USEC) while a slow step moves on.

    READY=1 waits for the first result; with the AI Camera that comes after the network's
    first upload to its sensor, which can take longer than the unit's TimeoutStartSec. Each
    time `progress()` (read at most once a second) says something new, systemd is given
    EXTEND_S more, with the progress as STATUS=. A step that stops moving is not extended,
    so systemd's timeout still ends a start that hangs.
    """

    def __init__(self, notifier: Notifier, progress: Callable[[], str | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._progress = progress
        self._clock = clock
        self._until = clock() + MAX_EXTENDED_S
        self._next = 0.0
        self._last: str | None = None

    def poll(self) -> None:
        now = self._clock()
        if now < self._next or now > self._until:
            return
        self._next = now + _PROGRESS_EVERY_S
        status = self._progress()
        if status is None or status == self._last:
            return
        self._last = status
        self._notifier.send(f"EXTEND_TIMEOUT_USEC={int(EXTEND_S * 1e6)}", f"STATUS={status}")
