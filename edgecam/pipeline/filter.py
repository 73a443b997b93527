"""Decides which results are emitted: label rules, minimum score, label changes with hysteresis,
heartbeat.

The label rules come first: `labels_deny` takes labels out of a result's
labels and, where `labels_allow` is set, only those labels stay (the TF Lite
Pi example's allow/deny lists), so the best remaining label is the result's
top label; a result with none left is treated as one below its minimum. The
top label must then reach its own `thresholds` entry, else `min_score`.

With `emit: on_change` a result is emitted when the top label changes, and
the current one is repeated every `heartbeat_s`. A change needs a top label
that clears `min_score` and either leads the runner-up by DECISIVE_LEAD (a
clear scene change, emitted at once) or stays on top for CONFIRM_FRAMES
frames in a row. Two similar labels alternating frame by frame therefore
never flap: neither leads decisively and neither stays on top, so the
journal gets at most the heartbeat for the current label.

With motion gating a still frame is not classified: `repeat` then gives
the heartbeat from the last emitted result, marked `still` (not re-classified).

`changed` tells a label change from a heartbeat (or, with every_frame, from
a result with the same top label as the one before): only changes get a
snapshot of their frame.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from edgecam.config import OutputsConfig
from edgecam.core.results import Result

DECISIVE_LEAD = 0.5
CONFIRM_FRAMES = 3


class ResultFilter:
    def __init__(self, config: OutputsConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._min_score = config.min_score
        self._allow = frozenset(config.labels_allow)
        self._deny = frozenset(config.labels_deny)
        self._thresholds = dict(config.thresholds)
        self._every_frame = config.emit == "every_frame"
        self._heartbeat_s = config.heartbeat_s
        self._clock = clock
        self.current: int | None = None
        self._candidate: int | None = None
        self._streak = 0
        self._last_emit = 0.0
        self._last: Result | None = None  # the last result emitted (with on_change), for repeat()
        #: whether the result offer() last returned is a label change (not a heartbeat or a repeat)
        self.changed = False

    def offer(self, result: Result) -> Result | None:
        """The result to emit (with the label rules applied to its labels), or None."""
        self.changed = False
        kept = self._apply_rules(result)
        confident = kept is not None and kept.top.score >= self._thresholds.get(
            kept.top.label, self._min_score)
        if self._every_frame:
            if kept is None or not confident:
                return None
            self.changed, self.current = kept.top.index != self.current, kept.top.index
            return kept
        if kept is None or not confident:
            self._candidate, self._streak = None, 0
            return None
        top = kept.top
        if top.index == self.current:
            self._candidate, self._streak = None, 0
            if not self._heartbeat_due():
                return None
            self._last = kept
            return kept
        self._streak = self._streak + 1 if top.index == self._candidate else 1
        self._candidate = top.index
        labels = kept.classification.labels
        lead = top.score - (labels[1].score if len(labels) > 1 else 0.0)
        if lead >= DECISIVE_LEAD or self._streak >= CONFIRM_FRAMES:
            self.current, self._candidate, self._streak = top.index, None, 0
            self._last_emit = self._clock()
            self.changed = True
            self._last = kept
            return kept
        return None

    def repeat(self, seq: int, ts: float, latency_ms: float) -> Result | None:
        """The heartbeat of a frame not classified because nothing moved (with on_change): the
        last emitted result, as of frame `seq`, marked `still`; None if no heartbeat is due."""
        self.changed = False
        if self._every_frame or self._last is None or not self._heartbeat_due():
            return None
        return dataclasses.replace(self._last, seq=seq, ts=ts, latency_ms=latency_ms,
                                   inference_ms=0.0, still=True, snapshot_path=None)

    def _apply_rules(self, result: Result) -> Result | None:
        """`result` with the denied and the not-allowed labels taken out; None if none is left."""
        if not self._allow and not self._deny:
            return result
        labels = result.classification.labels
        kept = tuple(label for label in labels if label.label not in self._deny
                     and (not self._allow or label.label in self._allow))
        if not kept:
            return None
        if len(kept) == len(labels):
            return result
        return dataclasses.replace(
            result, classification=dataclasses.replace(result.classification, labels=kept))

    def _heartbeat_due(self) -> bool:
        if self._heartbeat_s <= 0 or self._clock() - self._last_emit < self._heartbeat_s:
            return False
        self._last_emit = self._clock()
        return True
