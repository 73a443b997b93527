"""Reading a download's bytes within bounds: a size cap, a total time limit, regular files only.

A download comes from a URL someone else chose (a fleet's manifest), so its
source may be hostile: an endless body, a server trickling one byte every 20
seconds (a per-read timeout never fires), `file:///dev/zero`, a FIFO that
blocks the reader forever, a symlink to a secret. So:

- `file://` opens with O_NOFOLLOW | O_NONBLOCK and is read only if fstat says
  it is a regular file (a FIFO, a device, a folder or a symlink is refused at
  once, without blocking);
- the size cap is checked against Content-Length (or the file's size) before
  reading, and again while streaming;
- the time limit is for the whole download: a watchdog thread shuts the
  connection's socket down at the deadline, whatever it is waiting for (the
  connect, the headers, a body byte), and the reads check the deadline too.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from edgecam.errors import DownloadError, DownloadRefused

CHUNK = 1 << 16
_READ_TIMEOUT_S = 30.0  # one network operation; the total is Limits.total_s


@dataclass(frozen=True)
class Limits:
    """What one download may take: `max_bytes` in size, `total_s` seconds from start to end;
    `size_key` and `time_key` name the settings that set them, in the refusals."""

    max_bytes: int = 100 * 10**6
    total_s: float = 600.0
    size_key: str = ""
    time_key: str = ""


Sink = Callable[[bytes], None]


def copy_bounded(url: str, sink: Sink, limits: Limits) -> None:
    """Feeds `url`'s bytes to `sink`; DownloadRefused (too large, not a regular file) or
    DownloadError (the network, the time limit) naming the URL."""
    deadline = time.monotonic() + limits.total_s
    if urlparse(url).scheme == "file":
        _copy_file(url, sink, limits, deadline)
    else:
        _copy_http(url, sink, limits, deadline)


def file_path(url: str) -> str:
    """The local path of a file:// URL (file:///path or file://localhost/path)."""
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise DownloadRefused(f"{url}: a file:// URL names a file of this machine "
                              "(file:///path), not of another host")
    return unquote(parsed.path)


def _copy_file(url: str, sink: Sink, limits: Limits, deadline: float) -> None:
    path = file_path(url)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DownloadRefused(f"{url}: a symbolic link; only regular files are read") from None
        raise DownloadError(f"{url}: {exc.strerror}; nothing installed") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DownloadRefused(f"{url}: not a regular file (a folder, device, FIFO or socket); "
                                  "nothing installed")
        _check_size(url, info.st_size, limits)
        _pump(url, lambda size: os.read(fd, size), sink, limits, deadline)
    except OSError as exc:
        raise DownloadError(f"{url}: {exc.strerror}; nothing installed") from None
    finally:
        os.close(fd)


def _copy_http(url: str, sink: Sink, limits: Limits, deadline: float) -> None:
    with _Watchdog(deadline) as watchdog:
        opener = _opener(watchdog)
        try:
            with opener.open(url, timeout=min(limits.total_s, _READ_TIMEOUT_S)) as response:
                length = response.headers.get("Content-Length")
                if length is not None and length.strip().isdigit():
                    _check_size(url, int(length), limits)
                _pump(url, response.read1, sink, limits, deadline)
        except DownloadError:
            raise
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
            if watchdog.fired.is_set():
                raise _too_slow(url, limits) from None
            raise _network_error(url, exc) from None
        if watchdog.fired.is_set():  # the shutdown read as the end of the body
            raise _too_slow(url, limits)


def _pump(url: str, read: Callable[[int], bytes], sink: Sink, limits: Limits,
          deadline: float) -> None:
    size = 0
    while chunk := read(CHUNK):
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(url, limits)
        sink(chunk)
        if time.monotonic() > deadline:
            raise _too_slow(url, limits)


def _check_size(url: str, size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise _too_large(url, limits, f" ({size / 1e6:.1f} MB)")


def _too_large(url: str, limits: Limits, size: str = "") -> DownloadRefused:
    return DownloadRefused(f"{url}: larger than {limits.max_bytes / 1e6:g} MB{size}"
                           f"{_key(limits.size_key)}; nothing installed")


def _too_slow(url: str, limits: Limits) -> DownloadError:
    return DownloadError(f"{url}: not downloaded within {limits.total_s:g} s"
                         f"{_key(limits.time_key)}; nothing installed")


def _key(setting: str) -> str:
    return f" ({setting})" if setting else ""


def _network_error(url: str, exc: Exception) -> DownloadError:
    if isinstance(exc, urllib.error.HTTPError):
        return DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; nothing installed")
    if isinstance(exc, urllib.error.URLError):
        return DownloadError(f"{url}: {exc.reason}; nothing installed")
    if isinstance(exc, OSError | ValueError):
        return DownloadError(f"{url}: {exc}; nothing installed")
    # e.g. IncompleteRead: the connection was cut in the middle of a chunked response.
    return DownloadError(f"{url}: broken HTTP response ({type(exc).__name__}); nothing installed")


class _Watchdog:
    """Shuts down the sockets of a download's connections once its deadline has passed.

    It keeps doing so every 0.2 s until the download ends, for a connection that was still
    connecting (no socket yet) at the deadline.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = threading.Event()
        self._done = threading.Event()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="edgecam-download-deadline",
                                        daemon=True)

    def watch(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(connection)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        if self._done.wait(max(0.0, self.deadline - time.monotonic())):
            return
        self.fired.set()
        while True:
            with self._lock:
                sockets = [c.sock for c in self._connections if c.sock is not None]
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            if self._done.wait(0.2):
                return


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """HTTP(S) only, with proxies and redirects (to HTTP(S) only: not ftp://, not file://),
    every connection watched."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    _watched(watchdog, urllib.request.HTTPHandler),
                    _watched(watchdog, urllib.request.HTTPSHandler),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _watched(watchdog: _Watchdog, base: type[Any]) -> Any:
    """urllib's `base` handler (HTTP or HTTPS) whose connections `watchdog` can cut."""

    class Handler(base):
        def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
            def connection(*args: Any, **kw: Any) -> Any:
                made = http_class(*args, **kw)
                watchdog.watch(made)
                return made
            return super().do_open(connection, req, **kwargs)

    return Handler()

