"""An .onnx image model on ONNX Runtime: what ImageModel is for a .tflite, for PyTorch's exports.

People who train in PyTorch export with `torch.onnx.export`; ONNX Runtime
runs that on a Pi's CPU, and on a Jetson through its CUDA and TensorRT
execution providers (`model.providers`). The model's one input gives its
layout and size: NCHW ([1, 3, H, W], PyTorch's) or NHWC ([1, H, W, 3]),
float32, uint8 or int8; a dimension left symbolic (a dynamic batch) is taken
as 1. The pixels go through the same rule as a .tflite's (preprocess.py): a
float input gets (pixel-128)/128, uint8 the pixels as they are, int8
pixel-128. A model trained with other normalization (torchvision's ImageNet
mean and std) carries it inside the exported graph (docs/MODELS.md, "Accelerators and
other model formats"). QDQ-quantized graphs (float in and out, quantized
inside, like ../shared's MobileNet v2) need nothing special.

The session is made once with `intra_op_num_threads` and without its threads
spinning between runs: on a Pi the capture thread needs the cores they would
spin on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.dependencies import ONNXRUNTIME, MissingDependency
from edgecam.errors import MissingFileError, ModelError, SourceError
from edgecam.models.output_model import OutputModel, first_line, is_class_scores
from edgecam.models.preprocess import Preprocessor
from edgecam.models.threads import ThreadChoice

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}
#: the input quantization the (pixel-128)/128 rule means for each integer type (scale, zero point)
_PIXEL_RULE = {np.uint8: (1 / 128, 128), np.int8: (1 / 128, 0), np.float32: (0.0, 0)}


def onnxruntime() -> Any:
    """The onnxruntime module; its piece's one line (exit 84) when it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependency(ONNXRUNTIME) from None
    return ort


class OnnxModel(OutputModel):
    """An .onnx model with one image input and one output, on one session reused for every frame.

    The same attributes, `infer()` and `run()` as classifier.ImageModel, so a classifier and an
    embedding extractor use either.
    """

    def __init__(self, model_path: str, *, threads: int, resize: str = "crop",
                 providers: tuple[str, ...] = (), fallback: bool = False,
                 kind: str = "image classifier",
                 output_ok: Callable[[tuple[int, ...]], bool] | None = None,
                 expected: str = "[1, classes]") -> None:
        ort = onnxruntime()
        self.model_path = model_path
        self.threads = threads
        self.thread_choice: ThreadChoice | None = None
        self._session = _open_session(ort, model_path, threads,
                                      _providers(ort, providers, fallback, model_path))
        used = self._session.get_providers()
        self.runtime = f"ONNX Runtime {ort.__version__} ({used[0]})"
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{model_path}: not an {kind}: {len(inputs)} inputs and "
                             f"{len(outputs)} outputs (expected 1 and 1)")
        inp = inputs[0]
        dtype = _TYPES.get(inp.type)
        if dtype is None:
            raise ModelError(f"{model_path}: input type {inp.type} is not supported "
                             "(float, uint8 or int8)")
        self.input_dtype = np.dtype(dtype)
        shape = [d if isinstance(d, int) else 1 for d in inp.shape[:1]] + list(inp.shape[1:])
        self.nchw, height, width = _layout(shape, model_path, kind)
        self.input_size = (width, height)
        self._input_name = inp.name
        self._nhwc = np.empty((1, height, width, 3), dtype)
        self._feed = np.empty((1, 3, height, width), dtype) if self.nchw else self._nhwc
        scale, zero = _PIXEL_RULE[dtype]
        self._preprocessor = Preprocessor(height, width, self.input_dtype, scale, zero, resize)
        try:
            first = self._invoke()
        except Exception as exc:
            raise ModelError(f"{model_path}: inference fails: {first_line(exc)}") from None
        out_shape = tuple(int(d) for d in first.shape)
        if not (output_ok or is_class_scores)(out_shape):
            raise ModelError(f"{model_path}: not an {kind}: output shape {list(out_shape)} "
                             f"(expected {expected})")
        self.outputs = int(out_shape[-1])
        if fallback and used[0] != (providers or (CPU,))[0]:
            log.warning("model.providers: %s fell back to %s (model.backend: auto allows it)",
                        providers[0], used[0])

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> tuple[Callable[[], np.ndarray], float]:
        """For a BGR (or BGRA, or gray) uint8 image: the call that gives the output as float32,
        and the session's ms (see ImageModel.infer: the session's output is already a new
        array); `before_invoke` is called once the input is written, right before the run."""
        self._preprocessor.write(image, lambda: self._nhwc)
        if self.nchw:
            np.copyto(self._feed[0], self._nhwc[0].transpose(2, 0, 1))
        if before_invoke is not None:
            before_invoke()
        started = time.perf_counter()
        raw = self._invoke()
        inference_ms = (time.perf_counter() - started) * 1000
        return partial(np.asarray, raw.reshape(-1), np.float32), inference_ms

    def _invoke(self) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input_name: self._feed})[0])


def _providers(ort: Any, wanted: tuple[str, ...], fallback: bool, model_path: str) -> list[str]:
    """The execution providers to ask for: those wanted that this onnxruntime has.

    One it lacks is an error naming what is there, unless `fallback` (model.backend: auto)
    allows leaving it out: then it is logged, and the session runs on what remains.
    """
    if not wanted:
        return [CPU]
    available = ort.get_available_providers()
    missing = [name for name in wanted if name not in available]
    if missing and not fallback:
        raise SourceError(f"model.providers: {', '.join(missing)} not available in this onnxruntime "
                          f"(it has {', '.join(available)}); on a Jetson install NVIDIA's "
                          "onnxruntime-gpu, or set model.backend: auto to fall back")
    kept = [name for name in wanted if name in available] or [CPU]
    if missing:
        log.warning("model.providers: %s not available (this onnxruntime has %s): running on %s",
                    ", ".join(missing), ", ".join(available), ", ".join(kept))
    return kept


def _open_session(ort: Any, model_path: str, threads: int, providers: list[str]) -> Any:
    if not Path(model_path).is_file():
        raise MissingFileError(f"model file not found: {model_path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its warnings about unused initializers are noise
    try:
        return ort.InferenceSession(model_path, sess_options=options, providers=providers)
    except Exception as exc:
        raise ModelError(f"{model_path}: not a usable ONNX model: {first_line(exc)}") from None


def _layout(shape: list[Any], model_path: str, kind: str) -> tuple[bool, int, int]:
    """(NCHW?, height, width) of a [1, 3, H, W] or [1, H, W, 3] input with fixed H and W."""
    fixed = all(isinstance(d, int) and d > 0 for d in shape)
    if fixed and len(shape) == 4 and shape[0] == 1:
        if shape[1] == 3:
            return True, shape[2], shape[3]
        if shape[3] == 3:
            return False, shape[1], shape[2]
    raise ModelError(f"{model_path}: not an {kind}: input shape {shape} (expected [1, 3, height, "
                     "width] or [1, height, width, 3], with a fixed height and width)")


