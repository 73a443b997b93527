"""The rollout's side of one member: follow the retained manifest to a running model.

paho's thread offers each manifest; the `edgecam-fleet-rollout` thread
downloads, verifies and test-loads its files (rollout.py), with retries and
backoff, then asks the daemon for a reload; the reload (the daemon's main
thread) asks `model()` for the files to run and reports its outcome to
`reloaded()`. A reload that fails leaves the daemon on its running model. The
status (`<device>/model_status`) is handed to the link to retain, so a start
after a rollout says `active` as soon as the broker is there.

Files, under fleet.state_dir:
    models/<version>/          a rollout's model and labels (the running version and the one before)
    models/active.json         the version running, restored at start
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecam.common.files import atomic_write, set_aside
from edgecam.common.throttle import LogThrottle
from edgecam.config import FleetConfig, ModelConfig
from edgecam.core.stats import Stats
from edgecam.errors import DownloadError, DownloadRefused, EdgecamError
from edgecam.fleet.rollout import (
    Installed,
    Manifest,
    ManifestError,
    Trust,
    install,
    model_config,
    prune,
    test_load,
)

log = logging.getLogger(__name__)

BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 60.0
_POLL_S = 0.5

Retain = Callable[[bytes], None]
Reload = Callable[[str], None]


class RolloutFollower:
    """The manifest wanted, the files being switched to, and the ones running."""

    def __init__(self, fleet: FleetConfig, model_topic: str, stats: Stats, retain_status: Retain,
                 request_reload: Reload) -> None:
        self._trust = Trust.of(fleet)  # the manifest key: a bad one is one line at start
        self._model_topic = model_topic
        self._stats = stats
        self._retain_status = retain_status
        self._request_reload = request_reload
        self._models_dir = Path(fleet.state_dir) / "models"
        self._cond = threading.Condition()
        self._wanted: Manifest | None = None
        self._wanted_payload = b""
        self._generation = 0
        self._pending: Installed | None = None
        self._trying: Installed | None = None  # what the last model() put in the config
        self._ran = False  # model() ran since the last reloaded()
        self._previous: Installed | None = None
        self._active = self._restore_active()
        if self._active is not None:
            self._set_status(self._active.version, "active", None)

    # -- the daemon's main thread (a reload) ---------------------------------------------------

    def model(self, model: ModelConfig) -> ModelConfig:
        """The config's model section with the files a rollout installed, if any."""
        with self._cond:
            self._trying, self._ran = self._pending or self._active, True
            trying = self._trying
        return model_config(model, trying) if trying else model

    def reloaded(self, error: str | None) -> None:
        """The outcome of a reload: a rolled-out model it tried is now running, or failed."""
        with self._cond:
            # A reload that failed before model() (a broken config file) fails a pending one.
            tried = self._trying if self._ran else self._pending
            self._trying, self._ran = None, False
            if tried is None or tried is self._active:
                return
            self._pending = None
            if error is None:
                self._active, before = tried, self._active
                if before is not None and before.version != tried.version:
                    self._previous = before
            self._cond.notify_all()
        if error is not None:
            self._fail(tried.version, error, prune_failed=True)
            return
        atomic_write(self._models_dir / "active.json", json.dumps(tried.as_json()).encode(),
                     "rollout state")
        prune(self._models_dir, self._kept())
        self._stats.set_model_version(tried.version)
        self._set_status(tried.version, "active", None)
        log.info("fleet: model %s is running (%s)", tried.version, tried.model.name)

    def wake(self) -> None:
        """Stopping: the rollout thread's waits end at once."""
        with self._cond:
            self._cond.notify_all()

    # -- paho's thread -------------------------------------------------------------------------

    def offer(self, payload: bytes) -> None:
        """A manifest arrived: a new one replaces what the rollout thread wanted."""
        if not payload:
            return  # cleared: the running model stays
        with self._cond:
            if payload == self._wanted_payload:
                return  # the same retained manifest again (a reconnect)
            self._wanted_payload = payload
        try:
            manifest = Manifest.parse(payload, self._trust)
        except ManifestError as exc:
            self._fail(Manifest.version_of(payload), f"{self._model_topic}: {exc}")
            return
        with self._cond:
            self._wanted = manifest
            self._generation += 1
            self._cond.notify_all()

    # -- the rollout thread --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        done = 0
        while not stop.is_set():
            with self._cond:
                if self._generation == done:
                    self._cond.wait(_POLL_S)
                manifest, generation = self._wanted, self._generation
            if stop.is_set() or generation == done or manifest is None:
                continue
            done = generation
            try:
                self._follow(manifest, generation, stop)
            except Exception as exc:  # a remote manifest's files can raise anything
                log.exception("fleet: model %s: unexpected error", manifest.version)
                self._fail(manifest.version, f"{type(exc).__name__}: {str(exc)[:200]}")

    def _follow(self, manifest: Manifest, generation: int, stop: threading.Event) -> None:
        """Installs, test-loads and hands `manifest` to the daemon; gives up on a newer one."""
        active = self._active
        if active is not None and active.version == manifest.version:
            self._set_status(manifest.version, "active", None)
            return
        installed = self._install(manifest, generation, stop)
        if installed is None:
            return
        with self._cond:
            if self._generation != generation:
                return
            self._pending = installed
        log.info("fleet: model %s downloaded and verified; switching", manifest.version)
        self._request_reload(f"model {manifest.version}")
        with self._cond:  # the reload's outcome (reloaded()), or stopping
            while not self._cond.wait_for(lambda: stop.is_set() or self._pending is not installed,
                                          _POLL_S):
                pass

    def _install(self, manifest: Manifest, generation: int, stop: threading.Event
                 ) -> Installed | None:
        """The manifest's files installed and test-loaded, or None (failed, replaced, stopping)."""
        backoff, failures = BACKOFF_MIN_S, LogThrottle(10)
        while True:
            try:
                installed = install(manifest, self._models_dir, self._trust)
                test_load(installed, threads=1)
                return installed
            except DownloadRefused as exc:  # the wrong bytes, too large, not a regular file
                self._fail(manifest.version, str(exc), prune_failed=True)
                return None
            except DownloadError as exc:
                if failures():
                    log.warning("fleet: model %s: %s (retrying in %.0f s)", manifest.version, exc,
                                backoff)
            except EdgecamError as exc:  # not a model, or not one that fits its labels
                self._fail(manifest.version, str(exc), prune_failed=True)
                return None
            with self._cond:
                if self._cond.wait_for(lambda: stop.is_set() or self._generation != generation,
                                       backoff):
                    return None
            backoff = min(2 * backoff, BACKOFF_MAX_S)

    # -- state ---------------------------------------------------------------------------------

    def _kept(self) -> list[str]:
        """The versions kept on disk: the running one and the one before it (a quick rollback)."""
        return [i.version for i in (self._active, self._previous) if i is not None]

    def _restore_active(self) -> Installed | None:
        """The version the last run switched to; an active.json that does not check out (cut by
        a power cut, garbage, its files gone) is set aside and the config's model runs."""
        path = self._models_dir / "active.json"
        if not path.exists():
            return None
        try:
            saved: Any = json.loads(path.read_bytes())
            installed = Installed(saved["version"], Path(saved["model"]), Path(saved["labels"]))
            if not all(isinstance(value, str) for value in saved.values()):
                raise ValueError("not the rollout state")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            set_aside(path, f"unusable rollout state ({type(exc).__name__})")
            return None
        if not (installed.model.is_file() and installed.labels.is_file()):
            set_aside(path, f"the files of model {installed.version} are gone")
            return None
        self._stats.set_model_version(installed.version)
        return installed

    def _fail(self, version: str | None, error: str, *, prune_failed: bool = False) -> None:
        """Reports a rollout that did not switch; `prune_failed`: its files go (the running
        version and the one before it stay)."""
        if prune_failed:
            prune(self._models_dir, self._kept())
        self._stats.count("fleet_rollouts_failed")
        log.error("fleet: model %s not switched to: %s; still running %s", version, error,
                  self._active.version if self._active else "the config's model")
        self._set_status(version, "failed", error)

    def _set_status(self, version: str | None, state: str, error: str | None) -> None:
        self._retain_status(json.dumps({"version": version, "state": state, "error": error}).encode())
