"""The daemon's life cycle: start in order, run, reload on SIGHUP, stop in reverse.

Start: config → classifier → outputs → source → capture thread → inference
thread → first result → READY=1. The main thread then only handles signals,
STATUS= and periodic stats; SIGTERM/SIGINT stop everything in reverse order
in `finally`. SIGHUP re-reads the config; a config that does not load, or a
model that does not, is refused as a whole and the daemon keeps running on
the old one. Only what changed is rebuilt.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

from edgecam.config import Config, load_config
from edgecam.daemon.faults import Faults
from edgecam.daemon.logs import set_level
from edgecam.daemon.memory import pin_mmap_threshold
from edgecam.daemon.notify import Notifier, Watchdog
from edgecam.daemon.signals import Signals
from edgecam.errors import EX_SOFTWARE, ConfigError, EdgecamError
from edgecam.models.base import ImageClassifier
from edgecam.models.factory import make_classifier, refresh_classifier
from edgecam.models.preprocess import FrameFitter
from edgecam.outputs import Output, Outputs
from edgecam.outputs.journal import JournalOutput, Sender, systemd_sender
from edgecam.outputs.metrics import MetricsOutput
from edgecam.outputs.mqtt import MqttOutput
from edgecam.outputs.socket import SocketOutput
from edgecam.outputs.stdout import PrintOutput
from edgecam.pipeline.capture import Capture
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.inference import Inference, InferenceSettings
from edgecam.pipeline.slot import FrameSlot
from edgecam.pipeline.stats import Stats, status_line
from edgecam.sources import Source, make_source

log = logging.getLogger(__name__)

# After invoke() releases the GIL, the inference thread may wait this long for it while
# another Python thread runs (CPython's default is 5 ms, most of a 6.5 ms inference).
SWITCH_INTERVAL_S = 0.0005
_LOOP_S = 0.5
_STATUS_S = 5.0
_IDLE_ALIVE_S = 2.0  # the capture thread must have shown life this recently to excuse a pause


class Daemon:
    """`edgecam run`. Side effects (sd_notify, the journal) are injectable for tests."""

    def __init__(self, config_path: str | None, *, source: str | None = None,
                 print_results: bool = False, notifier: Notifier | None = None,
                 journal_sender: Callable[[], Sender | None] = systemd_sender) -> None:
        self._config_path = config_path
        self._source_override = source
        self._print_results = print_results
        self._notifier = notifier or Notifier()
        self._journal_sender = journal_sender
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._signals: Signals | None = None
        self._stats = Stats()
        self._slot = FrameSlot(lambda frame: self._stats.drop(frame.superseded_reason))
        self._config: Config | None = None
        self._outputs: Outputs | None = None
        self._capture: Capture | None = None
        self._inference: Inference | None = None
        self._print: PrintOutput | None = PrintOutput() if print_results else None

    # -- signals -----------------------------------------------------------------------------

    def _check_signals(self, timeout: float = 0.0) -> None:
        """Acts on the signals received, waiting up to `timeout` seconds for one."""
        assert self._signals is not None
        for signum in self._signals.wait(timeout):
            if signum == signal.SIGHUP:
                self._reload.set()
            else:
                self._stop.set()

    def _stopping(self) -> bool:
        self._check_signals()
        return self._stop.is_set()

    # -- life cycle --------------------------------------------------------------------------

    def run(self) -> int:
        """Runs until stopped; returns the exit code. User errors at start raise EdgecamError."""
        self._signals = Signals((signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        pin_mmap_threshold()
        try:
            if not self._start():
                return 0
            return self._serve()
        finally:
            self._shutdown()
            self._signals.close()

    def _load(self) -> Config:
        config = load_config(self._config_path)
        if self._source_override:
            config = dataclasses.replace(
                config, camera=dataclasses.replace(config.camera, source=self._source_override))
        return config

    def _start(self) -> bool:
        """Starts every part in order; False if a stop signal came first."""
        config = self._config = self._load()
        set_level(config.log_level)
        self._notifier.status("loading the model")
        classifier = make_classifier(config.model)
        if self._stopping():
            return False
        outputs = self._outputs = Outputs(self._build_outputs(config, {}), self._stats)
        outputs.start()
        source = self._first_source(config, classifier)
        if self._stopping():
            return False
        settings = InferenceSettings(classifier, config.pipeline, ResultFilter(config.outputs))
        watchdog = Watchdog(self._notifier)
        self._inference = Inference(settings, self._slot, self._stats, outputs, watchdog,
                                    self._source_idle, Faults())
        self._start_capture(config, classifier, source)
        self._inference.start()
        self._notifier.status("waiting for the first frame")
        while not self._inference.first_result.is_set():
            self._check_signals(_LOOP_S / 5)
            if self._stop.is_set() or self._finished() is not None:
                return not self._stop.is_set()
            self._stats.tick()
        self._notifier.ready(self._status())
        watchdog.arm()
        log.info("running: %s → %s", config.camera.source,
                 ", ".join(o.name for o in outputs.outputs) or "no outputs")
        return True

    def _serve(self) -> int:
        last_status = time.monotonic()
        while True:
            self._check_signals(_LOOP_S)
            if self._stop.is_set():
                return 0
            now = time.monotonic()
            self._stats.tick(now)
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload()
            code = self._finished()
            if code is not None:
                return code
            snapshot = self._stats.snapshot()
            assert self._outputs is not None
            self._outputs.stats(snapshot, now)
            if now - last_status >= _STATUS_S:
                last_status = now
                self._notifier.status(self._status(snapshot))

    def _finished(self) -> int | None:
        """An exit code once the pipeline cannot go on: a file source ended, or inference died."""
        if self._inference is not None and self._inference.error is not None:
            log.error("stopping: inference failed: %s", self._inference.error)
            return EX_SOFTWARE
        if self._capture is not None and self._capture.ended.is_set():
            log.info("stopping: the source ended")
            return 0
        return None

    def _shutdown(self) -> None:
        """Stops in reverse order; every step runs even if an earlier one fails."""
        self._notifier.stopping()
        for step in (self._stop_capture, self._stop_inference, self._close_outputs):
            try:
                step()
            except Exception:
                log.exception("error while stopping")
        self._notifier.close()

    def _stop_capture(self) -> None:
        if self._capture is not None:
            self._capture.stop(timeout=0.5)

    def _stop_inference(self) -> None:
        if self._inference is not None:
            self._inference.stop(timeout=0.5)

    def _close_outputs(self) -> None:
        if self._outputs is not None:
            self._outputs.close(timeout=0.5)

    # -- parts -------------------------------------------------------------------------------

    def _first_source(self, config: Config, classifier: ImageClassifier) -> Source | None:
        """Opens the source once, so a missing camera or file fails the start with one line.

        A network stream that is down is not a user mistake (the camera may be
        rebooting): it is left to the capture thread, which keeps retrying.
        """
        source = make_source(config.camera, classifier.input_size, config.pipeline.max_frame_age_ms)
        if source.network:
            return None
        source.open()
        return source

    def _start_capture(self, config: Config, classifier: ImageClassifier, source: Source | None) -> None:
        camera, input_size = config.camera, classifier.input_size
        behind_ms = config.pipeline.max_frame_age_ms
        self._capture = Capture(lambda: make_source(camera, input_size, behind_ms), self._slot,
                                self._stats, camera.stall_timeout_s, first_source=source,
                                fit=FrameFitter(input_size, config.model.resize))
        self._capture.start()

    def _source_idle(self) -> bool:
        """True while no frames come but the capture thread is alive and handling it."""
        capture = self._capture
        return (capture is not None and not capture.flowing
                and time.monotonic() - capture.alive_at < _IDLE_ALIVE_S)

    def _build_outputs(self, config: Config, current: dict[str, Output]) -> list[Output]:
        """The outputs `config` asks for, reusing those in `current` whose settings are unchanged."""
        outputs: list[Output] = []
        if config.outputs.journal.enabled:
            outputs.append(current.get("journal") or JournalOutput(self._journal_sender()))
        if config.outputs.socket.enabled:
            socket_config = config.outputs.socket
            existing = current.get("socket")
            if isinstance(existing, SocketOutput) and existing.path == socket_config.path:
                if existing.mode != socket_config.mode:
                    existing.chmod(socket_config.mode)
                outputs.append(existing)
            else:
                server = SocketOutput(socket_config.path, socket_config.mode, self._stats)
                server.start()
                outputs.append(server)
        # MQTT: built first (a bad password or TLS file fails here, before anything changed), started
        # last, after the old connection said `offline`: the broker allows one per client id.
        old_mqtt = current.get("mqtt")
        mqtt: MqttOutput | None = None
        if config.outputs.mqtt.enabled:
            mqtt_config = config.outputs.mqtt
            if isinstance(old_mqtt, MqttOutput) and old_mqtt.unchanged(mqtt_config):
                mqtt = old_mqtt
            else:
                mqtt = MqttOutput(mqtt_config, self._stats)
        if config.outputs.metrics.enabled:
            listen = config.outputs.metrics.listen
            existing = current.get("metrics")
            if isinstance(existing, MetricsOutput):
                existing.listen_on(listen)  # the same instance: histograms go on counting
                outputs.append(existing)
            else:
                metrics = MetricsOutput(listen, self._stats)
                metrics.start()
                outputs.append(metrics)
        if mqtt is not None:
            if mqtt is not old_mqtt:
                if old_mqtt is not None:
                    old_mqtt.close()
                mqtt.start()
            outputs.append(mqtt)
        if self._print is not None:
            outputs.append(self._print)
        return outputs

    def _status(self, snapshot: dict | None = None) -> str:
        latest = self._inference.latest if self._inference else None
        return status_line(snapshot or self._stats.snapshot(),
                           f"{latest.top.label} {latest.top.score:.2f}" if latest else None)

    # -- reload ------------------------------------------------------------------------------

    def _apply_reload(self) -> None:
        self._notifier.reloading()
        try:
            self._reload_config()
        finally:
            self._notifier.ready(self._status())

    def _reload_config(self) -> None:
        old = self._config
        assert old is not None and self._inference is not None and self._outputs is not None
        try:
            new = self._load()
        except ConfigError as exc:
            for line in exc.lines:
                log.error("%s", line)
            log.error("reload refused: %d error(s); still running on the previous config",
                      len(exc.lines))
            return
        settings = self._inference.settings
        classifier = settings.classifier
        try:
            # A head file rewritten by `edgecam learn` is re-read even if the config is unchanged.
            classifier = refresh_classifier(classifier, old.model, new.model)
            current = {o.name: o for o in self._outputs.outputs}
            outputs = self._build_outputs(new, current) if new.outputs != old.outputs else None
        except EdgecamError as exc:
            log.error("reload refused: %s; still running on the previous config", exc)
            return
        set_level(new.log_level)
        result_filter = (ResultFilter(new.outputs) if new.outputs != old.outputs
                         else settings.filter)
        self._inference.settings = InferenceSettings(classifier, new.pipeline, result_filter)
        if outputs is not None:
            self._outputs.replace(outputs)
        if (new.camera != old.camera or new.model.resize != old.model.resize
                or new.pipeline.max_frame_age_ms != old.pipeline.max_frame_age_ms
                or classifier.input_size != settings.classifier.input_size):
            assert self._capture is not None
            self._capture.stop(timeout=1.0)
            self._slot.clear()
            self._start_capture(new, classifier, None)
        self._config = new
        changed = [name for name in ("camera", "model", "pipeline", "outputs", "log_level")
                   if getattr(new, name) != getattr(old, name)]
        if classifier is not settings.classifier and new.model == old.model:
            changed.append("model (files on disk)")
        log.info("reloaded: %s", ", ".join(changed) if changed else "nothing changed")
