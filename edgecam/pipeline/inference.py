"""The inference thread: newest frame → classifier → filter → outputs.

It takes the newest frame from the slot, drops it if older than
`max_frame_age_ms` (so every result's latency is bounded by that age plus
one decode and one inference), decodes it if its source deferred that (only
the frames the model takes are ever decoded), honours `max_fps`, and hands emitted results to the output
dispatcher without ever waiting on an output. Progress here is what feeds
the systemd watchdog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgecam.common.throttle import LogThrottle
from edgecam.common.worker import Worker
from edgecam.config import PipelineConfig
from edgecam.daemon.faults import Faults
from edgecam.daemon.notify import Watchdog
from edgecam.models.base import ImageClassifier
from edgecam.models.preprocess import FrameFormatError
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.results import Result
from edgecam.pipeline.slot import FrameSlot
from edgecam.pipeline.stats import Stats

log = logging.getLogger(__name__)

_TAKE_TIMEOUT_S = 0.5
_LOG_EVERY = 100


@dataclass
class InferenceSettings:
    """What a reload may swap while the thread runs (replaced whole, never mutated)."""

    classifier: ImageClassifier
    pipeline: PipelineConfig
    filter: ResultFilter


class Inference:
    def __init__(self, settings: InferenceSettings, slot: FrameSlot, stats: Stats, outputs: Dispatcher,
                 watchdog: Watchdog, source_idle: Callable[[], bool], faults: Faults) -> None:
        self.settings = settings
        self._slot = slot
        self._stats = stats
        self._outputs = outputs
        self._watchdog = watchdog
        self._source_idle = source_idle
        self._faults = faults
        self._worker = Worker("edgecam-inference", self._run)
        self._stop = self._worker.stopping
        self.first_result = threading.Event()
        self.latest: Result | None = None
        self.error: BaseException | None = None
        self._bad_frames = LogThrottle(_LOG_EVERY)

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._worker.stop(timeout)

    def _run(self, stop: threading.Event) -> None:
        try:
            self._loop()
        except Exception as exc:
            self.error = exc
            log.exception("inference failed")

    def _loop(self) -> None:
        next_due = 0.0
        while not self._stop.is_set():
            settings = self.settings
            delay = next_due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            frame = self._slot.take(_TAKE_TIMEOUT_S)
            taken = time.monotonic()
            if frame is None:
                if self._source_idle():
                    self._watchdog.kick()  # nothing to classify, but the source is being handled
                continue
            if frame.age_ms(taken) > settings.pipeline.max_frame_age_ms:
                self._stats.drop("stale")
                continue
            try:
                image = frame.decode()
                started = time.monotonic()
                classification = settings.classifier.classify(image)
            except FrameFormatError as exc:
                self._bad_frame(exc)
                continue
            done = time.monotonic()
            latency_ms = frame.age_ms(done)
            result = Result(frame.seq, frame.captured_wall, latency_ms, (done - started) * 1000,
                            classification)
            self._stats.classified(latency_ms, classification.inference_ms)
            self.latest = result
            self.first_result.set()
            self._watchdog.kick()
            if settings.filter.offer(result):
                self._stats.count("emitted")
                self._outputs.emit(result)
            if settings.pipeline.max_fps:
                next_due = taken + 1.0 / settings.pipeline.max_fps
            self._faults.after_classified(self._stop)

    def _bad_frame(self, exc: Exception) -> None:
        self._stats.drop("bad_frame")
        if self._bad_frames():
            log.warning("unusable frame dropped (%d so far): %s", self._bad_frames.count, exc)
