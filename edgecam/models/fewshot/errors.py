"""What goes wrong with a head file: kept apart so that readers can tell garbage from a mismatch."""

from __future__ import annotations

from edgecam.errors import ModelError


class HeadError(ModelError):
    """A head file that cannot be used: corrupt, another format or another extractor."""


class CorruptHeadError(HeadError):
    """A head file whose bytes do not check out (cut, emptied, garbage: what a power cut may
    leave), as against a head of another format, version or extractor. `problem`: the message
    without the file's name (common.files.set_aside names it)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.problem = problem
