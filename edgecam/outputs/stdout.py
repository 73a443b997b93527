"""`edgecam run --print`: every emitted result as one JSON line on stdout."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from edgecam.pipeline.results import Result, json_line


class PrintOutput:
    name = "stdout"
    stats_interval_s = 0.0

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self._stream = stream

    def emit(self, result: Result) -> None:
        self._stream.write(json_line(result.message()).decode())
        self._stream.flush()

    def stats(self, snapshot: dict[str, Any]) -> None:
        """Results only: stats go to the socket and the journal."""

    def close(self) -> None:
        self._stream.flush()
