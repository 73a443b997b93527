"""The results socket's file and listening socket: bound, rebound if removed, accepted from.

`SocketFile` owns what outputs.socket's thread does not need to know: a stale
socket file is replaced and a live one refused, a removed one is recreated,
and `accept` takes what is waiting within the number of clients there is room
for. Beyond that room a client is accepted and closed at once (counted): a
flood of clients cannot take the daemon's descriptors (common.fds). When
accept() fails for want of descriptors (EMFILE, ENFILE: something else took
them), the listener is `paused` for PAUSE_S, then tried again, and the
streak is logged once: a listening socket whose backlog stays readable would
otherwise be retried, and logged, in a tight loop.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import time
from pathlib import Path

from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError, ListenError

log = logging.getLogger(__name__)

PAUSE_S = 0.5
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class SocketFile:
    def __init__(self, path: str, mode: str, stats: Stats) -> None:
        self.path = path
        self.mode = mode
        self._stats = stats
        self._inode: int | None = None
        self._rebind_failing = False
        self._accept_failing = False
        self._refusing = False
        #: monotonic time until which accept() is not tried (0: not paused)
        self.paused_until = 0.0

    def bind(self) -> socket.socket:
        """A listening, non-blocking socket at `path`; EdgecamError (one line) if it cannot be."""
        path = Path(self.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgecamError(f"outputs.socket.path: cannot create {path.parent}: {exc.strerror}"
                               ) from None
        self._remove_stale(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(str(path))
            os.chmod(path, int(self.mode, 8))
            listener.listen(64)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            raise EdgecamError(f"outputs.socket.path: cannot serve on {path}: {exc.strerror}"
                               ) from None
        self._inode = path.stat().st_ino
        return listener

    def _remove_stale(self, path: Path) -> None:
        """Replaces a socket file nobody listens on; refuses a live one or a non-socket."""
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise EdgecamError(f"outputs.socket.path: {path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise EdgecamError(f"outputs.socket.path: cannot check {path}: {exc.strerror}"
                                   ) from None
            log.info("socket %s: removing a stale socket file", path)
            path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise ListenError(f"outputs.socket.path: {path} is in use by another running edgecam")

    def remove(self) -> None:
        """Removes the socket file if it is still ours (not one a newer daemon bound)."""
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    def rebound(self) -> socket.socket | None:
        """A new listener if our file was removed (an `rm -r /run/edgecam`, say), else None.

        While the folder cannot be written (made read-only), each call tries again and
        the first failure warns."""
        try:
            if os.stat(self.path).st_ino == self._inode:
                return None
        except OSError:
            pass
        try:
            listener = self.bind()
        except EdgecamError as exc:
            if not self._rebind_failing:
                log.warning("socket %s was removed and cannot be recreated: %s", self.path, exc)
                self._rebind_failing = True
            return None
        self._rebind_failing = False
        self._stats.count("socket_rebinds")
        log.warning("socket %s was removed; serving on a new one", self.path)
        return listener

    def accept(self, listener: socket.socket, room: int) -> list[socket.socket]:
        """The clients waiting, at most `room` of them (the others closed at once, counted);
        sets `paused_until` when the process is out of descriptors."""
        accepted: list[socket.socket] = []
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return accepted
            except OSError as exc:
                self._failed(exc)
                return accepted
            self._accept_failing = False
            if len(accepted) >= room:
                conn.close()
                self._stats.count("socket_clients_refused")
                if not self._refusing:
                    log.warning("socket %s: the most clients allowed are connected; refusing more",
                                self.path)
                self._refusing = True
                continue
            self._refusing = False
            conn.setblocking(False)
            accepted.append(conn)

    def _failed(self, exc: OSError) -> None:
        self._stats.count("accept_failures")
        if exc.errno in _OUT_OF_DESCRIPTORS:
            self.paused_until = time.monotonic() + PAUSE_S
        if not self._accept_failing:
            self._accept_failing = True
            log.warning("socket %s: cannot accept clients (%s); retrying every %.1f s", self.path,
                        exc.strerror or exc, PAUSE_S)
