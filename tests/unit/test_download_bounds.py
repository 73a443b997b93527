"""Downloads from a hostile source (models/fetch.py, models/transfer.py), against a real HTTP
server on 127.0.0.1 in a thread and real files: bounded in size and in total time, regular
files only, nothing left behind, installed files private, no digest of what came in a message.

The time limits here are small (Limits' parameter) so the trickling servers fail in about a
second; the hang bounds (pytest's timeout, the joins) are generous.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgecam.errors import ChecksumError, DownloadError, DownloadRefused
from edgecam.models.fetch import download
from edgecam.models.transfer import Limits

BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()
HANG_S = 60  # bounds a hang only


class Hostile(BaseHTTPRequestHandler):
    """Serves /good, /endless, /trickle, /slow-headers and /liar (a huge Content-Length)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        stop: threading.Event = self.server.stop  # type: ignore[attr-defined]
        try:
            if self.path == "/slow-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                while not stop.wait(0.2):
                    self.wfile.write(b"X: y\r\n")
                return
            self.send_response(200)
            if self.path == "/good":
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)
            elif self.path == "/liar":
                self.send_header("Content-Length", str(10**12))
                self.end_headers()
                stop.wait(HANG_S)  # a body that never comes: reading it would hang
            elif self.path == "/endless":
                self.end_headers()  # no length: until the connection closes
                chunk = b"\0" * 65536
                while not stop.is_set():
                    self.wfile.write(chunk)
            elif self.path == "/trickle":
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                for byte in BODY:
                    if stop.wait(0.2):
                        break
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
        except OSError:
            pass  # the client gave up, as it should
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Callable[[str], str]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    httpd.requests = []  # type: ignore[attr-defined]
    httpd.stop = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        yield lambda path: f"http://127.0.0.1:{port}{path}"
    finally:
        httpd.stop.set()  # type: ignore[attr-defined]
        httpd.shutdown()
        httpd.server_close()
        thread.join(HANG_S)


def nothing_left(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [], list(folder.iterdir())


def test_a_good_download_is_installed_private(server, tmp_path: Path) -> None:
    target = tmp_path / "m.tflite"
    download(server("/good"), target, SHA, Limits(10**6, HANG_S), mode=0o640)
    assert target.read_bytes() == BODY
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_uid == os.geteuid() and target.stat().st_gid == os.getegid()
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]


def test_an_endless_body_fails_at_the_cap_and_leaves_nothing(server, tmp_path: Path) -> None:
    with pytest.raises(DownloadRefused, match=r"larger than 1 MB.*nothing installed"):
        download(server("/endless"), tmp_path / "m.tflite", SHA, Limits(10**6, HANG_S))
    nothing_left(tmp_path)


def test_a_content_length_past_the_cap_is_refused_before_reading(server, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadRefused, match=r"larger than 1 MB \(1000000\.0 MB\)"):
        download(server("/liar"), tmp_path / "m.tflite", SHA, Limits(10**6, HANG_S))
    assert time.monotonic() - started < HANG_S  # it did not wait for the body
    nothing_left(tmp_path)


@pytest.mark.parametrize("path", ["/trickle", "/slow-headers"])
def test_a_trickle_fails_by_the_total_deadline(server, tmp_path: Path, path: str) -> None:
    """A byte every 0.2 s never trips a per-read timeout; the total one (1 s here) ends it."""
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"not downloaded within 1 s.*nothing installed") as error:
        download(server(path), tmp_path / "m.tflite", SHA, Limits(10**6, 1.0))
    assert not isinstance(error.value, DownloadRefused)  # may work later: retried
    assert time.monotonic() - started < HANG_S
    nothing_left(tmp_path)


def test_a_mismatch_names_no_digest_of_what_came(server, tmp_path: Path) -> None:
    wanted = "0" * 64
    with pytest.raises(ChecksumError) as error:
        download(server("/good"), tmp_path / "m.tflite", wanted, Limits(10**6, HANG_S))
    assert SHA not in str(error.value) and "sha256 mismatch" in str(error.value)
    nothing_left(tmp_path)


def test_file_urls_read_regular_files_only_without_blocking(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "model").write_bytes(BODY)
    os.mkfifo(source / "fifo")  # nobody writes: opening it to read would block forever
    (source / "link").symlink_to(source / "model")
    (source / "folder").mkdir()
    target = tmp_path / "models"
    target.mkdir()
    for name, problem in (("fifo", "not a regular file"), ("folder", "not a regular file"),
                          ("link", "a symbolic link")):
        with pytest.raises(DownloadRefused, match=problem):
            download((source / name).as_uri(), target / "m.tflite", SHA, Limits(10**6, HANG_S))
    with pytest.raises(DownloadRefused, match="not a regular file"):
        download("file:///dev/zero", target / "m.tflite", SHA, Limits(10**6, HANG_S))
    with pytest.raises(DownloadRefused, match=r"larger than 0\.1 MB \(0\.3 MB\)"):
        download((source / "model").as_uri(), target / "m.tflite", SHA, Limits(10**5, HANG_S))
    with pytest.raises(DownloadError, match="No such file"):
        download((source / "gone").as_uri(), target / "m.tflite", SHA, Limits(10**6, HANG_S))
    with pytest.raises(DownloadRefused, match="not of another host"):
        download("file://nas.lan/m.tflite", target / "m.tflite", SHA, Limits(10**6, HANG_S))
    nothing_left(target)
    download((source / "model").as_uri(), target / "m.tflite", SHA, Limits(10**6, HANG_S))
    assert (target / "m.tflite").read_bytes() == BODY


def test_a_partial_file_left_by_a_killed_download_goes_at_the_next(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.write_bytes(BODY)
    target = tmp_path / "models"
    target.mkdir()
    stale = target / ".m.tflite.abc123.part"  # what kill -9 in the middle leaves
    stale.write_bytes(BODY[:1000])
    download(source.as_uri(), target / "m.tflite", SHA)
    assert sorted(p.name for p in target.iterdir()) == ["m.tflite"]
