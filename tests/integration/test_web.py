"""The status page of the real daemon over HTTP: the token, the headers, the viewers, the reloads.

Each daemon reads the photos folder (base_config) with the page on a free
port; the browser's view of it is tests/integration/test_web_browser.py.
Waits only bound hangs; no assertion measures speed.
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_edgecam
from harness import base_config, wait_for, write_config
from streams import free_port, listening
from web_client import Viewer, get, wait_serving

from edgecam.errors import EX_CONFIG, EX_UNAVAILABLE
from edgecam.web.server import MAX_VIEWERS

pytest.importorskip("aiohttp")

TOKEN = "correct-horse-battery-staple"


def web_config(tmp_path: Path, port: int, **web: Any) -> dict[str, Any]:
    return base_config(tmp_path, web={"enabled": True, "listen": f"127.0.0.1:{port}", **web})


@pytest.fixture
def viewers() -> Iterator[list[Viewer]]:
    """Viewers a test opens; all closed at teardown."""
    opened: list[Viewer] = []
    yield opened
    for viewer in opened:
        viewer.close()


def stats(port: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, _, body = get(port, "/api/status", headers)
    assert status == 200, status
    return json.loads(body)["stats"]


def test_with_a_token_every_path_but_login_needs_it(tmp_path: Path, daemons) -> None:
    port = free_port()
    token_file = tmp_path / "web.token"
    token_file.write_text(f"{TOKEN}\nthe second line is not the token\n")
    daemon = daemons(web_config(tmp_path, port, token_file=str(token_file)))
    daemon.client().messages("classification", 1)
    wait_serving(port)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
    for path in ("/", "/api/status", "/preview.jpg", "/preview.mjpeg", "/static/app.js"):
        assert get(port, path)[0] == 401, path
        assert get(port, path, wrong)[0] == 401, path
    for path in ("/", "/api/status", "/preview.jpg"):
        status, headers, _ = get(port, path, bearer)
        assert status == 200, path
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
    status, headers, jpeg = get(port, "/preview.jpg", bearer)
    assert headers["Cache-Control"] == "no-store" and jpeg[:2] == b"\xff\xd8"

    status, _, page = get(port, "/login")
    assert status == 200 and b'name="token"' in page
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert get(port, "/login", form, "POST", "token=nope")[0] == 401
    status, headers, _ = get(port, "/login", form, "POST", f"token={TOKEN}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert TOKEN not in cookie and "HttpOnly" in headers["Set-Cookie"]
    assert get(port, "/api/status", {"Cookie": cookie})[0] == 200
    assert get(port, "/api/status", {"Cookie": "edgecam_session=forged"})[0] == 401
    assert get(port, "/api/status", bearer, "POST")[0] == 405, "read-only"


def test_a_page_on_the_network_without_a_token_is_refused_at_its_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "edgecam.yaml", "web:\n  enabled: true\n  listen: \":8080\"\n")
    done = run_edgecam("check-config", "-c", config)
    assert done.returncode == EX_CONFIG
    assert f"{config}:3: web.listen: 0.0.0.0:8080 is reachable from other machines" in done.stderr
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    write_config(config, f"web:\n  enabled: true\n  token_file: {tmp_path / 'gone.token'}\n")
    done = run_edgecam("check-config", "-c", config)
    assert done.returncode == EX_CONFIG
    assert f"{config}:3: web.token_file: {tmp_path / 'gone.token'}: no such file" in done.stderr


def test_four_viewers_stream_a_fifth_gets_503_and_the_four_go_on(tmp_path: Path, daemons,
                                                                   viewers: list[Viewer]) -> None:
    port = free_port()
    daemon = daemons(web_config(tmp_path, port, preview_fps=10))
    daemon.client().messages("classification", 1)
    wait_serving(port)
    for _ in range(MAX_VIEWERS):
        viewers.append(Viewer(port).open())
        assert viewers[-1].status == 200 and "multipart/x-mixed-replace" in viewers[-1].headers
        assert "Cache-Control: no-store" in viewers[-1].headers
    for viewer in viewers:
        viewer.frames(2)
    fifth = Viewer(port)
    viewers.append(fifth)
    assert fifth.open().status == 503
    for viewer in viewers[:MAX_VIEWERS]:
        assert len(viewer.frames(3)) == 3, "the first four keep streaming"
    assert stats(port)["outputs"]["web_viewers_refused"] == 1
    assert stats(port)["outputs"]["web_viewers"] == MAX_VIEWERS
    viewers.pop(0).close()
    wait_for(lambda: stats(port)["outputs"]["web_viewers"] == MAX_VIEWERS - 1, 30, "a place freed")
    sixth = Viewer(port)
    viewers.append(sixth)
    assert sixth.open().status == 200 and sixth.frames(1)


def test_a_viewer_that_never_reads_loses_frames_counted_and_inference_goes_on(
        tmp_path: Path, daemons, viewers: list[Viewer]) -> None:
    port = free_port()
    daemon = daemons(web_config(tmp_path, port, preview_fps=20, preview_width=1280))
    daemon.client().messages("classification", 1)
    wait_serving(port)
    viewers.append(Viewer(port, receive_buffer=4096))  # never read
    first = wait_for(lambda: (lambda s: s if s["outputs"]["web_preview_dropped"] > 0 else None)(
        stats(port)), 60, "a preview frame the viewer missed, counted")
    later = wait_for(lambda: (lambda s: s if s["frames"]["classified"] > first["frames"]["classified"] + 20
                              else None)(stats(port)), 60, "classification going on")
    assert later["outputs"]["web_preview_dropped"] >= first["outputs"]["web_preview_dropped"]
    assert later["outputs"]["web_viewers"] == 1


def test_reload_keeps_moves_and_refuses(tmp_path: Path, daemons) -> None:
    first, second = free_port(), free_port()
    config = web_config(tmp_path, first)
    daemon = daemons(config)
    daemon.client().messages("classification", 1)
    wait_serving(first)

    def reload(expect: str) -> None:
        write_config(daemon.config_path, config)
        before = daemon.log().count(expect)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.log().count(expect) > before, 30, f"the reload ({expect})")

    config["web"]["preview_width"] = 320  # kept: the same server, the new width
    reload("reloaded: web")
    wait_for(lambda: get(first, "/api/status")[0] == 200 and json.loads(
        get(first, "/api/status")[2])["preview"]["width"] == 320, 30, "the new width")

    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    config["web"]["token_file"] = str(empty)
    reload("reload refused")
    assert "web.token_file: " in daemon.log() and "its first line, the token, is empty" in daemon.log()
    assert get(first, "/api/status")[0] == 200, "the old page goes on, without a token"

    occupied = socket.socket()
    occupied.bind(("127.0.0.1", second))
    occupied.listen()
    try:
        del config["web"]["token_file"]
        config["web"]["listen"] = f"127.0.0.1:{second}"
        reload("reload refused")
        assert f"web.listen: cannot serve on 127.0.0.1:{second}: Address already in use" in daemon.log()
        assert get(first, "/api/status")[0] == 200
    finally:
        occupied.close()
    reload("reloaded: web")
    wait_serving(second)
    assert not listening(first)

    config["web"]["enabled"] = False
    reload("reloaded: web")
    assert not listening(second)
    assert daemon.stop() == 0


def test_a_port_in_use_at_start_is_one_line(tmp_path: Path, daemons) -> None:
    port = free_port()
    occupied = socket.socket()
    occupied.bind(("127.0.0.1", port))
    occupied.listen()
    try:
        daemon = daemons(web_config(tmp_path, port))
        assert daemon.proc.wait(60) == EX_UNAVAILABLE
    finally:
        occupied.close()
    assert daemon.log().strip().splitlines()[-1] == (
        f"edgecam: web.listen: cannot serve on 127.0.0.1:{port}: Address already in use")
