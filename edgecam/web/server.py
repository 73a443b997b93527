"""The status page's HTTP server: aiohttp on its own thread and event loop.

Only APIs aiohttp 3.8 has (Raspberry Pi OS bookworm's python3-aiohttp 3.8.4)
are used. `start` binds before it returns (a port in use is one clear line,
and a reload that cannot bind keeps the old page); `close` ends the streams,
unbinds and joins the thread. Each connection goes through web.guard (a cap,
a head timeout) before aiohttp sees it, and each request through web.gate
(the Host, the token) before a handler does.

/preview.mjpeg serves at most MAX_VIEWERS at once (the next gets 503). One
broadcast task runs while any is connected: every 1/preview_fps it asks
Preview for the newest JPEG and offers it to each viewer's one-slot mailbox.
A viewer still sending the frame before loses the one waiting (counted,
web_preview_dropped; while all are, nothing is encoded), and one that took no frame for STALLED_S is
disconnected (web_viewers_stalled): a phone that went to sleep cannot keep a
place forever. Nothing here ever waits on the pipeline, nor it on this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from importlib import resources

from aiohttp import web

from edgecam.common.fds import PAGE_CONNECTIONS
from edgecam.core.latest import LatestFrame
from edgecam.core.stats import Stats
from edgecam.errors import ListenError
from edgecam.web.auth import LOGIN_PATH
from edgecam.web.gate import Gate, login_response
from edgecam.web.guard import Connections
from edgecam.web.page import PageState
from edgecam.web.preview import Encoded, Preview

log = logging.getLogger(__name__)

MAX_VIEWERS = 4
#: a new connection must send its first request's head within this; a kept-alive one that sends
#: no next request is closed after KEEPALIVE_S (aiohttp's keepalive_timeout)
HEAD_S = 10.0
KEEPALIVE_S = 15.0
#: the kernel's send buffer of a viewer's connection: a few frames, so that one that stops reading
#: is found stalled (and costs nothing) after those, not after the megabytes Linux would allow
SEND_BUFFER_BYTES = 256 * 1024
STALLED_S = 30.0
BOUNDARY = "edgecam-frame"
_START_S = 10.0
_STOP_S = 3.0
#: only the page's own files: no inline script or style, no other origin, no framing
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}


class _Viewer:
    """One /preview.mjpeg connection's mailbox: the newest JPEG it has not been sent yet."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.pending: Encoded | None = None
        self.ready = asyncio.Event()

    def disconnect(self) -> None:
        """Drops the connection now, whatever its buffers hold (a stalled or closing viewer)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def offer(self, frame: Encoded) -> bool:
        """Leaves `frame` for the viewer; False if it replaced one the viewer never got."""
        lost = self.pending is not None
        self.pending = frame
        self.ready.set()
        return not lost


class WebServer:
    def __init__(self, state: PageState, latest: LatestFrame, stats: Stats) -> None:
        self.state = state
        self._stats = stats
        self._preview = Preview(latest, stats)
        self._files = {name: (resources.files("edgecam.web") / "static" / name).read_bytes()
                       for name in ("index.html", *_STATIC)}
        self._viewers: set[_Viewer] = set()
        self._broadcast: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._gate = Gate(state, stats)

    # -- life cycle (the caller's thread) ----------------------------------------------------

    def start(self, host: str, port: int, listen: str) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(loop,), name="edgecam-web", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(host, port), loop).result(_START_S)
        except OSError as exc:  # asyncio's says more than the reason: its errno's words are enough
            self.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(f"web.listen: cannot serve on {listen}: {reason}") from None
        log.info("web: the status page is at http://%s/", listen)

    def close(self) -> None:
        loop, thread, self._loop = self._loop, self._thread, None
        if loop is None or thread is None:
            return
        if self._runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._unserve(), loop).result(_STOP_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_STOP_S)
        self._stats.clear_gauge("web_viewers")
        self._stats.clear_gauge("web_connections")

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self, host: str, port: int) -> None:
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._gate.middleware])
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/", self._index)
        app.router.add_get(LOGIN_PATH, self._login_form)
        app.router.add_post(LOGIN_PATH, self._gate.login)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/preview.jpg", self._preview_jpg)
        app.router.add_get("/preview.mjpeg", self._preview_mjpeg, allow_head=False)  # a HEAD never ends
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_get("/snapshots/{zone}/{name}", self._snapshot)
        runner = web.AppRunner(app, handle_signals=False, access_log=None,
                               keepalive_timeout=KEEPALIVE_S)
        await runner.setup()
        assert runner.server is not None
        loop = asyncio.get_running_loop()
        # Not a TCPSite: each connection goes through the guard's cap and head timer first.
        connections = Connections(runner.server, self._stats, PAGE_CONNECTIONS, HEAD_S)
        loop.set_exception_handler(connections.loop_exception)
        try:
            self._server = await loop.create_server(connections.protocol, host, port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._stats.set_gauge("web_connections", 0)
        self._stats.set_gauge("web_viewers", 0)

    async def _unserve(self) -> None:
        assert self._closing is not None and self._runner is not None
        self._closing.set()
        if self._server is not None:
            self._server.close()
        for viewer in self._viewers:  # streams never end by themselves: the cleanup would wait
            viewer.disconnect()
        await self._runner.cleanup()

    # -- every request (and the gate's middleware before) ------------------------------------

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")

    # -- the page ----------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._files["index.html"], content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=self._files[name], content_type=_STATIC[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _login_form(self, request: web.Request) -> web.Response:
        return login_response("", 200)

    async def _status(self, request: web.Request) -> web.Response:
        status = self.state.status(time.monotonic(), len(self._viewers), MAX_VIEWERS)
        return web.Response(text=json.dumps(status), content_type="application/json")

    async def _snapshot(self, request: web.Request) -> web.Response:
        jpeg = await asyncio.get_running_loop().run_in_executor(
            None, self.state.snapshot_jpeg, request.match_info["zone"], request.match_info["name"])
        if jpeg is None:
            raise web.HTTPNotFound()
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=3600"})

    # -- the preview -------------------------------------------------------------------------

    def _encoded(self) -> Encoded | None:
        settings = self.state.settings
        return self._preview.jpeg(time.monotonic(), settings.preview_fps, settings.preview_width,
                                  self.state.overlays())

    async def _preview_jpg(self, request: web.Request) -> web.Response:
        encoded = self._encoded()
        if encoded is None:
            return web.Response(status=503, text="no frame classified yet\n", headers={"Retry-After": "1"})
        return web.Response(body=encoded.jpeg, content_type="image/jpeg")

    async def _preview_mjpeg(self, request: web.Request) -> web.StreamResponse:
        assert self._closing is not None
        if len(self._viewers) >= MAX_VIEWERS:
            self._stats.count("web_viewers_refused")
            return web.Response(status=503, headers={"Retry-After": "10"},
                                text=f"{MAX_VIEWERS} viewers are watching already: the most there may be\n")
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"})
        viewer = _Viewer(request)
        connection = request.transport.get_extra_info("socket") if request.transport else None
        if connection is not None:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._viewers.add(viewer)
        self._stats.set_gauge("web_viewers", len(self._viewers))
        if self._broadcast is None or self._broadcast.done():
            self._broadcast = asyncio.get_running_loop().create_task(self._broadcaster())
        try:
            await response.prepare(request)
            await self._stream(viewer, response)
        except ConnectionError:
            pass  # the viewer went away (aiohttp 3.8 cancels the handler instead)
        finally:
            self._viewers.discard(viewer)
            self._stats.set_gauge("web_viewers", len(self._viewers))
        return response

    async def _stream(self, viewer: _Viewer, response: web.StreamResponse) -> None:
        assert self._closing is not None
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(viewer.ready.wait(), STALLED_S)
            except TimeoutError:
                continue  # no frame came (the camera stalled): keep the viewer
            viewer.ready.clear()
            frame, viewer.pending = viewer.pending, None
            if frame is None:
                continue
            part = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}"
                    f"\r\n\r\n").encode() + frame.jpeg + b"\r\n"
            try:
                await asyncio.wait_for(response.write(part), STALLED_S)
            except TimeoutError:
                self._stats.count("web_viewers_stalled")
                log.warning("web: a /preview.mjpeg viewer took no frame for %.0f s; disconnected",
                            STALLED_S)
                viewer.disconnect()
                return

    async def _broadcaster(self) -> None:
        """Offers each new preview frame to every viewer, at most preview_fps a second.

        A viewer still sending the last frame it was offered misses this one (counted). While
        every viewer is in that state nothing is encoded: a stalled phone costs no CPU.
        """
        assert self._closing is not None
        sent: Encoded | None = None
        while self._viewers and not self._closing.is_set():
            viewers = list(self._viewers)
            busy = sum(viewer.pending is not None for viewer in viewers)
            if busy < len(viewers):
                encoded = self._encoded()
                if encoded is not None and encoded is not sent:
                    sent = encoded
                    for viewer in viewers:
                        if not viewer.offer(encoded):
                            self._stats.count("web_preview_dropped")
            elif self._preview.newer_than(sent):
                self._stats.count("web_preview_dropped", busy)
            await asyncio.sleep(1.0 / self.state.settings.preview_fps)

