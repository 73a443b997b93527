"""`edgecam fetch-model` against a real HTTP server on 127.0.0.1: verified, atomic, idempotent."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import MODELS, run_edgecam

from edgecam.models.fetch import BASE_URL_ENV, DEFAULT_FILES

MODEL = "mobilenet_v2_1.0_224_quant.tflite"
LABELS = "imagenet_labels.txt"
SHA256 = {item.name: item.sha256 for item in DEFAULT_FILES}


class Handler(SimpleHTTPRequestHandler):
    """Serves a directory and records each request path on the server."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.on_request()
        super().do_GET()

    def on_request(self) -> None:
        pass

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest's output clean


class Error500Handler(Handler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_error(500, "Internal Server Error")


class CutHandler(Handler):
    """Starts a chunked response, then hangs up in the middle of the first chunk."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"10000\r\n" + b"x" * 100)
        self.close_connection = True


@dataclass
class Server:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Starts HTTP servers on 127.0.0.1 (port 0: any free one); all are shut down at the end."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(directory: Path, handler: type[Handler] = Handler) -> Server:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"http-{httpd.server_address[1]}", daemon=True)
        thread.start()
        running.append((httpd, thread))
        host, port = httpd.server_address[:2]
        server = Server(f"http://{host}:{port}")
        httpd.requests = server.requests  # type: ignore[attr-defined]
        return server

    yield start
    for httpd, thread in reversed(running):
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=30)


@pytest.fixture
def child_env() -> dict[str, str]:
    """The child's environment: no proxy (127.0.0.1 only) and no inherited base URL."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"} and k != BASE_URL_ENV}
    env["no_proxy"] = "*"
    return env


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    """Temporary files a download may leave beside its destination."""
    return sorted(p.name for p in directory.glob(".*.part"))


def fetch(directory: Path, *args: str, env: dict[str, str]):
    return run_edgecam("fetch-model", "--dir", directory, *args, env=env)


def one_error_line(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecam: ")
    return lines[0]


def test_downloads_and_verifies_both_files(tmp_path: Path, serve, child_env) -> None:
    """Each file is streamed into a temporary file beside its destination, then renamed into place."""
    target = tmp_path / "models"
    seen_during_download: list[list[str]] = []

    class Watching(Handler):
        def on_request(self) -> None:
            seen_during_download.append(sorted(p.name for p in target.iterdir()) if target.is_dir() else [])

    server = serve(MODELS, Watching)
    result = fetch(target, "--base-url", server.url, env=child_env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(server.requests) == sorted([f"/{MODEL}", f"/{LABELS}"])
    for name in (MODEL, LABELS):
        assert sha256(target / name) == SHA256[name]
    assert sorted(p.name for p in target.iterdir()) == sorted([MODEL, LABELS])
    assert leftovers(target) == []
    # While the model was downloading, its partial copy sat beside it (same filesystem, so
    # the final rename is atomic), under a dot-name the daemon never picks up.
    first = seen_during_download[0]
    assert any(name.startswith(f".{MODEL}.") and name.endswith(".part") for name in first), first
    assert MODEL not in first


def test_checksum_mismatch_installs_nothing(tmp_path: Path, serve, child_env) -> None:
    """A bad mirror or a corrupted transfer must never leave a model the daemon would then load."""
    served = tmp_path / "served"
    served.mkdir()
    good = (MODELS / MODEL).read_bytes()
    (served / MODEL).write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    shutil.copy(MODELS / LABELS, served / LABELS)
    target = tmp_path / "models"
    server = serve(served)
    result = fetch(target, "--base-url", server.url, env=child_env)
    line = one_error_line(result)
    assert "sha256" in line and MODEL in line
    assert server.requests == [f"/{MODEL}"]
    assert not (target / MODEL).exists()
    assert leftovers(target) == []


@pytest.mark.parametrize(("handler", "status"), [(Handler, 404), (Error500Handler, 500)])
def test_http_errors_name_the_status_and_leave_nothing(tmp_path: Path, serve, child_env, handler,
                                                       status: int) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    target = tmp_path / "models"
    server = serve(empty, handler)
    result = fetch(target, "--base-url", server.url, env=child_env)
    line = one_error_line(result)
    assert f"HTTP {status}" in line and MODEL in line
    assert server.requests == [f"/{MODEL}"]
    assert list(target.iterdir()) == []


def test_connection_cut_mid_download_is_one_line(tmp_path: Path, serve, child_env) -> None:
    """A dropped Wi-Fi link during a chunked transfer: a clear error, never a traceback."""
    target = tmp_path / "models"
    server = serve(MODELS, CutHandler)
    result = fetch(target, "--base-url", server.url, env=child_env)
    line = one_error_line(result)
    assert MODEL in line and "nothing installed" in line
    assert list(target.iterdir()) == []


def test_valid_files_already_present_make_no_request(tmp_path: Path, serve, child_env) -> None:
    """Re-running the installer (every upgrade does) must not download 3.6 MB again."""
    target = tmp_path / "models"
    target.mkdir()
    for name in (MODEL, LABELS):
        shutil.copy(MODELS / name, target / name)
    server = serve(MODELS)
    result = fetch(target, "--base-url", server.url, env=child_env)
    assert result.returncode == 0, result.stderr
    assert server.requests == []
    assert "0 file(s) downloaded" in result.stdout


def test_a_corrupt_installed_file_is_replaced(tmp_path: Path, serve, child_env) -> None:
    """A model cut short by a power cut is fetched again; the valid labels are left alone."""
    target = tmp_path / "models"
    target.mkdir()
    (target / MODEL).write_bytes((MODELS / MODEL).read_bytes()[:1000])
    shutil.copy(MODELS / LABELS, target / LABELS)
    server = serve(MODELS)
    result = fetch(target, "--base-url", server.url, env=child_env)
    assert result.returncode == 0, result.stderr
    assert server.requests == [f"/{MODEL}"]
    assert sha256(target / MODEL) == SHA256[MODEL]


def test_file_url_works(tmp_path: Path, child_env) -> None:
    target = tmp_path / "models"
    result = fetch(target, "--base-url", MODELS.as_uri(), env=child_env)
    assert result.returncode == 0, result.stderr
    for name in (MODEL, LABELS):
        assert sha256(target / name) == SHA256[name]
    assert leftovers(target) == []


def test_base_url_from_the_environment(tmp_path: Path, serve, child_env) -> None:
    server = serve(MODELS)
    target = tmp_path / "models"
    result = fetch(target, env={**child_env, BASE_URL_ENV: server.url})
    assert result.returncode == 0, result.stderr
    assert sorted(server.requests) == sorted([f"/{MODEL}", f"/{LABELS}"])
    assert sha256(target / MODEL) == SHA256[MODEL]


def test_base_url_option_wins_over_the_environment(tmp_path: Path, serve, child_env) -> None:
    used, ignored = serve(MODELS), serve(MODELS)
    target = tmp_path / "models"
    result = fetch(target, "--base-url", used.url, env={**child_env, BASE_URL_ENV: ignored.url})
    assert result.returncode == 0, result.stderr
    assert ignored.requests == [] and len(used.requests) == 2
