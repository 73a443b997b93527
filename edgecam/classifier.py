"""The image classifier: a .tflite model loaded once, checked, and reused for every frame."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.config import ModelConfig
from edgecam.errors import MissingFileError, ModelError
from edgecam.labels import align_labels, read_labels
from edgecam.preprocess import Preprocessor
from edgecam.runtime import interpreter_class, quiet_runtime

log = logging.getLogger(__name__)

_INPUT_TYPES = (np.uint8, np.int8, np.float32)


@dataclass(frozen=True)
class Label:
    """One scored label; `index` is the model's output index."""

    index: int
    label: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Classification:
    """The top-k labels of one image, best first, and how long inference took."""

    labels: tuple[Label, ...]
    inference_ms: float

    @property
    def top(self) -> Label:
        return self.labels[0]


class Classifier:
    """A quantized (or float) image classifier on LiteRT / TensorFlow Lite."""

    def __init__(self, model_path: str, labels_path: str, *, threads: int = 0, top_k: int = 3,
                 resize: str = "crop") -> None:
        self.model_path = model_path
        self.top_k = top_k
        interpreter_cls, self.runtime = interpreter_class()
        self.threads = threads or os.cpu_count() or 1
        with quiet_runtime():
            self._interpreter = _open_interpreter(interpreter_cls, model_path, self.threads)
        inp, out = _check_signature(self._interpreter, model_path)
        self._input_index = inp["index"]
        self._output_index = out["index"]
        outputs = int(out["shape"][-1])
        self.labels = align_labels(read_labels(labels_path), outputs, labels_path)
        _, height, width, _ = (int(d) for d in inp["shape"])
        self.input_size = (width, height)
        in_scale, in_zero = inp["quantization"]
        self._preprocessor = Preprocessor(height, width, inp["dtype"], in_scale, in_zero, resize)
        out_scale, out_zero = out["quantization"]
        self._out_quantized = out["dtype"] != np.float32 and out_scale != 0
        self._out_scale, self._out_zero = np.float32(out_scale), np.float32(out_zero)
        self._scores = np.empty(outputs, np.float32)
        try:
            self._interpreter.invoke()
        except Exception as exc:
            raise ModelError(f"{model_path}: inference fails: {_first_line(exc)}") from None
        log.info("model %s: %dx%d %s input, %d labels, %s, %d thread(s)", Path(model_path).name,
                 width, height, np.dtype(inp["dtype"]).name, outputs, self.runtime, self.threads)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Classifier:
        return cls(config.path, config.labels, threads=config.threads, top_k=config.top_k,
                   resize=config.resize)

    def classify(self, image: np.ndarray) -> Classification:
        """The top-k labels of a BGR (or BGRA, or gray) uint8 image."""
        self._preprocessor.write(image, self._interpreter.tensor(self._input_index))
        started = time.perf_counter()
        self._interpreter.invoke()
        inference_ms = (time.perf_counter() - started) * 1000
        raw = self._interpreter.tensor(self._output_index)()[0]
        scores = self._scores
        if self._out_quantized:
            np.subtract(raw, self._out_zero, out=scores, casting="unsafe")
            scores *= self._out_scale
        else:
            np.copyto(scores, raw, casting="unsafe")
        del raw
        k = min(self.top_k, scores.size)
        best = np.argpartition(scores, -k)[-k:]
        best = best[np.argsort(scores[best])[::-1]]
        labels = tuple(Label(int(i), self.labels[i], float(scores[i])) for i in best)
        return Classification(labels, inference_ms)


def _open_interpreter(interpreter_cls: type, model_path: str, threads: int) -> Any:
    path = Path(model_path)
    if not path.is_file():
        raise MissingFileError(f"model file not found: {model_path} (install it with `edgecam fetch-model`)")
    try:
        interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:
        raise ModelError(f"{model_path}: not a usable TensorFlow Lite model: {_first_line(exc)}"
                         ) from None
    return interpreter


def _check_signature(interpreter: Any, model_path: str) -> tuple[dict, dict]:
    """Refuses anything but one (1, H, W, 3) image input and one (1, N) output."""
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{model_path}: not an image classifier: {len(inputs)} inputs and "
                         f"{len(outputs)} outputs (expected 1 and 1)")
    inp, out = inputs[0], outputs[0]
    shape = tuple(int(d) for d in inp["shape"])
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ModelError(f"{model_path}: not an image classifier: input shape {list(shape)} "
                         "(expected [1, height, width, 3])")
    if inp["dtype"] not in _INPUT_TYPES:
        raise ModelError(f"{model_path}: input type {np.dtype(inp['dtype']).name} is not supported "
                         "(uint8, int8 or float32)")
    out_shape = tuple(int(d) for d in out["shape"])
    if len(out_shape) != 2 or out_shape[0] != 1:
        raise ModelError(f"{model_path}: not an image classifier: output shape {list(out_shape)} "
                         "(expected [1, classes])")
    return inp, out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
