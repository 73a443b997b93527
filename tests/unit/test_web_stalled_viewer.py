"""A /preview.mjpeg viewer that takes nothing for STALLED_S is disconnected, and its place freed.

The status page's server in process (edgecam.web.server.WebServer on a free
port), fed frames by a thread as the inference thread would; STALLED_S is
shortened to two seconds so that the test waits seconds, not the half minute a
phone that went to sleep is given. The waits only bound hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from harness import wait_for
from streams import free_port
from web_client import Viewer

from edgecam.core.latest import LatestFrame
from edgecam.core.stats import Stats
from edgecam.web.page import PageSettings, PageState

server = pytest.importorskip("edgecam.web.server")

WAIT_S = 30.0


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Stats]]:
    """The page on a free port with frames of noise (large JPEGs: a kernel buffer fills in a
    frame or two) arriving 25 times a second; stopped at teardown."""
    monkeypatch.setattr(server, "STALLED_S", 2.0)
    stats, latest = Stats(), LatestFrame()
    settings = PageSettings(token=None, preview_fps=5, preview_width=1280, zones=(), model="m.tflite",
                            snapshots=None)
    web = server.WebServer(PageState(settings, stats), latest, stats)
    port = free_port()
    stop = threading.Event()

    noise = np.random.default_rng(7).integers(0, 256, (720, 1280, 3), np.uint8)

    def feed() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1  # a new frame to the preview, which encodes any frame it has not yet
            latest.put(seq, time.time(), noise)
            stop.wait(0.04)

    feeder = threading.Thread(target=feed, name="frames", daemon=True)
    feeder.start()
    try:
        web.start("127.0.0.1", port, f"127.0.0.1:{port}")
        yield port, stats
    finally:
        stop.set()
        feeder.join(5)
        web.close()


def test_a_viewer_that_takes_nothing_is_disconnected_counted_and_its_place_freed(
        page: tuple[int, Stats]) -> None:
    port, stats = page
    asleep = Viewer(port, receive_buffer=4096).open()  # then never reads, as a phone asleep
    awake = Viewer(port).open()
    received: list[int] = []
    reading = threading.Thread(target=lambda: read_all(awake, received), name="awake", daemon=True)
    reading.start()
    try:
        assert asleep.status == 200 and awake.status == 200
        wait_for(lambda: stats.get("web_viewers_stalled") == 1, WAIT_S, "the stalled viewer, counted")
        wait_for(lambda: stats.values()[1]["web_viewers"] == 1, WAIT_S, "its place, freed")
        seen = len(received)
        wait_for(lambda: len(received) > seen + 3, WAIT_S, "the viewer that reads to go on")
        assert stats.get("web_viewers_stalled") == 1
        with pytest.raises((EOFError, ConnectionError)):
            while True:  # what the stalled one still gets is what its buffers held, then the end
                asleep.frames(1)
    finally:
        asleep.close()
        awake.close()
        reading.join(5)


def read_all(viewer: Viewer, received: list[int]) -> None:
    """Reads frames until the connection ends, noting each one's size."""
    try:
        while True:
            received.extend(len(jpeg) for jpeg in viewer.frames(1))
    except (OSError, EOFError):
        pass  # closed at teardown
