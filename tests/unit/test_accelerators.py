"""The AI Camera (IMX500) and AI HAT+ (Hailo) back-ends, against fakes of picamera2's devices.

Neither device is here and picamera2 cannot be installed, so
tests/fake_picamera2.py (the camera) and tests/fake_picamera2_devices.py
(`picamera2.devices.IMX500` and `.Hailo`) stand in through sys.modules. They
follow raspberrypi/picamera2 0.3.36: picamera2/devices/imx500/imx500.py
(`IMX500(network_file)` before `Picamera2(imx500.camera_num)`,
`get_outputs(metadata, add_batch=True)`, `get_kpi_info`, `network_intrinsics`
task/labels/softmax, `set_inference_roi_abs`, metadata without
`CnnOutputTensor` for frames the sensor skipped) and
picamera2/devices/hailo/hailo.py (`Hailo(hef)`, a context manager,
`get_input_shape`, `describe`, `run`). The fakes return known tensors; the
real pipeline (capture, inference, filter, socket output, stats) carries the
results.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from conftest import run_edgecam
from fake_picamera2 import IMX708, Rig, make_modules
from fake_picamera2_devices import (
    IMX500_CAMERA,
    SENSOR_SIZE,
    HailoBoard,
    Sensor,
    Upload,
    make_devices,
    metadata,
    write_rpk,
)
from fakes import FakeNotifier
from harness import IMAGES, LABELS, Client, wait_for
from notify_socket import NotifySocket

from edgecam.config import CameraConfig, Config, ModelConfig, parse_config
from edgecam.core.frames import Dropped
from edgecam.core.sensor import OnSensor
from edgecam.core.stats import Stats
from edgecam.daemon.notify import Notifier, StartTimeout, Watchdog
from edgecam.daemon.service import Daemon
from edgecam.dependencies import HAILORT, PICAMERA2, MissingDependency
from edgecam.doctor import run_checks
from edgecam.errors import (
    EX_DATAERR,
    EX_NO_HAILORT,
    EX_NO_PICAMERA2,
    EX_UNAVAILABLE,
    ConfigError,
    EdgecamError,
    SourceError,
)
from edgecam.models.base import start_progress
from edgecam.models.factory import make_classifier
from edgecam.models.fewshot.learn import load_embedder
from edgecam.models.hailo import HailoClassifier
from edgecam.models.imx500 import Imx500Classifier
from edgecam.models.preprocess import fit
from edgecam.outputs.base import OutputContext
from edgecam.pipeline.pipeline import Pipeline
from edgecam.sources import make_source

WAIT_S = 30.0
CAT, TABBY, MACAW = 286, 282, 89


def scores(**by_index: float) -> np.ndarray:
    """1001 scores: the given ones, the rest sharing what is left (a softmax's output)."""
    values = np.full(1001, 0.0, np.float32)
    for index, score in by_index.items():
        values[int(index.lstrip("i"))] = score
    rest = 1 - values.sum()
    values[values == 0] = rest / max(1, int((values == 0).sum()))
    return values


@dataclasses.dataclass
class Devices:
    rig: Rig
    sensor: Sensor
    board: HailoBoard


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch) -> Devices:
    """The fake picamera2 with an AI Camera and an AI HAT+, installed in sys.modules."""
    photo = cv2.imread(str(IMAGES / "cat.bmp"))
    rig = Rig(images=[photo], cameras=[dict(IMX500_CAMERA)])
    sensor = Sensor(outputs=[scores(i286=0.8, i282=0.1), None, scores(i89=0.9)])
    board = HailoBoard(scores=scores(i89=0.9))
    rig.metadata_for = lambda number: metadata(rig, sensor, number)
    picamera2, libcamera = make_modules(rig)
    picamera2.devices = make_devices(rig, sensor, board)
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    monkeypatch.setitem(sys.modules, "picamera2.devices", picamera2.devices)
    return Devices(rig, sensor, board)


def config(tmp_path: Path, model: dict[str, Any], source: str = "picamera2", **more: Any) -> Config:
    """A config as a user writes it: the model, every result on a socket under tmp_path (the
    file is written too, for the commands that read it)."""
    text = {"camera": {"source": source, "fps": 30},
            "model": {"labels": str(LABELS), "threads": 1, **model},
            "outputs": {"emit": "every_frame", "min_score": 0, "journal": {"enabled": False},
                        "socket": {"path": str(tmp_path / "results.sock")}}, **more}
    (tmp_path / "edgecam.yaml").write_text(yaml.safe_dump(text))
    return parse_config(yaml.safe_dump(text), str(tmp_path / "edgecam.yaml"), tmp_path)


@contextmanager
def running(cfg: Config) -> Iterator[tuple[Pipeline, Client]]:
    """The daemon's pipeline in process (model first, then outputs, inference, capture), stopped
    in reverse at the end whatever happened."""
    stats = Stats()
    pipeline = Pipeline(cfg, make_classifier(cfg.model), stats, OutputContext(stats, lambda: None),
                        Watchdog(FakeNotifier()).kick)  # type: ignore[arg-type]
    client = None
    try:
        pipeline.start_outputs()
        pipeline.start(None)
        client = Client(cfg.outputs.socket.path, WAIT_S)
        yield pipeline, client
    finally:
        if client is not None:
            client.close()
        pipeline.close()


# -- the AI Camera --------------------------------------------------------------------------------

def test_imx500_results_go_through_the_pipeline_with_the_sensors_time(devices: Devices,
                                                                        tmp_path: Path) -> None:
    rpk = write_rpk(tmp_path / "imx500_network_mobilenet_v2.rpk")
    cfg = config(tmp_path, {"path": str(rpk)})
    with running(cfg) as (pipeline, client):
        found = client.messages("classification", 4)
        wait_for(lambda: pipeline.stats.get("dropped_sensor_skipped") >= 2, WAIT_S, "skipped frames")
        stats = pipeline.stats
        assert pipeline.error is None
    tops = [(m["labels"][0]["index"], m["labels"][0]["label"], m["labels"][0]["score"]) for m in found]
    assert set(tops) == {(CAT, "Egyptian cat", 0.8), (MACAW, "macaw", 0.9)}
    cats = [m["labels"][:2] for m in found if m["labels"][0]["index"] == CAT]
    assert cats and all(second == {"index": TABBY, "label": "tabby, tabby cat", "score": 0.1}
                        for _, second in cats)
    names = devices.rig.names()
    assert names.index("IMX500.__init__") < names.index("__init__")  # the network before Picamera2
    assert devices.rig.calls[names.index("__init__")] == ("__init__", IMX500_CAMERA["Num"])
    assert ("get_outputs", True) in devices.rig.calls
    # Every third frame carries no tensor: counted as skipped by the sensor, never classified.
    assert stats.get("dropped_sensor_skipped") >= 2
    assert stats.get("captured") >= stats.get("classified") + stats.get("dropped_sensor_skipped")
    figures = stats.figures()
    assert figures["frames"]["dropped_by_reason"]["sensor_skipped"] >= 2
    assert figures["inference_ms"]["p50"] == pytest.approx(4.25)  # get_kpi_info's DNN time
    # Clean shutdown: the camera stopped and closed, every request given back.
    camera = devices.rig.instances[-1]
    assert not camera.is_open and devices.rig.unreleased() == []


def test_imx500_softmax_and_labels_come_from_the_networks_intrinsics(devices: Devices,
                                                                     tmp_path: Path) -> None:
    devices.sensor.intrinsics = {"task": "classification", "softmax": True,
                                 "labels": ["cat", "dog", "bird"]}
    logits = np.array([2.0, 0.0, 1.0], np.float32)
    rpk = write_rpk(tmp_path / "net.rpk")
    classifier = make_classifier(dataclasses.replace(ModelConfig(), path=str(rpk), top_k=3))
    assert isinstance(classifier, Imx500Classifier) and list(classifier.labels) == ["cat", "dog", "bird"]
    result = classifier.result({"CnnOutputTensor": list(logits), "CnnOutputTensorInfo": [(3,)],
                                "CnnKpiInfo": [3000, 200]})
    assert result is not None
    expected = np.exp(logits) / np.exp(logits).sum()
    assert [(lab.label, round(lab.score, 4)) for lab in result.labels] == [
        ("cat", round(float(expected[0]), 4)), ("bird", round(float(expected[2]), 4)),
        ("dog", round(float(expected[1]), 4))]
    assert result.inference_ms == 3.0
    assert classifier.result({"SensorTimestamp": 1}) is None  # no tensor: nothing to report
    # model.labels set to another file than the default wins over the network's own labels.
    labels = tmp_path / "mine.txt"
    labels.write_text("one\ntwo\nthree\n")
    mine = make_classifier(dataclasses.replace(ModelConfig(), path=str(rpk), labels=str(labels)))
    assert list(mine.labels) == ["one", "two", "three"]


def test_one_zone_is_the_sensors_region_and_two_are_refused(devices: Devices, tmp_path: Path) -> None:
    rpk = write_rpk(tmp_path / "net.rpk")
    zone = {"name": "door", "crop": [0.5, 0.25, 0.5, 0.5]}
    cfg = config(tmp_path, {"path": str(rpk)}, zones=[zone])
    with running(cfg) as (_pipeline, client):
        found = client.messages("classification", 2)
    assert {m["zone"] for m in found} == {"door"}
    width, height = SENSOR_SIZE
    assert devices.sensor.rois == [(0, 0, width, height), (width // 2, height // 4, width // 2, height // 2)]
    with pytest.raises(ConfigError) as refused:
        config(tmp_path, {"path": str(rpk)}, zones=[zone, {**zone, "name": "gate"}])
    assert "zones: the AI Camera's sensor classifies one region of the picture, not 2" in str(refused.value)
    with pytest.raises(ConfigError) as own_model:
        config(tmp_path, {"path": str(rpk)}, zones=[{**zone, "model": {"path": str(LABELS)}}])
    assert "a zone's own model.path cannot be used there" in str(own_model.value)
    with pytest.raises(ConfigError) as not_picamera2:
        config(tmp_path, {"path": str(rpk)}, source=str(IMAGES))
    assert "camera.source: the AI Camera's network (net.rpk) runs on its sensor" in str(not_picamera2.value)


def test_an_ai_camera_on_the_second_port_must_be_named_by_its_number(devices: Devices,
                                                                    tmp_path: Path) -> None:
    """A Pi 5 with a Camera Module 3 on port 0 and the AI Camera on port 1: the instance for the
    AI Camera claims the camera its camera.source names (daemon.claims), so `picamera2` (camera
    0) with an .rpk that the IMX500 runs on camera 1 is refused in one line saying what to
    write, and `picamera2:1` opens camera 1."""
    devices.rig.cameras = [dict(IMX708), dict(IMX500_CAMERA, Num=1)]
    classifier = make_classifier(dataclasses.replace(ModelConfig(), path=str(write_rpk(tmp_path / "n.rpk")),
                                                     labels=str(LABELS)))
    assert isinstance(classifier, Imx500Classifier) and classifier.camera_num == 1
    with pytest.raises(SourceError) as named:
        make_source(CameraConfig(source="picamera2"), classifier.input_size, sensor=OnSensor(classifier))
    assert named.value.exit_code == EX_UNAVAILABLE
    assert str(named.value) == ("camera.source: picamera2 is camera 0, but the AI Camera (IMX500) is "
                                "camera 1: write camera.source: picamera2:1")
    # As a user writes it: the config takes picamera2:1 with an .rpk, and results come from camera 1.
    rpk = write_rpk(tmp_path / "imx500_network_mobilenet_v2.rpk")
    with running(config(tmp_path, {"path": str(rpk)}, source="picamera2:1")) as (_pipeline, client):
        assert client.messages("classification", 2)
    assert ("__init__", 1) in devices.rig.calls


def test_camera_numbers_are_positions_in_the_sorted_camera_list(devices: Devices,
                                                                tmp_path: Path) -> None:
    """libcamera enumerates the AI Camera (port 1, i2c@80000) first, so its Num is 0, but
    `global_camera_info()` is sorted by Id (i2c@88000 first) and `Picamera2(n)` opens position n:
    the AI Camera is picamera2:1. Numbering it by Num would open the Camera Module 3, whose frames
    carry no tensor (every one sensor_skipped, READY never sent)."""
    devices.rig.cameras = [dict(IMX500_CAMERA, Id="/base/axi/pcie@120000/rp1/i2c@80000/imx500@1a"),
                           dict(IMX708)]  # libcamera's order
    listed = sys.modules["picamera2"].Picamera2.global_camera_info()
    assert [(c["Model"], c["Num"]) for c in listed] == [("imx708", 1), ("imx500", 0)]
    rpk = write_rpk(tmp_path / "imx500_network_mobilenet_v2.rpk")
    classifier = make_classifier(dataclasses.replace(ModelConfig(), path=str(rpk), labels=str(LABELS)))
    assert isinstance(classifier, Imx500Classifier) and classifier.camera_num == 1
    with pytest.raises(SourceError) as named:
        make_source(CameraConfig(source="picamera2"), classifier.input_size, sensor=OnSensor(classifier))
    assert str(named.value).endswith("(IMX500) is camera 1: write camera.source: picamera2:1")
    with running(config(tmp_path, {"path": str(rpk)}, source="picamera2:1")) as (_pipeline, client):
        found = client.messages("classification", 2)
    assert {m["labels"][0]["label"] for m in found} <= {"Egyptian cat", "macaw"}
    assert [camera.info["Model"] for camera in devices.rig.instances] == ["imx500"]


def test_imx500_errors_are_one_line_with_their_exit_code(devices: Devices, tmp_path: Path) -> None:
    rpk = write_rpk(tmp_path / "net.rpk")
    model = dataclasses.replace(ModelConfig(), path=str(rpk), labels=str(LABELS))
    devices.sensor.present = False
    with pytest.raises(EdgecamError) as missing:
        make_classifier(model)
    assert missing.value.exit_code == EX_UNAVAILABLE
    assert "needs the AI Camera: no IMX500 is connected" in str(missing.value)
    devices.sensor.present = True
    bad = tmp_path / "bad.rpk"
    bad.write_bytes(b"not a network")
    with pytest.raises(EdgecamError) as refused:
        make_classifier(dataclasses.replace(model, path=str(bad)))
    assert refused.value.exit_code == EX_DATAERR and "not a usable IMX500 network" in str(refused.value)
    devices.sensor.intrinsics = {"task": "object detection"}
    with pytest.raises(EdgecamError) as detector:
        make_classifier(model)
    assert detector.value.exit_code == EX_DATAERR and "a object detection network" in str(detector.value)
    devices.sensor.intrinsics = None  # an .rpk without intrinsics: a classifier, model.labels' labels
    classifier = make_classifier(model)
    with pytest.raises(EdgecamError, match="runs on the AI Camera's sensor"):
        classifier.classify(np.zeros((8, 8, 3), np.uint8))  # no CPU inference, ever
    with pytest.raises(EdgecamError) as learning:
        load_embedder(model)
    assert "cannot learn new classes" in str(learning.value) and ".tflite or .onnx" in str(learning.value)


def test_without_picamera2_an_rpk_or_a_hef_is_its_one_line(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 raises ImportError
    for path in (write_rpk(tmp_path / "net.rpk"), tmp_path / "net.hef"):
        path.write_bytes(b"HEF\0" if path.suffix == ".hef" else path.read_bytes())
        with pytest.raises(MissingDependency) as missing:
            make_classifier(dataclasses.replace(ModelConfig(), path=str(path), labels=str(LABELS)))
        assert missing.value.exit_code == EX_NO_PICAMERA2 and PICAMERA2.message in str(missing.value)


# -- the network's first upload to the sensor ------------------------------------------------------

def test_the_start_is_extended_while_the_network_uploads(devices: Devices, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         notify_socket: NotifySocket) -> None:
    """READY waits for the sensor's first result, after the network's upload, which can outlast
    TimeoutStartSec: each step the upload makes sends EXTEND_TIMEOUT_USEC with its progress; an
    upload that stops moving gets no more time."""
    upload = devices.sensor.upload = Upload(total=4_000_000)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))  # the instance's claims
    config(tmp_path, {"path": str(write_rpk(tmp_path / "net.rpk"))})
    notify = notify_socket
    failures: list[BaseException] = []

    def extended(percent: int) -> bool:
        fields = notify.drain()
        status = f"STATUS=uploading the network to the AI Camera: {percent}% of 4.0 MB"
        return status in fields and fields[fields.index(status) - 1] == "EXTEND_TIMEOUT_USEC=30000000"

    def upload_then_stop() -> None:
        try:
            wait_for(lambda: extended(0), WAIT_S, "EXTEND_TIMEOUT_USEC at 0%")
            upload.advance(1_000_000)
            wait_for(lambda: extended(25), WAIT_S, "EXTEND_TIMEOUT_USEC at 25%")
            stalled = notify.drain().count("EXTEND_TIMEOUT_USEC=30000000")
            time.sleep(2.5)  # more than two progress readings, and the upload has not moved
            assert notify.drain().count("EXTEND_TIMEOUT_USEC=30000000") == stalled
            upload.advance(3_000_000)
            wait_for(lambda: "READY=1" in notify.drain(), WAIT_S, "READY=1 once results come")
        except BaseException as exc:
            failures.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a daemon that failed: pytest lives on
    driver = threading.Thread(target=upload_then_stop, name="test-upload")
    try:
        driver.start()
        code = Daemon(str(tmp_path / "edgecam.yaml"), notifier=Notifier({"NOTIFY_SOCKET": str(notify.path)}),
                      journal_sender=lambda: None).run()
        driver.join(3 * WAIT_S)
    finally:
        signal.signal(signal.SIGTERM, previous)
        notify.sock.close()
    if failures:
        raise failures[0]
    fields = notify.received
    assert code == 0 and fields.index("READY=1") > fields.index("EXTEND_TIMEOUT_USEC=30000000")


def test_without_a_readable_progress_the_frames_without_a_result_stand_for_it(
        devices: Devices, tmp_path: Path) -> None:
    """picamera2 reads the upload's progress from debugfs (root) or `sudo -n` scripts, which the
    unit's user has neither of: then each frame the sensor has no result for is progress."""
    devices.sensor.upload = Upload(total=4_000_000)
    devices.sensor.progress_readable = False
    classifier = make_classifier(dataclasses.replace(ModelConfig(), path=str(write_rpk(tmp_path / "n.rpk")),
                                                     labels=str(LABELS)))
    assert isinstance(classifier, Imx500Classifier)
    notifier = FakeNotifier()
    clock = iter(float(second) for second in range(1000))
    extend = StartTimeout(notifier, start_progress(classifier), lambda: next(clock))  # type: ignore[arg-type]  # a FakeNotifier
    for number in range(3):
        assert classifier.result(metadata(devices.rig, devices.sensor, number)) is None
        extend.poll()
        extend.poll()  # nothing new: no more time
    sent = [f for f in notifier.sent if f.startswith("STATUS=")]
    assert sent == [f"STATUS=waiting for the AI Camera's network: {n} frame(s) without a result"
                    for n in (1, 2, 3)]
    assert notifier.count("EXTEND_TIMEOUT_USEC=30000000") == 3
    devices.sensor.upload.advance(4_000_000)
    assert classifier.result(metadata(devices.rig, devices.sensor, 0)) is not None
    assert classifier.upload_status() is None  # running: nothing to extend for


# -- edgecam doctor beside the running daemon ------------------------------------------------------

def another_process(devices: Devices, monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on picamera2 is as another process imports it (the doctor's): its own Hailo
    VDevice, the same chip and the same sensor."""
    other = make_devices(devices.rig, devices.sensor, devices.board)
    monkeypatch.setitem(sys.modules, "picamera2.devices", other)
    monkeypatch.setattr(sys.modules["picamera2"], "devices", other)


@contextmanager
def serving_stats(pipeline: Pipeline) -> Iterator[None]:
    """The daemon's main loop's part: the stats handed to the outputs (the socket's every 5 s)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.2):
            pipeline.stats.tick()
            pipeline.dispatcher.stats(pipeline.stats.figures, time.monotonic())

    thread = threading.Thread(target=loop, name="test-stats")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(WAIT_S)


@pytest.mark.parametrize("network", ["hef", "rpk"])
def test_doctor_leaves_the_running_daemons_accelerator_alone(devices: Devices, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             network: str) -> None:
    """A Hailo chip is one process's (a second VDevice: HAILO_OUT_OF_PHYSICAL_DEVICES), and
    IMX500() sends the network to the streaming sensor again and resets its region: while the
    daemon runs, doctor reports the daemon's own figures, as it does for the camera."""
    if network == "hef":
        cfg = config(tmp_path, {"path": str(hef(tmp_path))}, source=str(IMAGES / "parrot.jpg"))
    else:
        cfg = config(tmp_path, {"path": str(write_rpk(tmp_path / "net.rpk"))},
                     zones=[{"name": "door", "crop": [0.5, 0.25, 0.5, 0.5]}])
    with running(cfg) as (pipeline, client), serving_stats(pipeline):
        client.messages("classification", 2)
        held = (devices.board.owner, list(devices.sensor.uploads), list(devices.sensor.rois))
        another_process(devices, monkeypatch)
        checks = {check.check: check for check in run_checks(str(tmp_path / "edgecam.yaml"))}
        assert (devices.board.owner, devices.sensor.uploads, devices.sensor.rois) == held
    model = checks["model"]
    assert model.ok, model
    assert "the daemon is running and holds it: its stats say " in model.detail, model.detail
    assert "classified" in model.detail and checks["camera"].ok


# -- the AI HAT+ ------------------------------------------------------------------------------------

def hef(tmp_path: Path) -> Path:
    path = tmp_path / "mobilenet_v2_1.0.hef"
    path.write_bytes(b"HEF\0" + b"\0" * 60)
    return path


def test_hailo_classifies_frames_from_any_source_and_closes_the_device(devices: Devices,
                                                                       tmp_path: Path) -> None:
    cfg = config(tmp_path, {"path": str(hef(tmp_path))}, source=str(IMAGES / "parrot.jpg"))
    with running(cfg) as (pipeline, client):
        found = client.messages("classification", 3)
        assert devices.board.open == 1
    assert {(m["labels"][0]["label"], m["labels"][0]["score"]) for m in found} == {("macaw", 0.9)}
    assert pipeline.stats.get("classified") >= 3
    # run() got the frame as the network takes it: a batch of one 224x224 RGB uint8 picture.
    fed = devices.board.inputs[-1]
    assert fed.shape == (1, 224, 224, 3) and fed.dtype == np.uint8
    parrot = cv2.imread(str(IMAGES / "parrot.jpg"))
    expected = cv2.cvtColor(fit(parrot, 224, 224, "crop"), cv2.COLOR_BGR2RGB)
    assert np.abs(fed[0].astype(int) - expected).mean() < 2  # the same fit, maybe done in two steps
    assert devices.board.open == 0 and ("Hailo.close", None) in devices.rig.calls


def test_hailo_logits_become_scores(devices: Devices, tmp_path: Path) -> None:
    devices.board.scores = np.linspace(-5, 5, 1001).astype(np.float32)  # a network without softmax
    classifier = make_classifier(dataclasses.replace(ModelConfig(), path=str(hef(tmp_path)),
                                                     labels=str(LABELS), top_k=2))
    assert isinstance(classifier, HailoClassifier)
    result = classifier.classify(cv2.imread(str(IMAGES / "cat.bmp")))
    assert result.top.index == 1000 and 0 < result.top.score < 1
    assert sum(lab.score for lab in result.labels) < 1
    classifier.close()
    assert devices.board.open == 0


def test_hailo_errors_are_one_line_with_their_exit_code(devices: Devices, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """pyhailort raises its descriptive exception from a HailoRTStatusException whose message is
    only the status number: the user reads the descriptive one, and the class says whose fault
    it is (a bad HEF: the model, exit 65; no free chip: the device, exit 69)."""
    model = dataclasses.replace(ModelConfig(), path=str(hef(tmp_path)), labels=str(LABELS))
    devices.board.devices = 0
    with pytest.raises(EdgecamError) as missing:
        make_classifier(model)
    assert missing.value.exit_code == EX_UNAVAILABLE
    assert "needs a Hailo device" in str(missing.value) and "hailortcli" in str(missing.value)
    assert "HAILO_OUT_OF_PHYSICAL_DEVICES" in str(missing.value)
    devices.board.devices = 1
    bad = tmp_path / "bad.hef"
    bad.write_bytes(b"nope")
    with pytest.raises(EdgecamError) as refused:
        make_classifier(dataclasses.replace(model, path=str(bad)))
    assert refused.value.exit_code == EX_DATAERR and "not a usable Hailo network" in str(refused.value)
    assert str(refused.value) == (f"{bad}: not a usable Hailo network: Invalid HEF. See hailort.log "
                                  "for more information (status 26)")
    devices.board.input_shape = (224, 224, 1)
    with pytest.raises(EdgecamError, match="input shape"):
        make_classifier(model)
    assert devices.board.open == 0  # a network refused after it loaded is closed again
    with pytest.raises(EdgecamError) as learning:
        load_embedder(model)
    assert "cannot learn new classes" in str(learning.value)
    monkeypatch.delattr(sys.modules["picamera2.devices"], "Hailo")  # picamera2 without hailo_platform
    with pytest.raises(MissingDependency) as runtime:
        make_classifier(model)
    assert runtime.value.exit_code == EX_NO_HAILORT and HAILORT.message in str(runtime.value)


def test_a_sensor_output_that_does_not_fit_the_labels_drops_the_frame(devices: Devices,
                                                                      tmp_path: Path) -> None:
    devices.sensor.outputs = [np.full(7, 1 / 7, np.float32)]  # 7 outputs, 1001 labels
    classifier = make_classifier(dataclasses.replace(ModelConfig(), path=str(write_rpk(tmp_path / "n.rpk")),
                                                     labels=str(LABELS)))
    assert isinstance(classifier, Imx500Classifier)
    source = make_source(CameraConfig(source="picamera2"), classifier.input_size,
                         sensor=OnSensor(classifier))
    source.open()
    try:
        read = [source.read(threading.Event()) for _ in range(3)]
    finally:
        source.close()
    assert read == [Dropped("bad_frame")] * 3  # the camera keeps going; every drop is counted
    assert devices.rig.unreleased() == []


def test_classify_refuses_an_ai_camera_network_in_one_line(tmp_path: Path) -> None:
    """Before anything touches picamera2: the sensor classifies only its own frames."""
    rpk = write_rpk(tmp_path / "imx500_network_mobilenet_v2.rpk")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run_edgecam("classify", IMAGES / "cat.bmp", "-c", empty, "--model", rpk)
    assert result.returncode == EX_DATAERR and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "edgecam: edgecam classify: imx500_network_mobilenet_v2.rpk runs on the AI Camera's sensor, "
        "on its own frames only: classify files with a .tflite, .onnx or .hef model (--model)"]


def test_every_backend_in_the_table_has_an_opener_and_runs_somewhere_known() -> None:
    """config.backends.TABLE is the one list of back-ends: models.factory opens each of its rows,
    and a model on the sensor is told apart by its class's `on_sensor`, not by its class."""
    from edgecam.config.backends import BY_NAME, SUFFIXES, TABLE
    from edgecam.dependencies import PIECES
    from edgecam.models.base import runs_on_sensor
    from edgecam.models.factory import OPENERS

    assert set(OPENERS) == set(BY_NAME)
    assert all(backend.piece in PIECES for backend in TABLE)  # what its module raises when missing
    assert len(SUFFIXES) == len(TABLE)
    assert runs_on_sensor(object.__new__(Imx500Classifier))
    assert not runs_on_sensor(object.__new__(HailoClassifier))
