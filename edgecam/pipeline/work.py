"""What the inference thread leaves to do after a frame, written as values a reader can follow.

A frame's classification ends in sending: `Send` is one result to hand on (with snapshots on,
a label change's frame with it). With the next frame already waiting, the whole finish of a
classified frame (ranking the model's output into labels, its result, the filter, the
sending) is left to the finisher thread (pipeline.finisher): `Finish` is that frame with what
it was classified under. Both queue in order, on the inference thread until its next release,
then on whichever thread runs them; `InferenceSettings` is what a reload swaps meanwhile, so a
`Finish` carries the settings its frame was taken under.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecam.config import PipelineConfig
from edgecam.core.frames import Frame
from edgecam.core.results import Classification, Result
from edgecam.models.base import ImageClassifier
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.motion import MotionGate
from edgecam.pipeline.zones import Zone
from edgecam.snapshots.writer import Shot

#: with snapshots on, where results go instead of the sink: each with its frame when it is a
#: label change (the snapshot writer's emit, in front of the outputs)
ShotSink = Callable[[Result, Shot | None], None]
#: with the status page on, where each classified frame goes: (seq, capture time, picture)
Preview = Callable[[int, float, np.ndarray], None]


@dataclass
class InferenceSettings:
    """What a reload may swap while the thread runs (replaced whole, never mutated)."""

    classifier: ImageClassifier
    pipeline: PipelineConfig
    filter: ResultFilter
    zones: tuple[Zone, ...] = ()  # with zones, each due zone is classified instead of the frame
    snapshots: ShotSink | None = None  # None: snapshots off, results straight to the sink
    preview: Preview | None = None  # with the status page on: each classified frame goes there
    motion: MotionGate | None = None  # with motion gating and no zones: the frame's gate


@dataclass(frozen=True)
class Send:
    """One result to hand on; `shot` is its frame when it is a label change to save."""

    result: Result
    shot: Shot | None = None


@dataclass(frozen=True)
class Finish:
    """A classified frame whose finish is left to do (the model's output not yet ranked)."""

    frame: Frame
    image: np.ndarray
    labels: Callable[[], Classification]  # the back-end's ranking of the model's output
    settings: InferenceSettings  # those the frame was taken under
    started: float  # monotonic: inference began
    done: float  # monotonic: invoke() returned

    def result(self) -> Result:
        """The frame's result: ranks the output now (that is the work worth moving off-thread)."""
        return classified(self.frame, self.labels(), self.started, self.done)


def classified(frame: Frame, classification: Classification, started: float, done: float,
               zone: str | None = None) -> Result:
    """The result of `frame` (or its zone's picture) classified between `started` and `done`."""
    return Result(frame.seq, frame.captured_wall, frame.age_ms(done), (done - started) * 1000,
                  classification, zone)


#: what the finisher runs, in order
Work = Send | Finish
