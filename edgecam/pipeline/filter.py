"""Decides which results are emitted: minimum score, label changes with hysteresis, heartbeat.

With `emit: on_change` a result is emitted when the top label changes, and
the current one is repeated every `heartbeat_s`. A change needs a top label
that clears `min_score` and either leads the runner-up by DECISIVE_LEAD (a
clear scene change, emitted at once) or stays on top for CONFIRM_FRAMES
frames in a row. Two similar labels alternating frame by frame therefore
never flap: neither leads decisively and neither stays on top, so the
journal gets at most the heartbeat for the current label.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edgecam.config import OutputsConfig
from edgecam.pipeline.results import Result

DECISIVE_LEAD = 0.5
CONFIRM_FRAMES = 3


class ResultFilter:
    def __init__(self, config: OutputsConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._min_score = config.min_score
        self._every_frame = config.emit == "every_frame"
        self._heartbeat_s = config.heartbeat_s
        self._clock = clock
        self.current: int | None = None
        self._candidate: int | None = None
        self._streak = 0
        self._last_emit = 0.0

    def offer(self, result: Result) -> bool:
        """Whether `result` is to be emitted."""
        top = result.top
        confident = top.score >= self._min_score
        if self._every_frame:
            return confident
        if not confident:
            self._candidate, self._streak = None, 0
            return False
        if top.index == self.current:
            self._candidate, self._streak = None, 0
            return self._heartbeat_due()
        self._streak = self._streak + 1 if top.index == self._candidate else 1
        self._candidate = top.index
        labels = result.classification.labels
        lead = top.score - (labels[1].score if len(labels) > 1 else 0.0)
        if lead >= DECISIVE_LEAD or self._streak >= CONFIRM_FRAMES:
            self.current, self._candidate, self._streak = top.index, None, 0
            self._last_emit = self._clock()
            return True
        return False

    def _heartbeat_due(self) -> bool:
        if self._heartbeat_s <= 0 or self._clock() - self._last_emit < self._heartbeat_s:
            return False
        self._last_emit = self._clock()
        return True
