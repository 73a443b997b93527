"""Deferred pictures (edgecam/sources/pictures.py): decoded only for the model, and only when it takes them.

In process, with real threads and the real model: JPEG scales, the capture
thread leaving superseded pictures undecoded, latency counted from arrival,
and a fake OpenCV V4L2 webcam that hands over raw MJPEG. The counts are exact;
time limits only bound a hang. (PyAV files and live streams: tests/integration/test_decode.py.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import Collect, read_all
from harness import DEFAULT_MODEL, EXPECTED_TOP1, IMAGES, LABELS, wait_for

from edgecam.config import OutputsConfig, PipelineConfig
from edgecam.core.frames import IDENTITY, Fitter, Frame, Picture
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.daemon.notify import Notifier, Watchdog
from edgecam.models.classifier import Classifier
from edgecam.models.preprocess import FrameFitter
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.pipeline.capture import Capture
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.inference import Inference
from edgecam.pipeline.work import InferenceSettings
from edgecam.sources import OpenCVSource
from edgecam.sources import opencv as opencv_source
from edgecam.sources.base import Source
from edgecam.sources.pictures import JpegPicture, jpeg_scale_flag

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
    from edgecam.core.frames import FrameFormatError

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

def test_latency_includes_the_time_a_frame_waited_undecoded(classifier: Classifier) -> None:
    stats = Stats()
    slot = FrameSlot(lambda frame: stats.drop(frame.superseded_reason))
    collect = Collect()
    outputs = Dispatcher([collect], stats)
    settings = InferenceSettings(classifier, PipelineConfig(max_frame_age_ms=60_000),
                                 ResultFilter(OutputsConfig(emit="every_frame", min_score=0.0)))
    inference = Inference(settings, slot, stats, outputs.emit, Watchdog(Notifier({})).kick,
                          lambda: False)
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
