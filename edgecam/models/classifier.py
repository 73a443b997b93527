"""The image classifier on the CPU: a .tflite (or .onnx) model loaded once, checked, reused.

`open_image_model` is where the CPU back-ends meet: LiteRT's ImageModel here,
ONNX Runtime's OnnxModel (models.onnx), with the same attributes and `run()`,
and `model.threads: auto` (models.threads) measured on whichever it is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.common.checkout import DEMO_CONFIG, checkout_root
from edgecam.config import ModelConfig
from edgecam.config.backends import backend_for, backend_mismatch
from edgecam.core.labels import align_labels, read_labels
from edgecam.core.results import Classification
from edgecam.errors import MissingFileError, ModelError
from edgecam.models.base import Infers, top_labels
from edgecam.models.filesig import signatures
from edgecam.models.output_model import OutputModel, first_line, is_class_scores
from edgecam.models.preprocess import Preprocessor
from edgecam.models.runtime import interpreter_class, quiet_runtime
from edgecam.models.threads import ThreadChoice, auto_threads

log = logging.getLogger(__name__)

_INPUT_TYPES = (np.uint8, np.int8, np.float32)


class ImageModel(OutputModel):
    """A .tflite model with one (1, H, W, 3) image input and one output, loaded once.

    What an image classifier and an embedding extractor share: the runtime, the interpreter
    (created once, reused for every frame), the signature checks, the preprocessing written
    in place into the input tensor, a test inference at load, and the dequantized output.
    `kind` names the model in errors ("image classifier", "embedding extractor");
    `output_ok(shape)` says whether the output shape fits it, `expected` describes the fit.
    """

    def __init__(self, model_path: str, *, threads: int = 0, resize: str = "crop",
                 kind: str = "image classifier",
                 output_ok: Callable[[tuple[int, ...]], bool] | None = None,
                 expected: str = "[1, classes]") -> None:
        self.model_path = model_path
        interpreter_cls, self.runtime = interpreter_class()
        self.threads = threads or os.cpu_count() or 1
        #: how model.threads: auto chose `threads` (None: a fixed count)
        self.thread_choice: ThreadChoice | None = None
        with quiet_runtime():
            self._interpreter = _open_interpreter(interpreter_cls, model_path, self.threads)
        inp, out = _check_signature(self._interpreter, model_path, kind,
                                    output_ok or is_class_scores, expected)
        self.input_dtype = np.dtype(inp["dtype"])
        self._input_index = inp["index"]
        self._output_index = out["index"]
        # A function returning a view of the input: safe to keep (not the view itself). The
        # output is read with get_tensor(): one call that copies it, which infer() needs anyway.
        self._input_tensor = self._interpreter.tensor(self._input_index)
        self.outputs = int(out["shape"][-1])
        _, height, width, _ = (int(d) for d in inp["shape"])
        self.input_size = (width, height)
        in_scale, in_zero = inp["quantization"]
        self._preprocessor = Preprocessor(height, width, inp["dtype"], in_scale, in_zero, resize)
        out_scale, out_zero = out["quantization"]
        self._out_quantized = out["dtype"] != np.float32 and out_scale != 0
        self._out_scale, self._out_zero = np.float32(out_scale), np.float32(out_zero)
        try:
            self._interpreter.invoke()
        except Exception as exc:
            raise ModelError(f"{model_path}: inference fails: {first_line(exc)}") from None

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> tuple[Callable[[], np.ndarray], float]:
        """Runs the model on a BGR (or BGRA, or gray) uint8 image: the call that gives its output
        dequantized, and invoke()'s ms.

        The call works on a copy of the output tensor (1001 bytes for MobileNet), so it may run
        later and on another thread, after the next invoke() (models.base.ImageClassifier.infer).
        `before_invoke` is called once the input is written, right before invoke().
        """
        self._preprocessor.write(image, self._input_tensor)
        if before_invoke is not None:
            before_invoke()
        started = time.perf_counter()
        self._interpreter.invoke()
        inference_ms = (time.perf_counter() - started) * 1000
        raw = self._interpreter.get_tensor(self._output_index).reshape(-1)  # a copy: ours
        return partial(self._dequantized, raw), inference_ms

    def _dequantized(self, raw: np.ndarray) -> np.ndarray:
        if not self._out_quantized:
            return raw.astype(np.float32, copy=False)
        values = np.subtract(raw, self._out_zero, dtype=np.float32)
        values *= self._out_scale
        return values


class Classifier(Infers):
    """A quantized (or float) image classifier on the CPU: LiteRT, or ONNX Runtime for an .onnx."""

    def __init__(self, model_path: str, labels_path: str, *, threads: int | str = 0, top_k: int = 3,
                 resize: str = "crop", backend: str = "auto", providers: tuple[str, ...] = ()
                 ) -> None:
        self.model_path = model_path
        self.top_k = top_k
        self.loaded_files = signatures(model_path, labels_path)
        self._model = open_image_model(model_path, threads=threads, resize=resize, backend=backend,
                                       providers=providers)
        self.runtime, self.threads = self._model.runtime, self._model.threads
        self.thread_choice = self._model.thread_choice
        self.input_size = self._model.input_size
        outputs = self._model.outputs
        self.labels = align_labels(read_labels(labels_path), outputs, labels_path)
        width, height = self.input_size
        log.info("model %s: %dx%d %s input, %d labels, %s, %d thread(s)", Path(model_path).name,
                 width, height, self._model.input_dtype.name, outputs, self.runtime, self.threads)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Classifier:
        return cls(config.path, config.labels, threads=config.threads, top_k=config.top_k,
                   resize=config.resize, backend=config.backend, providers=config.providers)

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> Callable[[], Classification]:
        """Runs the model on a BGR (or BGRA, or gray) uint8 image; the call returned gives its
        top-k labels (models.base.ImageClassifier.infer; `before_invoke`: see ImageModel.infer)."""
        output, inference_ms = self._model.infer(image, before_invoke)
        return partial(self._labelled, output, inference_ms)

    def _labelled(self, output: Callable[[], np.ndarray], inference_ms: float) -> Classification:
        return Classification(top_labels(output(), self.top_k, self.labels), inference_ms)


def open_image_model(model_path: str, *, threads: int | str, resize: str, backend: str = "auto",
                     providers: tuple[str, ...] = (), kind: str = "image classifier",
                     output_ok: Callable[[tuple[int, ...]], bool] | None = None,
                     expected: str = "[1, classes]") -> Any:
    """The model on the CPU back-end `backend` (auto: from the file's suffix); an ImageModel or an
    OnnxModel, which share their attributes and run(). `threads: auto` measures each count."""
    mismatch = backend_mismatch(backend, model_path)
    if mismatch:
        raise ModelError(f"model.backend: {mismatch}")
    chosen = backend_for(backend, model_path)
    if not chosen.on_cpu:
        raise ModelError(f"{model_path}: {chosen.title} does not run on the CPU: this needs a "
                         ".tflite or .onnx model")

    def load(count: int) -> Any:
        if chosen.name == "onnx":
            from edgecam.models.onnx import OnnxModel

            return OnnxModel(model_path, threads=count or os.cpu_count() or 1, resize=resize,
                             providers=providers, fallback=backend == "auto", kind=kind,
                             output_ok=output_ok, expected=expected)
        return ImageModel(model_path, threads=count, resize=resize, kind=kind, output_ok=output_ok,
                          expected=expected)

    if threads != "auto":
        return load(int(threads))
    model, choice = auto_threads(load)
    model.thread_choice = choice
    log.info("model.threads: auto: %s", choice.describe())
    return model


def _fetch_hint(path: Path) -> str:
    """How to get the model: in a checkout, the demo config's copy, which `make run` fetches."""
    root = checkout_root()
    if root is None or path.resolve().is_relative_to(root.resolve()):
        return "install it with `edgecam fetch-model`"
    return (f"in this checkout: -c {DEMO_CONFIG}, whose model `make run` fetches into .run/models; "
            "else `edgecam fetch-model`")


def _open_interpreter(interpreter_cls: type, model_path: str, threads: int) -> Any:
    path = Path(model_path)
    if not path.is_file():
        raise MissingFileError(f"model file not found: {model_path} ({_fetch_hint(path)})")
    try:
        interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:
        raise ModelError(f"{model_path}: not a usable TensorFlow Lite model: {first_line(exc)}"
                         ) from None
    return interpreter


def _check_signature(interpreter: Any, model_path: str, kind: str,
                     output_ok: Callable[[tuple[int, ...]], bool], expected: str
                     ) -> tuple[dict, dict]:
    """Refuses anything but one (1, H, W, 3) image input and one output that `output_ok` accepts."""
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{model_path}: not an {kind}: {len(inputs)} inputs and "
                         f"{len(outputs)} outputs (expected 1 and 1)")
    inp, out = inputs[0], outputs[0]
    shape = tuple(int(d) for d in inp["shape"])
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ModelError(f"{model_path}: not an {kind}: input shape {list(shape)} "
                         "(expected [1, height, width, 3])")
    if inp["dtype"] not in _INPUT_TYPES:
        raise ModelError(f"{model_path}: input type {np.dtype(inp['dtype']).name} is not supported "
                         "(uint8, int8 or float32)")
    out_shape = tuple(int(d) for d in out["shape"])
    if not output_ok(out_shape):
        raise ModelError(f"{model_path}: not an {kind}: output shape {list(out_shape)} "
                         f"(expected {expected})")
    return inp, out
