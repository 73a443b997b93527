"""The pipeline: slot, capture, inference and outputs, started in order and stopped in reverse.

A Pipeline is built complete from the config and classifier it starts with
(its stages exist from then on; the daemon asks it, never its parts, what it
needs: `first_result_seen`, `waiting_for`, `finished`, `last_result`). It
wires the stages' seams: the progress callable it is given (the watchdog's
kick) goes to inference. One ExitStack owns every running part (DESIGN.md,
habit 2): `start_outputs` and `start` push each part's stop as they start
it, so a failure half-way, or a stop signal, unwinds exactly what was
started; `close` unwinds all. A reload (`prepare`, `apply`) builds every
new part first (the outputs through outputs.registry.plan,
which cleans up after itself) and only then swaps them in, so a reload that
fails leaves the running pipeline as it was. The snapshot writer, when on,
starts before inference and stops after it (what it holds still reaches the
outputs); a reload that changes `snapshots` stops the old writer before the
new one takes over, so results keep their order.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from edgecam.config import Config, ModelConfig, SnapshotsConfig
from edgecam.config.diff import ConfigDiff, whole_frames
from edgecam.core.frames import IDENTITY
from edgecam.core.protocols import Progress
from edgecam.core.results import Result
from edgecam.core.sensor import OnSensor
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.errors import EX_SOFTWARE
from edgecam.models.base import ImageClassifier, runs_on_sensor
from edgecam.models.factory import close_classifier
from edgecam.models.preprocess import FrameFitter
from edgecam.outputs import registry
from edgecam.outputs.base import OutputContext
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.pipeline.capture import Capture
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.inference import Inference
from edgecam.pipeline.motion import MotionGate, make_gate
from edgecam.pipeline.work import InferenceSettings, Preview, ShotSink
from edgecam.pipeline.zones import Zone, build_zones, frame_size, zone_names
from edgecam.snapshots.writer import SnapshotWriter
from edgecam.sources import Source, make_source

log = logging.getLogger(__name__)

_IDLE_ALIVE_S = 2.0  # the capture thread must have shown life this recently to excuse a pause
_STOP_S = 0.5


@dataclass
class Reload:
    """What a reload built, ready to be swapped in."""

    config: Config
    classifier: ImageClassifier
    outputs: registry.OutputPlan | None
    zones: tuple[Zone, ...]
    classifiers: dict[ModelConfig, ImageClassifier]


class Pipeline:
    """Built complete from the config and classifier it starts with: its parts exist from then
    on (`start_outputs` and `start` only run them), so nothing here or in the daemon asks
    whether a stage is there yet."""

    def __init__(self, config: Config, classifier: ImageClassifier, stats: Stats,
                 context: OutputContext, progress: Progress) -> None:
        self.stats = stats
        self._context = context
        #: the config it runs (the daemon's effective one: with the fleet's heads and model)
        self.config = config
        self._stack = ExitStack()
        self.slot = FrameSlot(lambda frame: stats.drop(frame.superseded_reason))
        self.dispatcher = Dispatcher([], stats)
        zones, self._classifiers = build_zones(config, {config.model: classifier}, (), recover=True)
        self._stack.callback(self._close_classifiers)  # last: after capture, which reads the sensor
        self.stats.set_zones(zone_names(config))
        self._snapshots: SnapshotWriter | None = None  # with snapshots on, once started
        settings = InferenceSettings(classifier, config.pipeline, ResultFilter(config.outputs), zones,
                                     None, self._preview(config), frame_gate(config))
        self._inference = Inference(settings, self.slot, stats, self.dispatcher.emit, progress,
                                    self.source_idle)
        self._capture = self._make_capture(config, classifier)

    @property
    def last_result(self) -> Result | None:
        return self._inference.last_result

    @property
    def classifier(self) -> ImageClassifier:
        """The whole frame's classifier, as running."""
        return self._inference.settings.classifier

    def zone_classifiers(self) -> dict[str, ImageClassifier]:
        return {zone.name: zone.classifier for zone in self._inference.settings.zones}

    def first_result_seen(self) -> bool:
        return self._inference.first_result.is_set()

    @property
    def waiting_for(self) -> str | None:
        """Why no frame can come (the source's last failed open), until one does."""
        return self._capture.waiting

    def output_names(self) -> list[str]:
        return [output.name for output in self.dispatcher.outputs]

    def send_stats(self, figures: dict[str, Any] | Callable[[], dict[str, Any]], now: float) -> None:
        """The stats to each output whose interval has passed (Dispatcher.stats)."""
        self.dispatcher.stats(figures, now)

    @property
    def error(self) -> BaseException | None:
        """What ended the inference thread (or its finisher), if anything did."""
        return self._inference.error

    def finished(self) -> int | None:
        """An exit code once the pipeline cannot go on: a file source ended, or inference died."""
        if self.error is not None:
            log.error("stopping: inference failed: %s", self.error)
            return EX_SOFTWARE
        # A file that ended: once inference took its last frame (that frame's result still goes
        # out: stopping waits for inference, then delivers what the outputs have queued).
        if self._capture.ended.is_set() and self.slot.wait_taken(0):
            log.info("stopping: the source ended")
            return 0
        return None

    def start_outputs(self) -> None:
        """The outputs first: a socket in use or a bad MQTT file fails before the camera opens."""
        config = self.config
        plan = registry.plan(config, [], self._context, zone_names(config))
        self.dispatcher.start()
        self._stack.callback(self.dispatcher.close, _STOP_S)
        registry.commit(plan, self.dispatcher)

    def start(self, source: Source | None) -> None:
        """Inference, then capture (its first frame then has somewhere to go); `source` is the
        start's, opened already (None: capture opens its own)."""
        self._snapshots = self._start_snapshots(self.config.snapshots)
        self._stack.callback(self._stop_snapshots)
        self._inference.settings = dataclasses.replace(self._inference.settings,
                                                       snapshots=self._shots())
        self._inference.start()
        self._stack.callback(self._inference.stop, _STOP_S)
        self._capture.start(source)
        self._stack.callback(self._stop_capture)

    def prepare(self, old: Config, new: Config, classifier: ImageClassifier) -> Reload:
        """Builds what `new` needs that `old` did not; EdgecamError (nothing left behind) if any fails."""
        running = {**self._classifiers, new.model: classifier}
        zones, classifiers = build_zones(new, running, self._inference.settings.zones)
        outputs = None
        if ConfigDiff(old, new).outputs:
            outputs = registry.plan(new, self.dispatcher.outputs, self._context, zone_names(new))
        return Reload(new, classifier, outputs, zones, classifiers)

    def apply(self, old: Config, reload: Reload) -> None:
        """Swaps a prepared reload in; the source is reopened only if what it reads changed."""
        new, classifier, diff = reload.config, reload.classifier, ConfigDiff(old, reload.config)
        settings = self._inference.settings
        result_filter = ResultFilter(new.outputs) if diff.result_filter else settings.filter
        self.stats.set_zones(zone_names(new))  # before a new zone is counted
        if diff.snapshots:
            self._stop_snapshots()  # what it holds goes out first; meanwhile results go straight out
            self._snapshots = self._start_snapshots(new.snapshots)
        self._inference.settings = InferenceSettings(classifier, new.pipeline, result_filter,
                                                    reload.zones, self._shots(), self._preview(new),
                                                    frame_gate(new))
        if not new.web.enabled:
            self._context.preview.clear()
        self._classifiers = reload.classifiers
        if reload.outputs is not None:
            registry.commit(reload.outputs, self.dispatcher)
        self.config = new
        if (diff.reopen_source or classifier.input_size != settings.classifier.input_size
                or on_sensor(new, classifier) != on_sensor(old, settings.classifier)):
            self._stop_capture()
            self.slot.clear()
            self._capture = self._make_capture(new, classifier)
            self._capture.start()

    def close(self) -> None:
        """Stops capture, inference and the outputs, in that order, whatever fails."""
        self._stack.close()

    def source_idle(self) -> bool:
        """True while no frames come but the capture thread is alive and handling it."""
        capture = self._capture
        return not capture.flowing and time.monotonic() - capture.alive_at < _IDLE_ALIVE_S

    def _make_capture(self, config: Config, classifier: ImageClassifier) -> Capture:
        camera, input_size = config.camera, frame_size(config, classifier.input_size)
        behind_ms = config.pipeline.max_frame_age_ms
        # With zones the frame stays whole: each zone crops its part and fits that to its model;
        # with snapshots too, and the classifier fits it (on the inference thread) as it reads it.
        fit = IDENTITY if whole_frames(config) else FrameFitter(input_size, config.model.resize)
        sensor = on_sensor(config, classifier)
        return Capture(lambda: make_source(camera, input_size, behind_ms, sensor), self.slot,
                       self.stats, camera.stall_timeout_s, fit=fit)

    def _close_classifiers(self) -> None:
        """Releases the devices the running classifiers hold (an accelerator's), once stopped."""
        running = [self._inference.settings.classifier, *self._classifiers.values()]
        for classifier in {id(c): c for c in running}.values():
            close_classifier(classifier)

    def _preview(self, config: Config) -> Preview | None:
        """The status page's preview, as a seam inference feeds (with the page on)."""
        return self._context.preview.put if config.web.enabled else None

    def _shots(self) -> ShotSink | None:
        """The snapshot writer in front of the outputs, as the seam inference sends to."""
        return self._snapshots.emit if self._snapshots is not None else None

    def _start_snapshots(self, config: SnapshotsConfig) -> SnapshotWriter | None:
        if not config.enabled:
            return None
        writer = SnapshotWriter(config, self.dispatcher.emit, self.stats)
        writer.start()
        return writer

    def _stop_snapshots(self) -> None:
        if self._snapshots is not None:
            self._snapshots.close()

    def _stop_capture(self) -> None:
        self._capture.stop(timeout=_STOP_S)


def on_sensor(config: Config, classifier: ImageClassifier) -> OnSensor | None:
    """The AI Camera's network and its region (the one zone's, if any) when it classifies."""
    if not runs_on_sensor(classifier):
        return None
    return OnSensor(classifier, config.zones[0].crop) if config.zones else OnSensor(classifier)


def frame_gate(config: Config) -> MotionGate | None:
    """The whole frame's motion gate (without zones; with zones each has its own)."""
    return None if config.zones else make_gate(config.pipeline.motion)
