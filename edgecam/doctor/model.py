"""The runtime and the model: the interpreter the daemon would use, and the model really loaded.

The model is loaded exactly as the daemon loads it (models.factory, which
checks the input, the output against the labels and runs a test inference),
then times one classification of a real camera frame, so a model that loads
but is far too slow for the board shows here too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecam.config import ModelConfig
from edgecam.config.backends import BY_NAME, backend_for
from edgecam.doctor.check import Check, failed, passed
from edgecam.doctor.machine import package_version
from edgecam.doctor.socket import RunningDaemon
from edgecam.errors import EdgecamError
from edgecam.models.base import ImageClassifier, runs_on_sensor
from edgecam.models.factory import make_classifier
from edgecam.models.fetch import DEFAULT_MODEL_DIR
from edgecam.models.onnx import onnxruntime
from edgecam.models.runtime import interpreter_class

# The pip distribution each runtime comes from, for its version.
_DISTRIBUTIONS = {"LiteRT": "ai-edge-litert", "tflite_runtime": "tflite-runtime",
                  "tensorflow.lite": "tensorflow"}


def check_runtime(model: ModelConfig | None = None) -> Check:
    """The runtime the model's back-end needs: LiteRT's, ONNX Runtime, or the accelerator's
    (checked as the model loads)."""
    backend = backend_for(model.backend, model.path) if model is not None else BY_NAME["litert"]
    if not backend.on_cpu:
        return passed("runtime", f"the model runs on {backend.title}: checked as it loads (model)")
    try:
        if backend.name == "onnx":
            ort = onnxruntime()
            return passed("runtime", f"ONNX Runtime {ort.__version__} (onnxruntime), providers: "
                                     f"{', '.join(ort.get_available_providers())}")
        _, name = interpreter_class()
    except EdgecamError as exc:
        return failed("runtime", str(exc), backend.fix)
    distribution = _DISTRIBUTIONS[name]
    slower = "" if name == "LiteRT" else "; LiteRT (ai-edge-litert) is about ten times faster"
    return passed("runtime", f"{name} {package_version(distribution)} ({distribution}){slower}")


def held_by(model: ModelConfig, daemon: RunningDaemon | None) -> Check | None:
    """The model check while a running daemon holds the model's device; None to load it here.

    A Hailo chip is one process's (a second VDevice fails: HAILO_OUT_OF_PHYSICAL_DEVICES),
    and IMX500() sends the network to the sensor again while it streams, and resets its
    region of interest: so the daemon's own figures are reported, as for the camera.
    """
    backend = backend_for(model.backend, model.path)
    if daemon is None or not backend.exclusive:
        return None
    return passed("model", f"{Path(model.path).name} on {backend.title}: {daemon.note('it')}")


@dataclass(frozen=True)
class LoadedModel:
    """A classifier loaded as the daemon loads it, and how long that took."""

    classifier: ImageClassifier
    load_ms: float


def load_model(model: ModelConfig, runtime_ok: bool) -> LoadedModel | Check:
    """The loaded model, or the failed check saying why it does not load."""
    if not runtime_ok:
        backend = backend_for(model.backend, model.path)
        return failed("model", f"not loaded: {backend.missing}", backend.fix)
    started = time.perf_counter()
    try:
        classifier = make_classifier(model)
    except EdgecamError as exc:
        return failed("model", str(exc), _model_fix(model, str(exc)))
    return LoadedModel(classifier, (time.perf_counter() - started) * 1000)


def check_model(model: ModelConfig, loaded: LoadedModel, frame: np.ndarray | None) -> Check:
    """The model's verdict, with one timed classification of `frame` (a blank one without a camera)."""
    classifier = loaded.classifier
    width, height = classifier.input_size
    if model.head is not None:
        what = (f"{Path(model.path).name} with the head {Path(model.head).name}: {width}x{height} "
                f"input, {len(classifier.labels)} class(es)")
    else:
        what = (f"{Path(model.path).name}: {width}x{height} input, {len(classifier.labels)} labels "
                f"matching its outputs")
    if runs_on_sensor(classifier):
        return passed("model", f"{what}, loaded in {loaded.load_ms:.0f} ms; it runs on the AI Camera's "
                               f"sensor (camera {classifier.camera_num}), not on the CPU")
    image = frame if frame is not None else np.zeros((height, width, 3), np.uint8)
    try:
        result = classifier.classify(image)
    except (EdgecamError, ValueError) as exc:
        return failed("model", f"{what}; classifying a frame fails: {exc}",
                      "check that camera.source delivers colour or grey images")
    seen = f": {result.top.label} {result.top.score:.2f}" if frame is not None else ""
    return passed("model", f"{what}, loaded in {loaded.load_ms:.0f} ms; "
                           f"{'a camera' if frame is not None else 'a blank'} frame classified in "
                           f"{result.inference_ms:.1f} ms on {_where(classifier)}{seen}")


def _where(classifier: ImageClassifier) -> str:
    """What ran it: the runtime, and on the CPU the thread count (and how auto chose it)."""
    model = getattr(classifier, "embedder", classifier)  # a head runs on its extractor
    runtime, threads = getattr(model, "runtime", "?"), getattr(model, "threads", 0)
    if not threads:
        return runtime
    choice = getattr(model, "thread_choice", None)
    if choice is not None:
        return f"{runtime}, threads: auto chose {choice.describe()}"
    return f"{runtime}, {threads} thread{'s' if threads > 1 else ''}"


def _model_fix(model: ModelConfig, problem: str) -> str:
    """How to fix the model section, from which of its files the problem names."""
    fetch = "edgecam fetch-model" if Path(model.path).parent == DEFAULT_MODEL_DIR \
        else f"edgecam fetch-model --dir {Path(model.path).parent}"
    if model.head is not None and model.head in problem:
        return ("teach the head with model.path as its extractor (edgecam learn add LABEL IMAGE...), "
                "or remove model.head to use the model's own labels")
    if model.head is None and model.labels in problem:
        return f"set model.labels to the labels file that came with the model ({fetch} installs the " \
               "default model's)"
    if not Path(model.path).is_file():
        return f"set model.path to your model (.tflite, .onnx, .rpk or .hef), or download the " \
               f"default one: {fetch}"
    return f"use an image classifier in model.path (.tflite, .onnx, .rpk or .hef; the default " \
           f"one: {fetch})"
