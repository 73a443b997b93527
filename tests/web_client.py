"""A plain HTTP client for the status page (the standard library's), and its MJPEG viewers.

`get` returns status, headers and body, never raising for an HTTP error.
`Viewer` is one /preview.mjpeg connection on a raw socket, so a test decides
when (and whether) it reads: `frames(n)` reads n JPEG parts; a viewer that
never reads is one whose `frames` is never called.
"""

from __future__ import annotations

import http.client
import socket
from email.message import Message

from harness import wait_for
from streams import listening

TIMEOUT_S = 30.0  # bounds a hang; never a measure


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: str | None = None) -> tuple[int, Message, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def wait_serving(port: int, timeout: float = 60.0) -> None:
    wait_for(lambda: listening(port), timeout, f"the status page on port {port}")


class Viewer:
    """A /preview.mjpeg connection; `status` is its HTTP status once `open` returned."""

    def __init__(self, port: int, headers: dict[str, str] | None = None, receive_buffer: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:  # a small one makes a viewer that never reads stall the sooner
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect(("127.0.0.1", port))
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock.sendall(f"GET /preview.mjpeg HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        self._buffer = b""
        self.status = 0
        self.headers = ""

    def open(self) -> Viewer:
        """Reads the status line and headers."""
        head = self._until(b"\r\n\r\n")
        self.headers = head.decode("latin-1")
        self.status = int(self.headers.split(" ", 2)[1])
        return self

    def frames(self, count: int) -> list[bytes]:
        """The next `count` JPEGs of the stream."""
        found = []
        for _ in range(count):
            part = self._until(b"\r\n\r\n").decode("latin-1")
            length = next(int(line.split(":", 1)[1]) for line in part.split("\r\n")
                          if line.lower().startswith("content-length:"))
            while len(self._buffer) < length + 2:
                self._read()
            jpeg, self._buffer = self._buffer[:length], self._buffer[length + 2:]
            assert jpeg[:2] == b"\xff\xd8", "a JPEG"
            found.append(jpeg)
        return found

    def _until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._read()
        head, self._buffer = self._buffer.split(marker, 1)
        return head

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the page closed the stream")
        self._buffer += chunk

    def close(self) -> None:
        self.sock.close()
