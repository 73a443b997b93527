"""The daemon's life cycle: start in order, run, reload on SIGHUP, stop in reverse.

Start: config → classifier → outputs → source → inference thread → capture
thread → first result → READY=1 (the parts themselves are pipeline.Pipeline's).
A camera that does not answer does not fail the start: READY=1 comes once it
is found missing, and STATUS= says what the service waits for until it does.
The main thread then only handles signals, STATUS= and periodic stats;
SIGTERM/SIGINT stop everything in reverse order in `finally`. SIGHUP re-reads
the config; a config, model or output that does not load is refused as a
whole and the daemon keeps running on the old one. Only what changed is rebuilt.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

from edgecam.common.fds import fit_limit
from edgecam.config import SINGLE, Camera, Config, load_config
from edgecam.config.diff import ConfigDiff
from edgecam.config.files import source_override
from edgecam.core.stats import Stats, status_line
from edgecam.daemon import ipfilter
from edgecam.daemon.board_watch import BoardWatch
from edgecam.daemon.claims import Claims
from edgecam.daemon.faults import Faults
from edgecam.daemon.logs import set_level
from edgecam.daemon.memory import pin_mmap_threshold
from edgecam.daemon.notify import Notifier, StartTimeout, Watchdog
from edgecam.daemon.signals import Signals
from edgecam.errors import ConfigError, EdgecamError
from edgecam.fleet.member import Fleet, NoFleet, make_fleet
from edgecam.models.base import ImageClassifier, start_progress
from edgecam.models.factory import close_classifier, make_classifier, on_camera_sensor, refresh_classifier
from edgecam.outputs.base import OutputContext, Sender
from edgecam.outputs.journal import systemd_sender
from edgecam.pipeline.pipeline import Pipeline, on_sensor
from edgecam.pipeline.zones import frame_size
from edgecam.sources import Source, make_source

log = logging.getLogger(__name__)

# After invoke() releases the GIL, the inference thread may wait this long for it while
# another Python thread runs (CPython's default is 5 ms, most of a 6.5 ms inference).
SWITCH_INTERVAL_S = 0.0005
_LOOP_S = 0.5
_STATUS_S = 5.0


class Daemon:
    """`edgecam run`. Side effects (sd_notify, the journal) are injectable for tests."""

    def __init__(self, config_path: str | None, *, camera: Camera = SINGLE, source: str | None = None,
                 print_results: bool = False, print_text: bool = False, notifier: Notifier | None = None,
                 journal_sender: Callable[[], Sender | None] = systemd_sender) -> None:
        self._config_path = config_path
        self._camera = camera
        self._claims = Claims(camera, config_path)
        self._source_override = source
        self._notifier = notifier or Notifier()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._signals: Signals | None = None
        self._stats = Stats()
        self._board = BoardWatch(self._stats)
        self._watchdog = Watchdog(self._notifier)
        self._context = OutputContext(self._stats, journal_sender, print_results, camera.name,
                                      print_text=print_text)
        self._close_pipeline: Callable[[], None] = lambda: None  # once built: its close
        self._fleet: Fleet | NoFleet = NoFleet()

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
        fit_limit()  # the connection caps must fit in the descriptor limit
        try:
            pipeline = self._start()
            return 0 if pipeline is None else self._serve(pipeline)
        finally:
            self._shutdown()
            self._signals.close()

    def _load(self) -> Config:
        config = load_config(self._config_path, self._camera)
        if self._source_override:
            config = dataclasses.replace(
                config, camera=dataclasses.replace(config.camera,
                                                   source=source_override(self._source_override)))
        return config

    def _fleet_reload(self, why: str) -> None:
        """The fleet's request (its threads): the main loop reloads as on SIGHUP."""
        log.info("fleet: %s: reloading", why)
        self._reload.set()

    def _start(self) -> Pipeline | None:
        """Starts every part in order; None if a stop signal came first."""
        written = self._load()
        self._fleet = make_fleet(written, self._stats, self._fleet_reload)
        config = self._fleet.effective(written)
        set_level(config.log_level)
        self._claims.hold(config)  # another instance using its socket, ports or camera: one line
        self._warn_if_filtered(config)
        self._notifier.status("loading the model")
        classifier = make_classifier(config.model, recover=True)
        if self._stopping():
            return None
        # The watchdog's kick is the pipeline's progress; the fault hook (tests only) wraps it.
        pipeline = Pipeline(config, classifier, self._stats, self._context,
                            Faults().wrap(self._watchdog.kick, self._stop))
        self._close_pipeline = pipeline.close
        pipeline.start_outputs()
        with ExitStack() as opened:
            source = self._first_source(config, classifier)
            if source is not None:
                opened.callback(source.close)  # until the capture thread owns it
            if self._stopping():
                return None
            pipeline.start(source)
            opened.pop_all()
        self._fleet.start()
        self._notifier.status("waiting for the first frame")
        if not self._first_result(pipeline, StartTimeout(self._notifier, start_progress(classifier))):
            return None if self._stop.is_set() else pipeline
        self._notifier.ready(self._status(pipeline))
        self._watchdog.arm()
        log.info("running: %s → %s", config.camera.source,
                 ", ".join(pipeline.output_names()) or "no outputs")
        return pipeline

    def _first_result(self, pipeline: Pipeline, extend: StartTimeout) -> bool:
        """Waits for the first result, or for the camera to be found missing (READY then says
        what the service waits for; `extend` asks for time while a network uploads); False if a
        stop signal came or the pipeline ended first."""
        while not pipeline.first_result_seen() and pipeline.waiting_for is None:
            self._check_signals(_LOOP_S / 5)
            if self._stop.is_set() or pipeline.finished() is not None:
                return False
            extend.poll()
            self._stats.tick()
        return True

    def _serve(self, pipeline: Pipeline) -> int:
        last_status = time.monotonic()
        while True:
            self._check_signals(_LOOP_S)
            if self._stop.is_set():
                return 0
            now = time.monotonic()
            self._stats.tick(now)
            self._board.sample(now)
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload(pipeline)
            code = pipeline.finished()
            if code is not None:
                return code
            # The figures (percentiles of 2 x 1000 samples) only when STATUS= or an output is due.
            figures = self._stats.figures() if now - last_status >= _STATUS_S else None
            pipeline.send_stats(self._stats.figures if figures is None else figures, now)
            if figures is not None:
                last_status = now
                self._notifier.status(self._status(pipeline, figures))

    def _shutdown(self) -> None:
        """Stops in reverse order; every step runs even if an earlier one fails."""
        self._notifier.stopping()
        for close in (self._fleet.close, self._close_pipeline, self._claims.close):
            try:
                close()
            except Exception:
                log.exception("error while stopping")
        self._notifier.close()

    def _first_source(self, config: Config, classifier: ImageClassifier) -> Source | None:
        """Opens a file or folder source once, so a wrong path fails the start with one line
        (and an AI Camera that is not the camera camera.source names, picamera2:N).

        A camera or a stream that does not answer is not a user mistake (unplugged, booting,
        its ribbon loose, picamera2 not installed yet): it is left to the capture thread, which
        keeps retrying, and the daemon starts and says what it is waiting for.
        """
        source = make_source(config.camera, frame_size(config, classifier.input_size),
                             config.pipeline.max_frame_age_ms, on_sensor(config, classifier))
        if source.awaited:
            return None
        source.open()
        return source

    def _warn_if_filtered(self, config: Config) -> None:
        """One line when the unit's IP filter blocks what the config reaches (it would time out)."""
        blocked = ipfilter.check(config, self._camera)
        if blocked:
            log.warning("%s", blocked)

    def _status(self, pipeline: Pipeline, figures: dict | None = None) -> str:
        if pipeline.waiting_for is not None:
            return f"waiting for the camera: {pipeline.waiting_for.removeprefix('camera.source: ')}"
        last = pipeline.last_result
        return status_line(figures or self._stats.figures(),
                           f"{last.top.label} {last.top.score:.2f}" if last else None)

    # -- reload ------------------------------------------------------------------------------

    def _apply_reload(self, pipeline: Pipeline) -> None:
        self._notifier.reloading()
        try:
            self._reload_config(pipeline)
        finally:
            self._notifier.ready(self._status(pipeline))

    def _reload_config(self, pipeline: Pipeline) -> None:
        old = pipeline.config
        try:
            written = self._load()
        except ConfigError as exc:
            for line in exc.lines:
                log.error("%s", line)
            log.error("reload refused: %d error(s); still running on the previous config",
                      len(exc.lines))
            self._fleet.reloaded(exc.lines[0])
            return
        current, running = pipeline.classifier, pipeline.zone_classifiers()
        fleet = self._fleet
        try:
            if not fleet.serves(written):
                fleet = make_fleet(written, self._stats, self._fleet_reload)
            new = fleet.effective(written)
            if ConfigDiff(old, new).model and on_camera_sensor(old.model, new.model):
                raise EdgecamError("the AI Camera's network is uploaded to the sensor when edgecam "
                                   "starts: restart it to change the model (systemctl restart "
                                   f"{self._camera.unit.removesuffix('.service')})")
            self._claims.hold(new)
            # A head file rewritten by `edgecam learn` is re-read even if the config is unchanged.
            classifier = refresh_classifier(current, old.model, new.model)
            prepared = pipeline.prepare(old, new, classifier)
        except EdgecamError as exc:
            self._claims.keep_only(old)
            log.error("reload refused: %s; still running on the previous config", exc)
            if fleet is not self._fleet:
                fleet.close()
            self._fleet.reloaded(str(exc))
            return
        if fleet is not self._fleet:
            self._fleet.close()
            self._fleet = fleet
            fleet.start()
        set_level(new.log_level)
        pipeline.apply(old, prepared)
        self._claims.keep_only(new)
        if classifier is not current and all(zone.classifier is not current for zone in prepared.zones):
            close_classifier(current)  # the device an accelerator held (the Hailo) goes back
        self._fleet.reloaded(None)
        changed = _changed(ConfigDiff(old, new), classifier is not current, running,
                           {zone.name: zone.classifier for zone in prepared.zones})
        log.info("reloaded: %s", ", ".join(changed) if changed else "nothing changed")
        self._warn_if_filtered(new)


def _changed(diff: ConfigDiff, reread: bool, before: dict[str, ImageClassifier],
             after: dict[str, ImageClassifier]) -> list[str]:
    """What the "reloaded: ..." line names: the sections that changed, and the models re-read
    from disk (`reread`: the whole frame's; a zone's whose classifier is not the one before)."""
    changed = diff.sections
    if reread and not diff.model:
        changed.append("model (files on disk)")
    # A zone's head rewritten by `edgecam learn --zone`, its model section unchanged.
    same = {zone.name for zone in diff.new.zones if zone in diff.old.zones and not diff.model}
    return changed + [f"zone {name}: model (files on disk)" for name, classifier in after.items()
                      if name in same and classifier is not before.get(name)]
