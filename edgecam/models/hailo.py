"""The AI Kit / AI HAT+ (Hailo-8, Hailo-8L): a .hef classifier through picamera2.devices.Hailo.

The network runs on the Hailo chip; the CPU only fits each frame to the
network's input (the same preprocessing as a .tflite's: uint8 pixels as
they are, a float input (pixel-128)/128) and ranks the scores, so frames can
come from any source. `inference_ms` is the time `Hailo.run()` takes, the
round trip to the chip. Scores that are not probabilities already (a
network without its softmax layer) go through a softmax, so min_score and
thresholds mean the same as with the CPU models.

The device is opened once (`Hailo(hef)`, picamera2's shared VDevice) and
closed with the daemon (`close()`), as its context manager would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.config import ModelConfig
from edgecam.core.labels import align_labels, read_labels
from edgecam.core.results import Classification
from edgecam.errors import EdgecamError, ModelError, SourceError
from edgecam.models.base import Infers, top_labels
from edgecam.models.filesig import signatures
from edgecam.models.preprocess import Preprocessor
from edgecam.picam import hailo_class, open_network, reason

log = logging.getLogger(__name__)

#: the input quantization the (pixel-128)/128 rule means for a uint8 input: the identity
_UINT8_RULE = (1 / 128, 128)


#: hailo_platform's exceptions (pyhailort.py) that blame the network file, not the device
_NETWORK_ERRORS = ("HailoRTInvalidHEFException", "HailoRTHEFNotCompatibleWithDevice")


def _refused(path: str, exc: Exception) -> EdgecamError:
    """A bad HEF is the model's fault (65); anything else, no usable device (69, not restarted).
    By class: the message of a HailoRTStatusException is only a number (picam.reason)."""
    problem = reason(exc)
    if type(exc).__name__ in _NETWORK_ERRORS:
        return ModelError(f"{path}: not a usable Hailo network: {problem}")
    return SourceError(f"model.path: {Path(path).name} needs a Hailo device: {problem}; check the "
                       "AI Kit / AI HAT+ is seated and that `hailortcli fw-control identify` finds it")


class HailoClassifier(Infers):
    """A .hef image classifier on a Hailo device, opened once and reused for every frame."""

    threads = 0

    def __init__(self, config: ModelConfig) -> None:
        self.model_path = config.path
        self.top_k = config.top_k
        self._device: Any = open_network(config.path, hailo_class, "hailo-all",
                                         "/usr/share/hailo-models", partial(_refused, config.path))
        try:
            self._check(config)
        except BaseException:
            self.close()
            raise
        self.runtime = f"Hailo ({Path(config.path).name})"
        log.info("model %s: on the Hailo, %dx%d %s input, %d labels", Path(config.path).name,
                 *self.input_size, self._input.dtype.name, len(self.labels))

    def _check(self, config: ModelConfig) -> None:
        inputs, outputs = self._device.describe()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{config.path}: not an image classifier: {len(inputs)} inputs and "
                             f"{len(outputs)} outputs (expected 1 and 1)")
        shape = tuple(int(d) for d in self._device.get_input_shape())
        if len(shape) != 3 or shape[2] != 3:
            raise ModelError(f"{config.path}: not an image classifier: input shape {list(shape)} "
                             "(expected [height, width, 3])")
        height, width, _ = shape
        self.input_size = (width, height)
        dtype = np.float32 if "FLOAT" in str(inputs[0][2]).upper() else np.uint8
        scale, zero = (0.0, 0) if dtype == np.float32 else _UINT8_RULE
        self._preprocessor = Preprocessor(height, width, np.dtype(dtype), scale, zero, config.resize)
        self._input = np.zeros((1, height, width, 3), dtype)
        try:
            scores = self._scores(self._device.run(self._input[0]))
        except Exception as exc:
            raise ModelError(f"{config.path}: inference fails: {reason(exc)}") from None
        self.labels = align_labels(read_labels(config.labels), scores.size, config.labels)
        self.loaded_files = signatures(config.path, config.labels)

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> Callable[[], Classification]:
        """Runs a BGR (or BGRA, or gray) uint8 image on the chip; the call returned ranks its
        scores into the top-k labels (models.base.ImageClassifier.infer)."""
        self._preprocessor.write(image, lambda: self._input)
        if before_invoke is not None:
            before_invoke()
        started = time.perf_counter()
        raw = np.array(self._device.run(self._input[0]), np.float32)  # ours: the device may reuse its own
        inference_ms = (time.perf_counter() - started) * 1000
        return partial(self._labelled, raw, inference_ms)

    def _labelled(self, raw: np.ndarray, inference_ms: float) -> Classification:
        return Classification(top_labels(self._scores(raw), self.top_k, self.labels), inference_ms)

    def close(self) -> None:
        """Releases the device (picamera2 releases the VDevice with its last network)."""
        device, self._device = self._device, None
        if device is not None:
            device.close()

    @staticmethod
    def _scores(raw: Any) -> np.ndarray:
        scores = np.asarray(raw, np.float32).reshape(-1)
        if scores.min() >= 0 and abs(float(scores.sum()) - 1) < 0.01:
            return scores
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()
