"""The page's connections, kept in bounds before aiohttp sees them.

aiohttp has no connection cap, and no timeout for a request's head: a
connection that sends nothing is kept for ever (a flood of them took every
descriptor, docs/RELIABILITY.md). So each connection's protocol is a
`_Guarded` wrapper made here, which hands it to aiohttp's own only once it is
admitted (only asyncio's Protocol interface is used, the same in aiohttp 3.8
and later):

- at most `cap` connections at once. The next one takes the place of the
  oldest that has not sent a request head yet (dropped: an idle flood cannot
  keep out a browser, whose head follows its connect at once); with none of
  those, it gets a canned 503 and is closed (refused);
- a connection must send its first request head within `head_s` (dropped if
  not); later requests on it are aiohttp's keepalive_timeout's business;
- asyncio's "socket.accept() out of system resource" (EMFILE, ENFILE), which
  it retries every second by itself, is logged once per streak, not with a
  traceback every second, and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edgecam.core.stats import Stats

log = logging.getLogger(__name__)

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
         b"Connection: close\r\nContent-Length: 32\r\n\r\nthe status page is at capacity\r\n")
_ACCEPT_FAILED = "socket.accept() out of system resource"


class Connections:
    """Admits, times and counts the page's connections; `protocol` is the server's factory."""

    def __init__(self, inner: Callable[[], asyncio.Protocol], stats: Stats, cap: int,
                 head_s: float) -> None:
        self._inner = inner
        self._stats = stats
        self.cap = cap
        self.head_s = head_s
        self._open: set[_Guarded] = set()
        self._waiting: dict[_Guarded, None] = {}  # admitted, no head yet: oldest first
        self._accept_failing = False

    def protocol(self) -> asyncio.Protocol:
        return _Guarded(self)

    def admit(self, connection: _Guarded) -> asyncio.Protocol | None:
        """The connection's aiohttp protocol, or None if it is refused."""
        self._accept_failing = False
        if len(self._open) >= self.cap:
            if not self._waiting:
                self._stats.count("web_connections_refused")
                return None
            self.drop(next(iter(self._waiting)))
        self._open.add(connection)
        self._waiting[connection] = None
        self._stats.set_gauge("web_connections", len(self._open))
        return self._inner()

    def headed(self, connection: _Guarded) -> None:
        self._waiting.pop(connection, None)

    def drop(self, connection: _Guarded) -> None:
        """Closes a connection that sent no head (counted)."""
        self._stats.count("web_connections_dropped")
        self.release(connection)
        connection.abort()

    def release(self, connection: _Guarded) -> None:
        self._waiting.pop(connection, None)
        if connection in self._open:
            self._open.discard(connection)
            self._stats.set_gauge("web_connections", len(self._open))

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The web loop's exception handler: accept failures once per streak, the rest as asyncio
        would."""
        if context.get("message") != _ACCEPT_FAILED:
            loop.default_exception_handler(context)
            return
        self._stats.count("accept_failures")
        if not self._accept_failing:
            self._accept_failing = True
            exc = context.get("exception")
            log.warning("web: cannot accept connections (%s); retrying every second",
                        getattr(exc, "strerror", None) or exc)


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's protocol behind the cap and the head timer."""

    def __init__(self, owner: Connections) -> None:
        self._owner = owner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, for a head's end split over two reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._inner = self._owner.admit(self)
        if self._inner is None:
            transport.write(_BUSY)
            transport.close()
            return
        self._timer = asyncio.get_running_loop().call_later(self._owner.head_s, self._timed_out)
        self._inner.connection_made(transport)

    def _timed_out(self) -> None:
        self._timer = None
        self._owner.drop(self)

    def abort(self) -> None:
        self._cancel()
        if self._transport is not None:
            self._transport.abort()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            seen = self._tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self._cancel()
                self._owner.headed(self)
            self._tail = data[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._owner.release(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
