"""The /metrics HTTP server: the standard library's threading server, kept in bounds.

One thread per connection, so a flood of idle connections would be a flood of
threads and descriptors. Hence: at most METRICS_CONNECTIONS at once (common.fds;
the next is closed at once, counted), TIMEOUT_S to send a request (a Prometheus
sends its at once), and accept() failing for want of descriptors pauses the
`edgecam-metrics` thread for PAUSE_S, logged once per streak (the listening
socket stays readable: the server would otherwise retry it in a tight loop).
A Host that does not name this server (common.hosts) gets 421 on every path.
"""

from __future__ import annotations

import errno
import http.server
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from edgecam.common.fds import METRICS_CONNECTIONS
from edgecam.common.hosts import HostCheck
from edgecam.core.stats import Stats

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
PAUSE_S = 0.5
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class MetricsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    stats: Stats
    hosts: Callable[[], HostCheck]  # the check in force (outputs.metrics.allowed_hosts reloads)

    def server_bind(self) -> None:
        # HTTPServer's own looks the address up in DNS (getfqdn), slow on a Pi without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self._lock = threading.Lock()
        self._active = 0
        self._failing = False

    def get_request(self) -> tuple[Any, Any]:
        try:
            request = super().get_request()
        except OSError as exc:
            self.stats.count("accept_failures")
            if not self._failing:
                log.warning("metrics: cannot accept connections (%s); retrying every %.1f s",
                            exc.strerror or exc, PAUSE_S)
            self._failing = True
            if exc.errno in _OUT_OF_DESCRIPTORS:
                time.sleep(PAUSE_S)
            raise
        self._failing = False
        return request

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._lock:
            if self._active >= METRICS_CONNECTIONS:
                self.stats.count("metrics_requests_refused")
                return False
            self._active += 1
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._active -= 1


def handler_class(base: type, registry: Any) -> type:
    """Prometheus' MetricsHandler, with `/` saying where the metrics are and the Host check."""

    class Handler(base):
        timeout = TIMEOUT_S

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            server: MetricsServer = self.server
            if not server.hosts().allows(self.headers.get("Host")):
                server.stats.count("metrics_requests_refused")
                self._reply(421, b"this server does not serve that host name; see "
                            b"outputs.metrics.allowed_hosts\n")
            elif path == "/metrics":
                super().do_GET()
            elif path == "/":
                self._reply(200, b"edgecam: metrics at /metrics\n")
            else:
                self._reply(404, b"not found: metrics are at /metrics\n")

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    Handler.registry = registry
    return Handler


def bind(host: str, port: int, handler: type, stats: Stats,
         hosts: Callable[[], HostCheck]) -> MetricsServer:
    """A bound, listening server (OSError if it cannot be)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("Server", (MetricsServer,), {"address_family": family, "stats": stats,
                                                      "hosts": staticmethod(hosts)})
    server = server_class((host, port), handler, bind_and_activate=False)
    try:
        server.server_bind()
        server.server_activate()
    except OSError:
        server.server_close()
        raise
    return server
