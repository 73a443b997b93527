"""`edgecam run --print`: every emitted result on stdout, as one JSON line (the contract scripts
and pipes read) or, in a terminal, as one line a person reads (outputs/human.py)."""

from __future__ import annotations

import sys
from typing import TextIO

from edgecam.config import Config
from edgecam.core.results import Result, json_line
from edgecam.outputs.base import Output
from edgecam.outputs.human import result_line


class PrintOutput(Output):
    name = "stdout"

    def __init__(self, stream: TextIO = sys.stdout, text: bool = False) -> None:
        self._stream = stream
        self._text = text

    def emit(self, result: Result) -> None:
        if self._text:
            self._stream.write(result_line(result.message()) + "\n")
        else:
            self._stream.write(json_line(result.message()).decode())
        self._stream.flush()

    def reusable(self, config: Config) -> bool:
        return True  # it has no settings

    def close(self) -> None:
        self._stream.flush()
