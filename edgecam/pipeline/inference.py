"""The inference thread: newest frame → classifier → filter → outputs.

It takes the newest frame from the slot, drops it if older than `max_frame_age_ms` (so every
result's latency is bounded by that age plus one decode and one inference), decodes it if its
source deferred that (only the frames the model takes are ever decoded), honours `max_fps`, and
hands emitted results to its `Sink` without ever waiting on it. It talks only to seams, which
the assembly (pipeline.pipeline) wires: the sink is the outputs' dispatcher; progress (a
`Progress` callable) is what feeds the systemd watchdog; with snapshots on, emitted results go
to the snapshot writer in front of the dispatcher instead, each label change with its frame
(snapshots.writer: it sends them on once the JPEG is saved, and never makes this thread wait);
with the status page on, each classified frame goes to its preview (core.latest, a one-slot
handoff: an assignment, never a wait).

The threads a frame wakes (an on-demand reader, told the slot is free; the
outputs' threads, handed the last result) are woken right before invoke():
they then run while the model does, instead of taking the GIL from this
thread between two inferences. Before this thread waits for anything (a
frame, `max_fps`) or decodes a picture (which takes a while), it wakes them
then, so no result waits for the next frame.

With motion gating (pipeline.motion), a frame whose picture did not change is not decoded nor
classified: the gate decides on its thumbnail as the frame is taken, and what is still only has
its heartbeat sent (a repeat of the last result, marked `still`).

With the next frame already waiting when invoke() returns (the model is the bottleneck), the
frame's finish (its labels, result, filter and sending) is left to the finisher thread instead,
handed over at that same release: it then runs while the model does, and the next invoke()
starts as soon as its input is written (pipeline.finisher). What is left travels as values
(pipeline.work: `Send`, `Finish`), never as closures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from edgecam.common.throttle import LogThrottle
from edgecam.common.worker import Worker
from edgecam.core.frames import IDENTITY, WHOLE, Frame, FrameFormatError
from edgecam.core.protocols import Progress, Sink
from edgecam.core.results import Result
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.finisher import Finisher
from edgecam.pipeline.motion import gate_frame
from edgecam.pipeline.work import Finish, InferenceSettings, Send, Work, classified
from edgecam.pipeline.zones import next_due
from edgecam.snapshots.writer import Shot

log = logging.getLogger(__name__)

_TAKE_TIMEOUT_S = 0.5
_LOG_EVERY = 100


class Inference:
    def __init__(self, settings: InferenceSettings, slot: FrameSlot, stats: Stats, sink: Sink,
                 progress: Progress, source_idle: Callable[[], bool]) -> None:
        self.settings = settings
        self._slot = slot
        self._stats = stats
        self._sink = sink  # the outputs' (the dispatcher's emit), as the assembly wires it
        self._progress = progress  # the watchdog's kick, as the assembly wires it
        self._source_idle = source_idle
        self._worker = Worker("edgecam-inference", self._run)
        self._stop = self._worker.stopping
        self.first_result = threading.Event()
        self.last_result: Result | None = None
        self.error: BaseException | None = None
        self._bad_frames = LogThrottle(_LOG_EVERY)
        self._taken = False  # a frame was taken and the slot's reader not told yet
        #: what the last frames left to do, in order: results to send (with snapshots on, a label
        #: change's frame too), and with the next frame waiting, a frame's whole finish
        self._unsent: list[Work] = []
        self._hand_over = False  # _unsent holds a frame's finish: it goes to the finisher
        self._finisher = Finisher(self._do, self._finisher_failed)

    def start(self) -> None:
        self._finisher.start()
        self._worker.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._worker.stop(timeout)  # its last release hands over what is left
        self._finisher.stop(timeout)

    def _run(self, stop: threading.Event) -> None:
        try:
            self._loop()
        except Exception as exc:
            self.error = exc
            log.exception("inference failed")

    def _finisher_failed(self, exc: BaseException) -> None:
        self.error = exc
        self._stop.set()

    def _loop(self) -> None:
        try:
            self._classify_frames()
        finally:
            self._release()  # the last result still reaches the outputs

    def _classify_frames(self) -> None:
        next_frame = 0.0  # max_fps's, and with zones the first zone's next turn
        while not self._stop.is_set():
            settings = self.settings
            if settings.zones:
                next_frame = max(next_frame, next_due(settings.zones))
            delay = next_frame - time.monotonic()
            if delay > 0:
                self._release()
                if self._stop.wait(delay):
                    return
            frame = self._slot.take(0.0, notify=False)
            if frame is None:  # none waiting: wake the others before waiting for one
                self._release()
                frame = self._slot.take(_TAKE_TIMEOUT_S, notify=False)
            taken = time.monotonic()
            if frame is None:
                if self._source_idle():
                    self._progress()  # nothing to classify, but the source is being handled
                continue
            self._taken = True
            settings = self.settings  # a reload that landed while this thread waited applies
            if frame.age_ms(taken) > settings.pipeline.max_frame_age_ms:
                self._stats.drop("stale")
                continue
            if self._still(frame, settings, taken):
                continue
            if not frame.picture.instant:
                self._release()  # decoding takes a while (a JPEG, a video frame): run meanwhile
            try:
                image = frame.decode()
                if settings.zones:
                    self._classify_zones(frame, image, settings, taken)
                else:
                    self._classify(frame, image, settings)
            except FrameFormatError as exc:
                self._bad_frame(exc)
                continue
            if settings.preview is not None:
                settings.preview(frame.seq, frame.captured_wall, image)
            self._progress()
            if settings.pipeline.max_fps:
                next_frame = taken + 1.0 / settings.pipeline.max_fps

    def _classify(self, frame: Frame, image: np.ndarray, settings: InferenceSettings) -> None:
        started = time.monotonic()
        if frame.picture.classification is not None:  # the AI Camera classified it on its sensor
            self._unsent += self._finish(frame, image, classified(
                frame, frame.picture.classification, started, started), settings)
            return
        labels = settings.classifier.infer(image, self._release)
        done = time.monotonic()
        if self._finisher.busy or (self._slot.waiting() and not settings.pipeline.max_fps):
            # The next frame waits for this thread: this one is finished beside its invoke.
            self._unsent.append(Finish(frame, image, labels, settings, started, done))
            self._hand_over = True
        else:
            self._unsent += self._finish(frame, image, classified(frame, labels(), started, done),
                                         settings)

    def _finish(self, frame: Frame, image: np.ndarray, result: Result,
                settings: InferenceSettings) -> list[Send]:
        """A classified frame's result, counted and through the filter: what is left to send."""
        self._stats.classified(result.latency_ms, result.classification.inference_ms)
        self._set_last_result(result)
        emitted = settings.filter.offer(result)
        if emitted is None:
            return []
        self._stats.count("emitted")
        return [Send(emitted, self._shot(settings, settings.filter, frame, image))]

    def _do(self, work: Work) -> None:
        """Runs one piece of what a frame left (on this thread at a release, or the finisher's)."""
        if isinstance(work, Send):
            self._send(work)
            return
        for send in self._finish(work.frame, work.image, work.result(), work.settings):
            self._send(send)

    def _classify_zones(self, frame: Frame, image: np.ndarray, settings: InferenceSettings,
                        taken: float) -> None:
        """Each zone due, from the one decoded frame; the frame counts once as classified."""
        result: Result | None = None
        inference_ms = 0.0
        for zone in settings.zones:
            if not zone.due(taken) or not zone.moved:
                continue
            zone.taken(taken)
            started = time.monotonic()
            # The AI Camera classified the zone itself: it is the sensor's region (models.imx500).
            classification = (frame.picture.classification
                              or zone.classifier.classify(zone.image(image), self._release))
            result = classified(frame, classification, started, time.monotonic(), zone.name)
            inference_ms += classification.inference_ms
            self._stats.count_zone(zone.name, "classified")
            emitted = zone.filter.offer(result)
            if emitted is not None:
                self._stats.count("emitted")
                self._stats.count_zone(zone.name, "emitted")
                self._unsent.append(Send(emitted, self._shot(settings, zone.filter, frame, image,
                                                             zone.crop)))
        if result is not None:
            self._stats.classified(result.latency_ms, inference_ms)
            self._set_last_result(result)

    def _still(self, frame: Frame, settings: InferenceSettings, taken: float) -> bool:
        """Whether the motion gate keeps `frame` from the model (or its picture is unusable);
        the heartbeats of what is still are sent all the same."""
        try:
            moved, repeats = gate_frame(frame, taken, settings.motion, settings.zones, settings.filter,
                                        self._stats)
        except FrameFormatError as exc:
            self._bad_frame(exc)
            return True
        self._unsent += [Send(repeated) for repeated in repeats]
        if not moved:
            self._progress()  # a still scene is progress
        return not moved

    def _set_last_result(self, result: Result) -> None:
        self.last_result = result
        if not self.first_result.is_set():
            self.first_result.set()

    def _send(self, send: Send) -> None:
        snapshots = self.settings.snapshots
        if snapshots is None:
            self._sink(send.result)
        else:
            snapshots(send.result, send.shot)

    def _release(self) -> None:
        """Wakes the threads the last frame concerns: the slot's reader, the outputs'.

        Called right before invoke() (they run while the model does), before a decode that
        takes a while, and before this thread waits for anything. What the last frames left
        goes to the finisher if it holds a frame's finish, or if the finisher is still busy
        (so that results keep their order); else it is done here.
        """
        # Results first: an immediate output's emit() may make a system call (it releases the
        # GIL), which a reader woken before could seize.
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            if self._hand_over or self._finisher.busy:
                self._hand_over = False
                self._finisher.hand_over(unsent)
            else:
                for work in unsent:
                    self._do(work)
        if self._taken:
            self._taken = False
            self._slot.notify_taken()

    def _shot(self, settings: InferenceSettings, result_filter: ResultFilter, frame: Frame,
              image: np.ndarray, crop: tuple[float, float, float, float] = WHOLE) -> Shot | None:
        """The full frame of a label change the filter just emitted, if snapshots are on."""
        if settings.snapshots is None or not result_filter.changed:
            return None
        if frame.fit not in (None, IDENTITY):  # fitted to the model by the capture a reload replaces
            self._stats.count("snapshots_dropped")
            return None
        return Shot(image, crop)

    def _bad_frame(self, exc: Exception) -> None:
        self._stats.drop("bad_frame")
        if self._bad_frames():
            log.warning("unusable frame dropped (%d so far): %s", self._bad_frames.count, exc)
