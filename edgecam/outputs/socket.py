"""The Unix socket output: JSON lines to every connected client, never waiting for one.

A line is sent where it is made (results on the inference thread, stats on
the service loop's) with one non-blocking send() per client: no other thread
is woken for it, which on a camera slower than the model is a thread
wake-up saved per frame. Results are encoded only while some client is
connected. Bytes a client's kernel buffer did not take wait in that client's
bounded buffer for the `edgecam-socket` thread, which owns everything else:
with a selector it accepts clients (at most common.fds.SOCKET_CLIENTS, the
rest closed at once: outputs.socket_file), discards whatever they send (garbage or
huge lines included), and writes what is pending as the client reads. A
client that stops reading is disconnected when its buffer fills (counted,
with the lines it did not get), so a stuck `nc -U` never slows the pipeline
or the other clients.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from typing import Any

from edgecam.common.fds import SOCKET_CLIENTS
from edgecam.common.worker import Worker
from edgecam.config import Config
from edgecam.core.results import Result, json_line, stats_message
from edgecam.core.stats import Stats
from edgecam.outputs.base import Output
from edgecam.outputs.socket_file import PAUSE_S, SocketFile

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 5.0
MAX_PENDING_BYTES = 64 * 1024  # per client, on top of the kernel's socket buffer
CHECK_INTERVAL_S = 1.0
_RECV_BYTES = 65536


class _Client:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.pending = bytearray()
        self.writing = False  # registered for EVENT_WRITE: it has bytes the kernel did not take
        self.stuck = False  # its buffer overflowed: the socket thread disconnects it (counted)
        self.gone = False  # a send failed (it hung up): the socket thread forgets it


class SocketOutput(Output):
    """Serves results at `path`; start() binds (raising one clear line), close() removes the file."""

    name = "socket"
    stats_interval_s = STATS_INTERVAL_S
    immediate = True  # emit() never blocks: see outputs.dispatcher

    def __init__(self, path: str, mode: str, stats: Stats) -> None:
        self.path = path
        self.mode = mode
        self._stats = stats
        self._clients: dict[int, _Client] = {}
        # The clients and their pending bytes: touched by the senders and the socket thread.
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._worker = Worker("edgecam-socket", self._run)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._file = SocketFile(path, mode, stats)
        self._listener: socket.socket | None = None
        self._listening = False  # the listener is in the selector (not while accept is paused)
        self._checked = 0.0

    def start(self) -> None:
        self._listener = self._file.bind()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._listening = True
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._worker.start()
        log.info("socket %s: serving results (mode %s)", self.path, self.mode)

    def reusable(self, config: Config) -> bool:
        return config.outputs.socket.path == self.path

    def reconfigure(self, config: Config) -> None:
        """Applies a new file mode to the live socket (a reload that changed only the mode)."""
        mode = config.outputs.socket.mode
        if mode == self.mode:
            return
        try:
            os.chmod(self.path, int(mode, 8))
        except OSError as exc:
            log.error("outputs.socket.mode: cannot chmod %s: %s; it stays %s", self.path,
                      exc.strerror, self.mode)
            return
        self.mode = self._file.mode = mode

    def emit(self, result: Result) -> None:
        if self._clients:  # nobody connected: nothing to encode
            line = self._encode(result)
            if line is not None:
                self._send(line)

    def stats(self, figures: dict[str, Any]) -> None:
        if self._clients:
            self._send(json_line(stats_message(figures)))

    def close(self) -> None:
        self._worker.stopping.set()
        self._wake()
        self._worker.stop(0.5)
        with self._lock:
            for client in list(self._clients.values()):
                self._drop(client, counted=False)
        if self._listener is not None:
            self._listener.close()
            self._file.remove()
            self._listener = None
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _send(self, line: bytes) -> None:
        """Sends `line` to every client now, or leaves it pending for the socket thread."""
        if self._worker.stopping.is_set():  # closed or closing (a reload): its clients are going
            return
        wake = False
        with self._lock:
            for client in self._clients.values():
                rest = line
                if not client.pending:
                    try:
                        sent = client.conn.send(line)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError:
                        client.gone = wake = True
                        continue
                    if sent == len(line):
                        continue
                    rest = line[sent:]
                client.pending += rest
                client.stuck = client.stuck or len(client.pending) > MAX_PENDING_BYTES
                wake = True  # the socket thread writes the rest when the client reads
        if wake:
            self._wake()

    def _wake(self) -> None:
        # A full pipe means the thread is already due to wake; a closed one, that it stopped.
        try:  # noqa: SIM105 (cheaper than contextlib.suppress: on the inference thread, per result)
            os.write(self._wake_w, b"\0")
        except OSError:
            pass

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for key, events in self._selector.select(timeout=PAUSE_S if not self._listening else 1.0):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._drain_wake()
                elif events & selectors.EVENT_READ:
                    self._read(key.data)
                if key.data not in ("accept", "wake") and events & selectors.EVENT_WRITE:
                    with self._lock:
                        self._flush(key.data)
            self._tend()
            self._resume()
            self._stats.set_gauge("socket_clients", len(self._clients))
            self._check_file()

    def _check_file(self) -> None:
        """Serves on a fresh socket file if ours was removed (every CHECK_INTERVAL_S); clients
        already connected keep their connections."""
        now = time.monotonic()
        if now - self._checked < CHECK_INTERVAL_S:
            return
        self._checked = now
        listener = self._file.rebound()
        if listener is None:
            return
        assert self._listener is not None
        if self._listening:
            self._selector.unregister(self._listener)
        self._listener.close()
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._listening, self._file.paused_until = True, 0.0

    def _accept(self) -> None:
        """Takes the clients waiting, as many as there is room for (common.fds); stops listening
        for a while if the process is out of descriptors (outputs.socket_file)."""
        assert self._listener is not None
        if len(self._clients) >= SOCKET_CLIENTS:
            for client in list(self._clients.values()):  # those that hung up make room first
                self._read(client)
        room = max(0, SOCKET_CLIENTS - len(self._clients))
        for conn in self._file.accept(self._listener, room):
            client = _Client(conn)
            with self._lock:
                self._clients[conn.fileno()] = client
            self._selector.register(conn, selectors.EVENT_READ, client)
        if self._file.paused_until and self._listening:
            self._selector.unregister(self._listener)
            self._listening = False

    def _resume(self) -> None:
        """Listens again once an accept pause is over."""
        if self._listening or time.monotonic() < self._file.paused_until:
            return
        assert self._listener is not None
        self._file.paused_until = 0.0
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._listening = True

    def _drain_wake(self) -> None:
        # One read: bytes left over (more than 4096 wakes) make the pipe readable again.
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)

    def _read(self, client: _Client) -> None:
        """Discards what a client sends; an empty read means it hung up."""
        try:
            data = client.conn.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            with self._lock:
                self._drop(client, counted=False)

    def _tend(self) -> None:
        """Disconnects the clients the senders marked, and writes what the others have pending."""
        with self._lock:
            for client in list(self._clients.values()):
                if client.stuck:
                    log.warning("socket %s: a client stopped reading; disconnected", self.path)
                    self._drop(client, counted=True)
                elif client.gone:
                    self._drop(client, counted=False)
                elif client.pending:
                    self._flush(client)

    def _encode(self, result: Result) -> bytes | None:
        try:
            return json_line(result.message())
        except Exception as exc:  # as the dispatcher counts a failed emit(): this thread goes on
            self._stats.count("output_errors")
            log.error("output socket: cannot encode result %d: %s", result.seq, exc)
            return None

    def _flush(self, client: _Client) -> None:
        """Sends what `client` has pending (the socket thread, holding the lock)."""
        if client.conn.fileno() not in self._clients:
            return
        try:
            sent = client.conn.send(client.pending)
            del client.pending[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(client, counted=False)
            return
        writing = bool(client.pending)
        if writing != client.writing:  # the selector is told only of changes
            client.writing = writing
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
            self._selector.modify(client.conn, events, client)

    def _drop(self, client: _Client, counted: bool) -> None:
        """Forgets `client` (holding the lock); `counted`: it was disconnected for not reading,
        so it and the lines it did not get are counted."""
        fd = client.conn.fileno()
        if self._clients.pop(fd, None) is None:
            return
        if counted:
            self._stats.count("socket_clients_dropped")
            self._stats.count("socket_messages_dropped", client.pending.count(b"\n"))
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(client.conn)
        client.conn.close()
