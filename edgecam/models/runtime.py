"""Finds a TensorFlow Lite interpreter: LiteRT first, then tflite_runtime, then TensorFlow.

LiteRT (`ai-edge-litert`) is the maintained successor of `tflite-runtime`
with the same `Interpreter` API and is about ten times faster here; the
fallbacks keep older installs working. Which one loaded is logged, because
"why is it slow" is the first question on a Pi.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from edgecam.dependencies import runtime_missing

log = logging.getLogger(__name__)

# What the runtimes print on their own at every model load: noise in the journal.
_NOISE = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$")

_RUNTIMES = (
    ("LiteRT", "ai_edge_litert.interpreter"),
    ("tflite_runtime", "tflite_runtime.interpreter"),
    ("tensorflow.lite", "tensorflow.lite"),
)


def interpreter_class() -> tuple[type, str]:
    """The first installed runtime's Interpreter class and the runtime's name; else one line."""
    for name, module_name in _RUNTIMES:
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        log.debug("TensorFlow Lite runtime: %s (%s)", name, module_name)
        return module.Interpreter, name
    raise runtime_missing()


@contextlib.contextmanager
def quiet_runtime() -> Iterator[None]:
    """Drops the runtime's start-up INFO line from stderr, passing everything else through.

    The C++ runtime writes straight to file descriptor 2, so Python cannot filter it
    as a log record: stderr is pointed at a temporary file for the duration, then
    whatever landed there (other threads' logs included) is written back, minus the
    noise. A file, not a pipe, so a writer can never block on it.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not _NOISE.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
