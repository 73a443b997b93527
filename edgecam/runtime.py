"""Finds a TensorFlow Lite interpreter: LiteRT first, then tflite_runtime, then TensorFlow.

LiteRT (`ai-edge-litert`) is the maintained successor of `tflite-runtime`
with the same `Interpreter` API and is about ten times faster here; the
fallbacks keep older installs working. Which one loaded is logged, because
"why is it slow" is the first question on a Pi.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from edgecam.errors import EdgecamError

log = logging.getLogger(__name__)

_RUNTIMES = (
    ("LiteRT", "ai_edge_litert.interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter"),
    ("tensorflow.lite", "tensorflow.lite"),
)


def interpreter_class() -> tuple[type, str]:
    """The first installed runtime's Interpreter class and the runtime's name."""
    for name, module_name in _RUNTIMES:
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        log.debug("TensorFlow Lite runtime: %s (%s)", name, module_name)
        return module.Interpreter, name
    raise EdgecamError(
        "no TensorFlow Lite runtime is installed: pip install 'edgecam[litert]' "
        "(or 'edgecam[tflite]' where LiteRT has no wheel)")
