"""The status page in a real browser: Debian's headless Chromium, driven by Playwright.

Playwright drives apt's /usr/bin/chromium (`executable_path`: no browser is
ever downloaded). The daemon reads a live stream of ../shared/images (a
scene every SCENE_S seconds, served by ffmpeg: tests/streams.py), with two
zones: `scene`, the whole frame, and `corner`, a rectangle in it. The test
checks what a person aiming the camera from a phone sees: the preview moves
when the scene changes, the page's label is the socket's, and the zones'
rectangles are drawn where the config puts them; the recent snapshots
(each label change's, snapshots being on) and the board's temperature and
throttling (a fake Pi sysfs: tests/sysfs.py) are shown. Its screenshots are saved
under the test's temp dir (docs/status-page.png is one of them).
Waits only bound hangs; no assertion measures speed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from harness import IMAGES, Client, base_config, wait_for
from streams import FFMPEG, StreamServer, build_scenes, free_port
from sysfs import fake_sysfs
from web_client import wait_serving

from edgecam.daemon.board_watch import BOARD_ROOT_ENV

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.skipif(not os.access(FFMPEG, os.X_OK), reason="needs ffmpeg"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt install chromium)"),
]
pytest.importorskip("aiohttp")
playwright = pytest.importorskip("playwright.sync_api")

SCENES = ("cat.bmp", "grace_hopper.bmp", "parrot.jpg")
SCENE_S = 4
FPS = 10
CORNER = [0.55, 0.1, 0.35, 0.45]  # x, y, width, height
ZONES = [{"name": "scene", "crop": [0.0, 0.0, 1.0, 1.0]}, {"name": "corner", "crop": CORNER}]
PHONE = {"width": 412, "height": 915}  # a phone held upright, in CSS pixels
SAME_LABEL_S = 2.0  # "within a second or two"
PREVIEW_S = 10.0  # bounds a frozen preview
WAIT_S = 60.0  # bounds a hang


class Labels:
    """Reads the socket in a thread: each zone's current (last emitted) label, and when it came."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.current: dict[str, str] = {}
        self.changes: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="socket-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                message = self.client.message()
                if message["type"] == "classification":
                    zone, label = message["zone"], message["labels"][0]["label"]
                    if self.current.get(zone) != label:
                        self.changes.append((zone, label))
                    self.current[zone] = label
        except (OSError, EOFError, ValueError):
            pass  # closed at teardown

    def close(self) -> None:
        self._stop.set()
        self.client.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def scenes_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stream") / "scenes.ts"
    return build_scenes(out, [IMAGES / name for name in SCENES], SCENE_S, FPS)


@pytest.fixture
def page_on_stream(scenes_video: Path, tmp_path: Path, daemons) -> Iterator[tuple[Any, Labels, int]]:
    """A daemon on the live stream with the page on, a socket reader, and Chromium's page: each
    stopped at teardown (the daemon by the `daemons` fixture, by pid)."""
    server = StreamServer(scenes_video, free_port(), tmp_path / "ffmpeg.log")
    labels: Labels | None = None
    try:
        server.start()
        port = free_port()
        config = base_config(tmp_path, camera={"source": server.url, "fps": FPS},
                             outputs={"emit": "on_change", "min_score": 0.0},
                             web={"enabled": True, "listen": f"127.0.0.1:{port}"},
                             snapshots={"enabled": True, "dir": str(tmp_path / "snapshots")})
        config["zones"] = ZONES
        # A Pi's sysfs as the page reads it through the daemon: 48.3 °C, throttled now (0x4).
        board = fake_sysfs(tmp_path / "board", {"cpu-thermal": "48300"}, throttled="0x4")
        daemon = daemons(config, env={BOARD_ROOT_ENV: str(board)})
        labels = Labels(daemon.client())
        wait_for(lambda: {"scene", "corner"} <= set(labels.current), WAIT_S, "both zones' labels")
        wait_serving(port)
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM))
            try:
                page = browser.new_page(viewport=PHONE)
                page.goto(f"http://127.0.0.1:{port}/")
                yield page, labels, port
            finally:
                browser.close()
    finally:
        if labels is not None:
            labels.close()
        server.close()


def zone_label(page: Any, zone: str) -> str | None:
    item = page.query_selector(f'#zones li[data-zone="{zone}"] .zone-label')
    return item.text_content() if item is not None else None


def preview(page: Any, path: Path) -> np.ndarray:
    """A screenshot of the preview as the page shows it (BGR), saved at `path`."""
    page.locator("#preview").screenshot(path=str(path))
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def scene_preview(page: Any, labels: Labels, path: Path, last_scene: np.ndarray | None) -> np.ndarray:
    """The preview once it differs from the last scene's (retried: it may lag the label)."""
    deadline = time.monotonic() + PREVIEW_S
    while True:
        image = preview(page, path)
        if last_scene is None or differs(last_scene, image):
            return image
        if time.monotonic() > deadline:
            raise AssertionError(f"the preview did not change with the scene in {PREVIEW_S:.0f} s: "
                                 f"{preview_state(page, labels)}")
        time.sleep(0.1)


def differs(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two previews show different scenes (not the same frame, nor JPEG noise)."""
    height, width = min(first.shape[0], second.shape[0]), min(first.shape[1], second.shape[1])
    difference = np.abs(first[:height, :width].astype(int) - second[:height, :width].astype(int))
    return bool(difference.mean() > 20)


def preview_state(page: Any, labels: Labels) -> str:
    """What a frozen preview's failure should say: the page's stream, the daemon's preview
    counters, and the socket's label changes."""
    status = page.evaluate("fetch('/api/status').then(r => r.json())")
    outputs = status["stats"]["outputs"]
    counters = {key: value for key, value in outputs.items() if key.startswith("web_")}
    source = page.evaluate("document.getElementById('preview').src")
    return (f"img src {source}, "
            f"viewers {status['preview']['viewers']}, {counters}, label changes {labels.changes}")


def yellow(image: np.ndarray) -> np.ndarray:
    """Where the zones' colour (edgecam.web.preview.ZONE_BGR, yellow) is, after JPEG and scaling."""
    blue, green, red = (image[..., i].astype(int) for i in range(3))
    return (red > 170) & (green > 170) & (blue < 110)


def edge_drawn(mask: np.ndarray, line: slice | int, along: slice, axis: int) -> float:
    """The share of the pixels along one edge with the zones' colour within two pixels of it."""
    if axis == 0:  # a horizontal edge at row `line`
        band = mask[max(0, line - 2):line + 3, along]
        return float(band.any(axis=0).mean())
    band = mask[along, max(0, line - 2):line + 3]
    return float(band.any(axis=1).mean())


def test_the_page_shows_the_preview_the_labels_and_the_zones(page_on_stream, tmp_path: Path) -> None:
    page, labels, _port = page_on_stream
    wait_for(lambda: page.evaluate("document.getElementById('preview').naturalWidth") > 0, WAIT_S,
             "the preview's first frame")

    # The label on the page is the socket's, within a second or two, scene after scene; and the
    # preview follows the scene: its pixels change when the scene does. The preview may lag the
    # label (it is encoded at most preview_fps times a second, and the browser shows an MJPEG part
    # once the next one begins), so each scene's screenshot is retried until it differs from the
    # last scene's; the bound only catches a preview that froze.
    shots: dict[str, np.ndarray] = {}
    seen: list[str] = []
    while len(seen) < len(SCENES):
        socket_label = wait_for(lambda: labels.current.get("scene") not in (None, *seen) and
                                labels.current["scene"], WAIT_S, "the next scene's label")
        wait_for(lambda: zone_label(page, "scene") == labels.current["scene"], SAME_LABEL_S,
                 f"the page to show the socket's label {socket_label!r}")
        seen.append(labels.current["scene"])
        shots[seen[-1]] = scene_preview(page, labels, tmp_path / f"preview-{len(seen)}.png",
                                        shots[seen[-2]] if len(seen) > 1 else None)
        page.screenshot(path=str(tmp_path / f"page-{len(seen)}.png"), full_page=True)

    # The zones' rectangles are where the config puts them, scaled to the preview on the page.
    image = shots[seen[-1]]
    mask = yellow(image)
    height, width = mask.shape
    x, y, w, h = CORNER
    left, top = round(x * width), round(y * height)
    right, bottom = round((x + w) * width) - 1, round((y + h) * height) - 1
    across, down = slice(left + 2, right - 2), slice(top + 2, bottom - 2)
    for name, share in (("top", edge_drawn(mask, top, across, 0)),
                        ("bottom", edge_drawn(mask, bottom, across, 0)),
                        ("left", edge_drawn(mask, left, down, 1)),
                        ("right", edge_drawn(mask, right, down, 1))):
        assert share > 0.9, f"the corner zone's {name} edge is drawn ({share:.0%} of it)"
    inside = mask[top + 8 + height // 10:bottom - 8, left + 8:right - 8]  # below its label
    assert inside.mean() < 0.2, "inside the zone is the picture, not the colour"
    assert edge_drawn(mask, height - 2, slice(0, width), 0) > 0.9, "the scene zone: the frame's border"
    assert page.text_content("#model") == "mobilenet_v2_1.0_224_quant.tflite"
    wait_for(lambda: page.text_content("#temperature") == "48.3 °C" and
             page.text_content("#throttling") == "throttled", WAIT_S,
             "the board's temperature and throttling on the page")
    wait_for(lambda: page.evaluate("[...document.querySelectorAll('#snapshots img')]"
                                   ".filter(i => i.complete && i.naturalWidth > 0).length") > 0,
             WAIT_S, "the recent snapshots, shown")
    page.screenshot(path=str(tmp_path / "page-snapshots.png"), full_page=True)
    assert page.text_content("#connection") == "live"
