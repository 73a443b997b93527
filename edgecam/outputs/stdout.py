"""`edgecam run --print`: every emitted result as one JSON line on stdout."""

from __future__ import annotations

import sys
from typing import TextIO

from edgecam.config import Config
from edgecam.core.results import Result, json_line
from edgecam.outputs.base import Output


class PrintOutput(Output):
    name = "stdout"

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self._stream = stream

    def emit(self, result: Result) -> None:
        self._stream.write(json_line(result.message()).decode())
        self._stream.flush()

    def reusable(self, config: Config) -> bool:
        return True  # it has no settings

    def close(self) -> None:
        self._stream.flush()
