"""Decoding only what the model takes: deferred pictures, the capture thread, PyAV streams.

In process, with real threads, the real model and real ffmpeg streams read by
PyAV. The counts are exact; time limits only bound a hang.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import DEFAULT_MODEL, EXPECTED_TOP1, IMAGES, LABELS, wait_for
from streams import FFMPEG, StreamServer, build_scenes, free_port, h264

from edgecam.config import OutputsConfig, PipelineConfig
from edgecam.daemon.faults import Faults
from edgecam.daemon.notify import Notifier, Watchdog
from edgecam.models.classifier import Classifier
from edgecam.models.preprocess import FrameFitter
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.pipeline.capture import Capture
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.frames import IDENTITY, Dropped, Fitter, Frame, Picture
from edgecam.pipeline.inference import Inference, InferenceSettings
from edgecam.pipeline.slot import FrameSlot
from edgecam.pipeline.stats import Stats
from edgecam.sources import OpenCVSource
from edgecam.sources import opencv as opencv_source
from edgecam.sources.base import Source
from edgecam.sources.pictures import JpegPicture, jpeg_scale_flag
from edgecam.sources.pyav import AVSource

needs_ffmpeg = pytest.mark.skipif(not os.access(FFMPEG, os.X_OK), reason="needs ffmpeg")
FIT = FrameFitter((224, 224), "crop")
WAIT_S = 60.0


def jpeg_of(name: str, size: tuple[int, int] = (1280, 720)) -> bytes:
    image = cv2.resize(cv2.imread(str(IMAGES / name)), size)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1)


# -- deferred JPEGs ------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "resize", "flag"), [
    ((1280, 720), "crop", cv2.IMREAD_REDUCED_COLOR_2),   # 720/2 = 360 >= 224; 720/4 = 180 is not
    ((1920, 1080), "crop", cv2.IMREAD_REDUCED_COLOR_4),  # 1080/4 = 270
    ((3840, 2160), "crop", cv2.IMREAD_REDUCED_COLOR_8),
    ((320, 240), "crop", cv2.IMREAD_COLOR),              # already small: full scale
    ((1280, 720), "stretch", cv2.IMREAD_REDUCED_COLOR_2),
])
def test_jpeg_is_decoded_at_the_smallest_scale_that_covers_the_model(size, resize, flag) -> None:
    assert jpeg_scale_flag(*size, FrameFitter((224, 224), resize)) == flag
    assert jpeg_scale_flag(*size, IDENTITY) == cv2.IMREAD_COLOR, "no fitter: the full picture"


@pytest.mark.parametrize("name", sorted(EXPECTED_TOP1))
def test_a_reduced_jpeg_decode_classifies_like_the_photo(name: str, classifier: Classifier) -> None:
    picture = JpegPicture(jpeg_of(name, (1024, 1024)), 1024, 1024)
    image = picture.decode(FIT)
    assert image.shape == (224, 224, 3)
    assert classifier.classify(image).labels[0].label == EXPECTED_TOP1[name]


def test_a_corrupt_jpeg_is_a_bad_frame_not_a_crash() -> None:
    from edgecam.models.preprocess import FrameFormatError

    with pytest.raises(FrameFormatError, match="corrupt JPEG"):
        JpegPicture(b"\xff\xd8 not really", 1280, 720).decode(FIT)


# -- the capture thread never decodes what gets superseded ---------------------------------------

class CountingPicture(Picture):
    """A deferred picture that counts its decodes."""

    decodes = 0
    lock = threading.Lock()

    def decode(self, fit: Fitter) -> np.ndarray:
        with CountingPicture.lock:
            CountingPicture.decodes += 1
        return np.zeros((fit.height, fit.width, 3), np.uint8)


class FastSource(Source):
    """Delivers deferred pictures as fast as the reader asks, like a camera far faster than the model."""

    name = "fast"

    def open(self) -> None:
        pass

    def read(self, stop: threading.Event) -> Picture:
        time.sleep(0.0005)
        return CountingPicture()

    def close(self) -> None:
        pass


def test_frames_superseded_before_decoding_are_never_decoded() -> None:
    CountingPicture.decodes = 0
    stats = Stats()
    slot = FrameSlot(lambda frame: stats.drop(frame.superseded_reason))
    capture = Capture(FastSource, slot, stats, stall_timeout_s=30, fit=FIT)
    taken = 0
    capture.start()
    try:
        while taken < 50:
            frame = slot.take(WAIT_S)
            assert frame is not None
            assert frame.decode().shape == (224, 224, 3)
            taken += 1
            time.sleep(0.01)  # the model is slower than the camera
    finally:
        capture.stop()
    left_in_slot = 1 if slot.take(0) is not None else 0
    assert CountingPicture.decodes == taken, "only the frames the model took were decoded"
    assert stats.get("dropped_undecoded") > taken, "the camera was faster: most frames were superseded"
    assert stats.get("captured") == taken + stats.get("dropped_undecoded") + left_in_slot
    assert stats.get("dropped_overwritten") == 0


class Collect:
    name = "collect"
    stats_interval_s = 0.0

    def __init__(self) -> None:
        self.results: list = []

    def emit(self, result) -> None:
        self.results.append(result)

    def stats(self, snapshot) -> None:
        pass

    def close(self) -> None:
        pass


def test_latency_includes_the_time_a_frame_waited_undecoded(classifier: Classifier) -> None:
    stats = Stats()
    slot = FrameSlot(lambda frame: stats.drop(frame.superseded_reason))
    collect = Collect()
    outputs = Dispatcher([collect], stats)
    settings = InferenceSettings(classifier, PipelineConfig(max_frame_age_ms=60_000),
                                 ResultFilter(OutputsConfig(emit="every_frame", min_score=0.0)))
    inference = Inference(settings, slot, stats, outputs, Watchdog(Notifier({})), lambda: False,
                          Faults({}))
    waited_s = 0.3
    arrived = time.monotonic() - waited_s, time.time() - waited_s
    picture = JpegPicture(jpeg_of("cat.bmp"), 1280, 720)
    outputs.start()
    inference.start()
    try:
        slot.put(Frame.capture(1, picture, arrived, FIT))
        wait_for(lambda: collect.results, WAIT_S, "the result")
    finally:
        inference.stop()
        outputs.close()
    result = collect.results[0]
    assert result.top.label == "Egyptian cat"
    assert result.latency_ms >= waited_s * 1000, "latency runs from the packet's arrival, not the decode"
    assert result.ts == pytest.approx(arrived[1])


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


def read_all(source: Source, limit: int = 1000) -> list:
    stop = threading.Event()
    delivered = []
    source.open()
    try:
        while len(delivered) < limit and (item := source.read(stop)) is not None:
            delivered.append(item)
    finally:
        source.close()
    return delivered


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


# -- USB webcams: raw MJPEG through OpenCV's V4L2 backend ----------------------------------------

class FakeV4L2Capture:
    """Follows cv2.VideoCapture (OpenCV 4.6-5.0) as its V4L2 backend behaves for an MJPEG webcam:
    set(CAP_PROP_FOURCC, MJPG) is accepted, set(CAP_PROP_CONVERT_RGB, 0) makes read() return
    the raw JPEG bytes as a 1 x N uint8 array. Functions followed: isOpened, set, get, read, release."""

    def __init__(self, *args, **kwargs) -> None:
        self.props: dict[int, float] = {cv2.CAP_PROP_FRAME_WIDTH: 1280, cv2.CAP_PROP_FRAME_HEIGHT: 720,
                                        cv2.CAP_PROP_FPS: 30, cv2.CAP_PROP_CONVERT_RGB: 1}
        self.data = np.frombuffer(jpeg_of("parrot.jpg"), np.uint8).reshape(1, -1)

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0)

    def read(self) -> tuple[bool, np.ndarray]:
        if self.props[cv2.CAP_PROP_CONVERT_RGB]:
            return True, cv2.imdecode(self.data, cv2.IMREAD_COLOR)
        return True, self.data

    def release(self) -> None:
        pass


def test_a_webcam_that_offers_mjpeg_is_read_raw_and_decoded_only_for_the_model(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, classifier: Classifier) -> None:
    device = tmp_path / "video0"
    device.touch()
    monkeypatch.setattr(opencv_source.cv2, "VideoCapture", FakeV4L2Capture)
    picture = read_all(OpenCVSource(str(device), "device", width=1280, height=720, fps=30), limit=1)[0]
    assert isinstance(picture, JpegPicture) and (picture.width, picture.height) == (1280, 720)
    assert classifier.classify(picture.decode(FIT)).labels[0].label == "macaw"
