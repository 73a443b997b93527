"""The Raspberry Pi camera source (edgecam/sources/picamera.py), against a fake picamera2.

picamera2 cannot be installed on this machine: it needs libcamera's Python
bindings, which come only with Raspberry Pi OS (python3-picamera2). So these
tests inject tests/fake_picamera2.py as `picamera2` (and a two-line
`libcamera`) through sys.modules. The fake follows picamera2's real API as
read in raspberrypi/picamera2 0.3.36:

- picamera2/picamera2.py: `Picamera2.global_camera_info()` (returns [] without
  a camera), `Picamera2.__init__(camera_num=0)` (IndexError without a camera;
  RuntimeError("Camera __init__ sequence did not complete.") from libcamera's
  "Failed to acquire camera: Device or resource busy"), `create_video_configuration()`
  (main/lores/colour_space/buffer_count/controls; lores defaults to YUV420),
  `check_camera_config()` (lores no larger than main, even sizes, YUV lores on
  VC4), `configure()`, `start()`, `capture_request(wait=False)` + `wait(job,
  timeout)` (TimeoutError), `cancel_all_and_flush()`, `stop()`, `close()` (which
  calls stop() itself);
- picamera2/request.py: `CompletedRequest.make_array()` (a copy; YUV420 as
  (h*3/2, stride), RGB888 as B, G, R), `release()`;
  `Helpers._make_array_shared()` for the array shapes;
- picamera2/job.py: `Job.get_result(timeout)`, CancelledError after a cancel;
- libcamera src/py/libcamera/py_main.cpp: `Camera.acquire()` raising
  "Failed to acquire camera" with the errno text.

The frames are real photos turned into I420 buffers, so the delivered frame
is classified by the real model.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import IMAGES, MODELS
from fake_picamera2 import IMX708, Rig, make_modules

from edgecam.config import CameraConfig
from edgecam.dependencies import PICAMERA2, MissingDependency
from edgecam.errors import EX_NO_PICAMERA2, EX_UNAVAILABLE, SourceError
from edgecam.sources import make_source

INPUT_SIZE = (224, 224)
LORES_4_3 = (298, 224)  # main's 4:3 aspect at the smallest size covering the model input
DEFAULT_MODEL = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
LABELS = MODELS / "imagenet_labels.txt"


def photo(name: str = "cat.bmp") -> np.ndarray:
    image = cv2.imread(str(IMAGES / name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return image


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    """A fake camera showing cat.bmp, installed as picamera2 and libcamera."""
    rig = Rig(images=[photo("cat.bmp")])
    picamera2, libcamera = make_modules(rig)
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    return rig


def source(**camera: object):
    return make_source(CameraConfig(source="picamera2", **camera), INPUT_SIZE)


def configured(rig: Rig) -> dict:
    (config,) = [args for name, args in rig.calls if name == "configure"]
    return config


def one_line_error(excinfo: pytest.ExceptionInfo[SourceError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("camera.source: ")
    assert excinfo.value.exit_code == EX_UNAVAILABLE
    return message


def test_make_source_does_not_import_picamera2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    src = make_source(CameraConfig(source="picamera2", fps=25), INPUT_SIZE)
    from edgecam.sources.picamera import Picamera2Source

    assert isinstance(src, Picamera2Source)
    assert "picamera2" not in sys.modules
    assert src.name == "picamera2"
    assert src.frame_interval_s == pytest.approx(1 / 25)

    rig = Rig(images=[photo()])
    picamera2, libcamera = make_modules(rig)
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    src.open()
    try:
        assert rig.names()[:2] == ["global_camera_info", "__init__"]
    finally:
        src.close()


def test_open_asks_the_isp_for_a_lores_covering_the_model_input(rig: Rig) -> None:
    """lores keeps main's aspect ratio, so model.resize (crop by default) decides, not the ISP."""
    src = source(width=640, height=480, fps=30)
    src.open()
    try:
        config = configured(rig)
        assert config["lores"]["size"] == LORES_4_3
        assert config["lores"]["format"] == "YUV420"
        assert config["main"]["size"] == (640, 480)
        assert config["main"]["format"] == "RGB888"
        assert 2 <= config["buffer_count"] <= 4
        assert config["controls"]["FrameDurationLimits"] == (33333, 33333)  # 30 fps
        assert config["colour_space"].name == "SMPTE170M"  # what COLOR_YUV2BGR_I420 assumes
        assert rig.names().index("configure") < rig.names().index("start")
        assert rig.instances[0].started
    finally:
        src.close()


def test_colour_space_stays_bt601_for_a_large_main(rig: Rig) -> None:
    src = source(width=1920, height=1080)  # picamera2 alone would choose Rec.709 here
    src.open()
    src.close()
    assert configured(rig)["colour_space"].name == "SMPTE170M"
    assert configured(rig)["main"]["size"] == (1920, 1080)


def test_read_returns_the_lores_frame_as_bgr_and_releases_the_request(rig: Rig) -> None:
    src = source()
    src.open()
    try:
        image = src.read(threading.Event())
    finally:
        src.close()
    assert image is not None
    assert image.shape == (224, 298, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous
    # The fake pads each YUV420 row from 298 to 320 bytes (ISPs may pad rows): cut after conversion.
    assert rig.requests[0].config["lores"]["stride"] == 320
    expected = cv2.resize(photo(), LORES_4_3, interpolation=cv2.INTER_AREA)
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 4  # BGR order, not RGB
    (request,) = rig.requests
    assert request.arrays_made == ["lores"]  # main is never copied
    assert rig.unreleased() == []


def test_every_request_is_released_over_many_reads(rig: Rig) -> None:
    src = source()
    src.open()
    stop = threading.Event()
    try:
        frames = [src.read(stop) for _ in range(20)]
    finally:
        src.close()
    assert all(f is not None and f.shape == (224, 298, 3) for f in frames)
    assert len(rig.requests) == 20
    assert rig.unreleased() == []


def test_the_delivered_frame_is_classified_as_an_egyptian_cat(rig: Rig) -> None:
    from edgecam.models.classifier import Classifier

    classifier = Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1)
    assert classifier.input_size == INPUT_SIZE
    src = make_source(CameraConfig(source="picamera2"), classifier.input_size)
    src.open()
    try:
        frame = src.read(threading.Event())
    finally:
        src.close()
    top = classifier.classify(frame).top
    assert (top.index, top.label) == (286, "Egyptian cat")


def test_a_main_smaller_than_the_model_input_bounds_lores(rig: Rig) -> None:
    src = source(width=160, height=120)
    src.open()
    try:
        image = src.read(threading.Event())
    finally:
        src.close()
    assert configured(rig)["lores"]["size"] == (160, 120)  # picamera2 refuses lores > main
    assert image is not None and image.shape == (120, 160, 3)


def test_close_stops_and_closes_and_is_idempotent(rig: Rig) -> None:
    src = source()
    src.open()
    src.read(threading.Event())
    src.close()
    camera = rig.instances[0]
    assert not camera.is_open
    names = rig.names()
    assert names.index("stop") < names.index("close")
    calls = len(rig.calls)
    src.close()
    assert len(rig.calls) == calls
    assert src.read(threading.Event()) is None


def test_close_still_closes_when_stop_raises(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.stop_error = RuntimeError("Failed to stop camera: Input/output error")
    src = source()
    src.open()
    src.close()
    names = rig.names()
    assert "close" in names[names.index("stop"):]
    assert not rig.instances[0].is_open
    assert "Failed to stop camera" in caplog.text


def test_close_never_raises_even_when_the_camera_cannot_be_closed(rig: Rig) -> None:
    rig.stop_error = RuntimeError("Failed to stop camera: Input/output error")
    rig.stop_failures = 99  # the real close() calls stop() again, which fails again
    src = source()
    src.open()
    src.close()  # logged, not raised: the daemon is shutting down or reopening
    assert "close" in rig.names()
    src.close()


def test_picamera2_missing_gives_the_apt_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    src = source()
    with pytest.raises(MissingDependency) as excinfo:
        src.open()
    assert excinfo.value.piece is PICAMERA2 and excinfo.value.exit_code == EX_NO_PICAMERA2
    assert str(excinfo.value) == (
        "camera.source: picamera2 is not installed (on Raspberry Pi OS: sudo apt install python3-picamera2,"
        " and make the virtualenv with --system-site-packages)")


def test_no_camera(rig: Rig) -> None:
    rig.cameras = []
    with pytest.raises(SourceError) as excinfo:
        source().open()
    message = one_line_error(excinfo)
    assert "no camera" in message
    assert rig.instances == []


def test_camera_unplugged_between_listing_and_opening(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([[dict(IMX708)], []])
    picamera2 = sys.modules["picamera2"]
    monkeypatch.setattr(picamera2.Picamera2, "global_camera_info", staticmethod(lambda: next(answers)))
    with pytest.raises(SourceError) as excinfo:
        source().open()
    assert "no camera" in one_line_error(excinfo)


def test_camera_busy(rig: Rig) -> None:
    rig.busy = True
    with pytest.raises(SourceError) as excinfo:
        source().open()
    message = one_line_error(excinfo)
    assert "camera 0 (imx708)" in message
    assert "Device or resource busy" in message  # libcamera's reason, not picamera2's wrapper
    assert "another program" in message


def test_a_configuration_failure_closes_the_camera(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object, config: dict) -> None:
        raise RuntimeError("Configuration failed: {...}")

    monkeypatch.setattr(sys.modules["picamera2"].Picamera2, "configure", refuse)
    with pytest.raises(SourceError) as excinfo:
        source().open()
    assert "cannot start: Configuration failed" in one_line_error(excinfo)
    assert not rig.instances[0].is_open


def test_a_stalled_camera_read_returns_once_stop_is_set(rig: Rig) -> None:
    rig.frames_stalled = True
    src = source(stall_timeout_s=60)
    src.open()
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    try:
        started = time.monotonic()
        assert src.read(stop) is None
        assert time.monotonic() - started < 60  # bounds a hang: unstopped, it would wait 2 x 60 s
        # The next read waits on the same capture job instead of queueing another.
        rig.frames_stalled = False
        image = src.read(threading.Event())
        assert image is not None and image.shape == (224, 298, 3)
        assert rig.names().count("capture_request") == 1
    finally:
        timer.cancel()
        src.close()
    assert rig.unreleased() == []


def test_a_stalled_camera_is_reported_lost_even_without_a_stop(rig: Rig) -> None:
    rig.frames_stalled = True
    src = source(stall_timeout_s=0.5)  # the supervisor would set stop after 0.5 s; the backstop is 1 s
    src.open()
    try:
        started = time.monotonic()
        assert src.read(threading.Event()) is None
        assert 0.9 < time.monotonic() - started < 60  # waited for the backstop; 60 bounds a hang
    finally:
        src.close()


def test_close_cancels_a_pending_capture_before_stopping(rig: Rig) -> None:
    rig.frames_stalled = True
    src = source()
    src.open()
    stop = threading.Event()
    stop.set()
    assert src.read(stop) is None
    src.close()
    names = rig.names()
    assert names.index("cancel_all_and_flush") < names.index("stop") < names.index("close")
    assert not rig.instances[0].is_open
    assert rig.unreleased() == []


def test_libcamera_logging_is_quiet_unless_asked(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBCAMERA_LOG_LEVELS", raising=False)
    src = source()
    src.open()
    src.close()
    assert os.environ["LIBCAMERA_LOG_LEVELS"] == "*:WARN"
    monkeypatch.setenv("LIBCAMERA_LOG_LEVELS", "*:DEBUG")
    src.open()
    src.close()
    assert os.environ["LIBCAMERA_LOG_LEVELS"] == "*:DEBUG"


# -- two cameras (a Raspberry Pi 5 has two ports): camera.source picamera2:N --------------------

IMX219 = {"Model": "imx219", "Location": 2, "Rotation": 0,
          "Id": "/base/axi/pcie@120000/rp1/i2c@80000/imx219@10", "Num": 1}


def test_picamera2_n_opens_camera_n_and_each_camera_gives_its_own_frames(rig: Rig) -> None:
    """Picamera2(camera_num): camera 0 shows the cat, camera 1 the parrot, both open at once."""
    rig.cameras = [dict(IMX708), dict(IMX219)]
    rig.camera_images = {1: [photo("parrot.jpg")]}
    first, second = source(), make_source(CameraConfig(source="picamera2:1"), INPUT_SIZE)
    assert (first.name, second.name) == ("picamera2", "picamera2:1")
    first.open()
    try:
        second.open()
        try:
            frames = [src.read(threading.Event()) for src in (first, second)]
        finally:
            second.close()
    finally:
        first.close()
    assert [args for name, args in rig.calls if name == "__init__"] == [0, 1]
    cat = cv2.resize(photo("cat.bmp"), LORES_4_3, interpolation=cv2.INTER_AREA)
    parrot = cv2.resize(photo("parrot.jpg"), LORES_4_3, interpolation=cv2.INTER_AREA)
    assert frames[0] is not None and frames[1] is not None
    assert np.abs(frames[0].astype(int) - cat.astype(int)).mean() < 4
    assert np.abs(frames[1].astype(int) - parrot.astype(int)).mean() < 4


def test_a_camera_already_open_is_refused_as_busy(rig: Rig) -> None:
    first = source()
    first.open()
    try:
        with pytest.raises(SourceError) as excinfo:
            source().open()
    finally:
        first.close()
    message = one_line_error(excinfo)
    assert "camera 0 (imx708)" in message and "Device or resource busy" in message


def test_a_camera_number_beyond_the_cameras_found(rig: Rig) -> None:
    with pytest.raises(SourceError) as excinfo:
        make_source(CameraConfig(source="picamera2:1"), INPUT_SIZE).open()
    assert "picamera2:1: 1 camera(s) detected, numbered from 0" in one_line_error(excinfo)
