"""Decoding only what the model takes, from PyAV: video files and a live stream that falls behind.

In process, with the real model and real ffmpeg streams read by PyAV (the
in-process JPEG and capture-thread cases: tests/unit/test_pictures.py). The
counts are exact; time limits only bound a hang.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import read_all
from harness import DEFAULT_MODEL, IMAGES, LABELS
from streams import FFMPEG, StreamServer, build_scenes, free_port, h264

from edgecam.core.frames import Dropped, Picture
from edgecam.models.classifier import Classifier
from edgecam.models.preprocess import FrameFitter
from edgecam.sources.pyav import AVSource

needs_ffmpeg = pytest.mark.skipif(not os.access(FFMPEG, os.X_OK), reason="needs ffmpeg")
FIT = FrameFitter((224, 224), "crop")


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1)


# -- PyAV: files and live streams -----------------------------------------------------------------

@pytest.fixture(scope="module")
def scene_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    images = [IMAGES / "cat.bmp", IMAGES / "parrot.jpg"]
    return {
        "mjpeg": build_scenes(folder / "mjpeg.mkv", images, 1, 15, ("-c:v", "mjpeg", "-q:v", "4"),
                              size=(1280, 720)),
        "h264": build_scenes(folder / "h264.ts", images, 1, 15, h264(15), size=(1280, 720)),
        # A half-second keyframe interval: what "recovers within one keyframe interval" is held to.
        "live": build_scenes(folder / "live.ts", [IMAGES / "cat.bmp"], 4, 30, h264(15), size=(1280, 720)),
    }


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_a_video_file_is_read_as_deferred_pictures(codec: str, scene_videos, classifier) -> None:
    pictures = read_all(AVSource(str(scene_videos[codec]), "file", realtime=False))
    assert len(pictures) == 30, "two one-second scenes at 15 fps"
    assert all(isinstance(p, Picture) for p in pictures)
    superseded = {p.superseded_reason for p in pictures}
    assert superseded == ({"undecoded"} if codec == "mjpeg" else {"overwritten"})
    labels = [classifier.classify(p.decode(FIT)).labels[0].label for p in (pictures[7], pictures[22])]
    assert labels == ["Egyptian cat", "macaw"]


@pytest.fixture
def live_server(scene_videos, tmp_path: Path) -> Iterator[StreamServer]:
    server = StreamServer(scene_videos["live"], free_port(), tmp_path / "ffmpeg.log")
    server.start()
    yield server
    server.close()


@needs_ffmpeg
def test_a_stream_that_falls_behind_skips_to_a_keyframe_and_is_live_again(live_server) -> None:
    """The reader stops for 2 s (a slow board's hiccup); the stream backs up in the socket.

    Once reading again, it skips the backlog's non-keyframes and is back at live before it
    has read more than the backlog plus one keyframe interval (15 packets)."""
    max_behind_ms, gop = 200.0, 15
    source = AVSource(live_server.url, "stream", timeout_s=5, max_behind_ms=max_behind_ms)
    stop = threading.Event()
    source.open()
    try:
        for _ in range(30):
            assert isinstance(source.read(stop), Picture)
        time.sleep(2.0)
        first = source.read(stop)
        backlog = source.behind_ms
        assert backlog is not None and backlog > 1000, "the pause left the reader behind live"
        read = [first]
        while not (isinstance(read[-1], Picture) and (source.behind_ms or 0) <= max_behind_ms):
            read.append(source.read(stop))
            assert len(read) < 500
        caught_up_after = len(read)
        after = [source.read(stop) for _ in range(30)]
    finally:
        source.close()
    skipped = sum(isinstance(item, Dropped) for item in read)
    assert skipped > 0 and {item.reason for item in read if isinstance(item, Dropped)} == {
        "skipped_to_keyframe"}
    assert caught_up_after <= backlog / 1000 * 30 + gop + 2, "live again within one keyframe interval"
    assert all(isinstance(item, Picture) for item in after), "once live, every frame is decoded again"
