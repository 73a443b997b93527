"""A byte-counting TCP relay: what goes between an MQTT client (or a bridge) and its broker.

`Relay(port)` listens on a free port of 127.0.0.1 and forwards each
connection to 127.0.0.1:`port`, counting the bytes each way: `down` (broker
to client) and `up`. A client pointed at `relay.port` instead of the broker's
is measured, not changed. `close()` (the `relays` fixture's finalizer) closes
the listener and every connection it made.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from streams import free_port


class Relay:
    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.down = 0  # bytes from the broker to the client
        self.up = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True).start()

    def counts(self) -> tuple[int, int]:
        """(down, up) so far."""
        with self._lock:
            return self.down, self.up

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                return
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            for source, sink, down in ((server, client, True), (client, server, False)):
                threading.Thread(target=self._pump, args=(source, sink, down), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, down: bool) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
                with self._lock:
                    if down:
                        self.down += len(chunk)
                    else:
                        self.up += len(chunk)
        except OSError:
            pass
        for end in (source, sink):  # one side gone: the other is told
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()


def relay_factory() -> Iterator[Callable[[int], Relay]]:
    """For a `relays` fixture: `relays(port)` starts a Relay; each is closed at teardown."""
    made: list[Relay] = []

    def start(port: int) -> Relay:
        relay = Relay(port)
        made.append(relay)
        return relay

    try:
        yield start
    finally:
        for relay in made:
            relay.close()
