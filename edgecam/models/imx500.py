"""The AI Camera (Sony IMX500): the network runs on the sensor, edgecam reads its results.

An `.rpk` network file is uploaded to the sensor by `IMX500(network_file)`,
which picamera2 requires before the camera is opened (the classifier is
made before the source: the daemon loads its model first). The camera is
then opened by the Pi camera source (sources.picamera) with the IMX500's
camera number (its position in the camera list, picam.camera_position),
and each frame's result is read from its request's metadata
(`get_outputs(metadata, add_batch=True)`, `get_kpi_info(metadata)` for the
sensor's DNN time, which is what `inference_ms` reports) and goes through
the same filters, zones, outputs and stats as a CPU result. Nothing is
computed on the CPU but the softmax, where the network's intrinsics ask
for it.

Labels: model.labels when it is set to another file than the default, else
the network's own (`network_intrinsics.labels`), else the default file. A
zone is the sensor's region of interest (`set_inference_roi_abs`, in full
sensor pixels): the sensor runs one network on one region, so the config
refuses more than one zone with this back-end (config.backends).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.config import ModelConfig
from edgecam.core.frames import WHOLE, Crop
from edgecam.core.labels import align_labels, read_labels
from edgecam.core.results import Classification
from edgecam.errors import EdgecamError, ModelError, SourceError
from edgecam.models.base import Infers, top_labels
from edgecam.models.filesig import signatures
from edgecam.picam import camera_position, imx500_class, open_network, reason

log = logging.getLogger(__name__)

_DEFAULT_LABELS = ModelConfig().labels
#: picamera2/devices/imx500/imx500.py's FW_NETWORK_STAGE: the network's part of the upload
_FW_NETWORK_STAGE = 2


class Imx500Classifier(Infers):
    """An .rpk classification network on the IMX500 sensor; `result(metadata)` per frame."""

    runtime = "IMX500 (on the sensor)"
    threads = 0
    on_sensor = True  # models.base.runs_on_sensor: the pipeline hands it to the Pi camera source

    def __init__(self, config: ModelConfig) -> None:
        self.model_path = config.path
        self.top_k = config.top_k
        self.device: Any = open_network(config.path, imx500_class, "imx500-all",
                                        "/usr/share/imx500-models", partial(_refused, config.path))
        intrinsics = self.device.network_intrinsics
        task = intrinsics.task if intrinsics is not None else None
        if task not in (None, "classification"):
            raise ModelError(f"{config.path}: a {task} network, not an image classifier (use a "
                             "classification network such as imx500_network_mobilenet_v2.rpk)")
        self.softmax = bool(intrinsics is not None and intrinsics.softmax)
        own = intrinsics.labels if intrinsics is not None else None
        from_file = config.labels != _DEFAULT_LABELS or not own
        self._labels = read_labels(config.labels) if from_file else [str(name) for name in own or ()]
        self._labels_from = config.labels if from_file else f"{config.path} (its labels)"
        self._fitted: list[str] | None = None  # the labels aligned to the output, at the first result
        self.loaded_files = signatures(config.path, *([config.labels] if from_file else []))
        width, height = self.device.get_input_size()
        self.input_size = (int(width), int(height))
        #: the AI Camera's position among the cameras (camera.source picamera2:N), not its Num
        self.camera_num = camera_position(int(self.device.camera_num))
        self._started = False  # the sensor gave a result: its network runs
        self._without_result = 0  # frames before that
        log.info("model %s: on the AI Camera's IMX500 (camera %d), %dx%d input, %d labels from %s%s",
                 Path(config.path).name, self.camera_num, *self.input_size, len(self._labels),
                 self._labels_from, ", softmax on the CPU" if self.softmax else "")

    @property
    def labels(self) -> Sequence[str]:
        return self._fitted if self._fitted is not None else self._labels

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> Callable[[], Classification]:
        """Refused: the network runs on the sensor, on the camera's own frames."""
        raise ModelError(f"{Path(self.model_path).name} runs on the AI Camera's sensor and classifies "
                         "only its frames (camera.source: picamera2): classifying files needs a "
                         ".tflite or .onnx model (--model)")

    def result(self, metadata: dict[str, Any]) -> Classification | None:
        """The sensor's result for one frame's metadata; None when it carries no output tensor."""
        outputs = self.device.get_outputs(metadata, add_batch=True)
        if outputs is None:
            self._without_result += not self._started
            return None
        self._started = True
        scores = np.asarray(outputs[0], np.float32).reshape(-1)
        if self.softmax:
            scores = np.exp(scores - scores.max())
            scores /= scores.sum()
        if self._fitted is None or len(self._fitted) != scores.size:
            self._fitted = align_labels(self._labels, scores.size, self._labels_from)
        kpi = self.device.get_kpi_info(metadata)
        return Classification(top_labels(scores, self.top_k, self._fitted),
                              float(kpi[0]) if kpi is not None else 0.0)

    def upload_status(self) -> str | None:
        """Where the network's upload to the sensor stands, until the sensor's first result.

        The first upload of a network can take minutes (picamera2's examples draw a progress
        bar for it: `show_network_fw_progress_bar`). Its progress is read as picamera2 reads it
        (`get_fw_upload_progress(FW_NETWORK_STAGE)`, from /sys/kernel/debug/imx500-fw:*/
        fw_progress), which needs root or its `sudo -n` scripts; without them (fw_progress is
        FwProgressType.NONE, 0) the frames that keep coming without a result stand for it.
        """
        if self._started:
            return None
        if self.device.fw_progress:
            try:
                done, total = self.device.get_fw_upload_progress(_FW_NETWORK_STAGE)
            except Exception:  # a progress file gone or garbled: the frames still tell
                done = total = 0
            if total > 0:
                return (f"uploading the network to the AI Camera: {100 * min(done, total) // total}% "
                        f"of {total / 1e6:.1f} MB")
        return f"waiting for the AI Camera's network: {self._without_result} frame(s) without a result"

    def aim(self, crop: Crop, sensor_size: tuple[int, int]) -> None:
        """Points the network at `crop` (fractions of the picture) of a sensor this many pixels."""
        if crop == WHOLE:
            return  # IMX500() already set the whole sensor
        width, height = sensor_size
        x, y, w, h = crop
        roi = (round(x * width), round(y * height), max(1, round(w * width)),
               max(1, round(h * height)))
        self.device.set_inference_roi_abs(roi)
        log.info("IMX500: inference region %s of the %dx%d sensor", roi, width, height)


def _refused(path: str, exc: Exception) -> EdgecamError:
    problem = reason(exc)
    if "dev-node not found" in problem:  # picamera2's words when no IMX500 is connected
        return SourceError(f"model.path: {Path(path).name} needs the AI Camera: no IMX500 is "
                           "connected (check its ribbon cable, and that `rpicam-hello "
                           "--list-cameras` lists an imx500)")
    return ModelError(f"{path}: not a usable IMX500 network: {problem}")
