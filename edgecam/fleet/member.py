"""The daemon's side of the fleet: its own MQTT connection, the members' heads, rollouts.

Nothing here runs on a pipeline thread, and nothing here switches a model by
itself. paho's network thread only parses what arrives (heads into the
HeadBook, a manifest for the rollout thread) and publishes. The `edgecam-fleet`
thread waits for the members' heads to settle (one merge for a burst, such as
the retained heads of 200 members after a connect) and then asks the daemon
for a reload; the `edgecam-fleet-rollout` thread downloads, verifies and
test-loads a manifest's files, with retries and backoff, and then asks for a
reload. The reload (the daemon's main thread, the same path as SIGHUP) calls
`effective`, which writes the merged heads and returns the config with the
fleet's heads and model in place of the file's; a reload that fails leaves the
daemon on its running model and head, and `reloaded` reports the outcome.

Files, under fleet.state_dir (DEFAULT_STATE_DIR):
    heads/fleet.head, heads/fleet.<zone>.head      the merges classified with
    heads/fleet-members.head, ...                  the other members' alone (a restart with the
                                                   broker down merges them with the local head;
                                                   saved at most every MEMBERS_SAVE_S, and at stop)
    models/<version>/                              a rollout's model and labels
    models/active.json                             the version running, restored at start
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgecam.common.files import atomic_write, file_sha256
from edgecam.common.throttle import LogThrottle
from edgecam.common.worker import Worker
from edgecam.config import Config, ModelConfig
from edgecam.errors import ChecksumError, DownloadError, EdgecamError
from edgecam.fleet.headfiles import local_head, saved_members
from edgecam.fleet.heads import HeadBook, Target
from edgecam.fleet.rollout import (
    Installed,
    Manifest,
    ManifestError,
    install,
    model_config,
    prune,
    test_load,
)
from edgecam.fleet.topics import HEAD, OFFLINE, ONLINE, FleetTopics
from edgecam.models.fewshot.head import Head, HeadError
from edgecam.outputs.mqtt_client import new_client
from edgecam.outputs.mqtt_topics import client_id
from edgecam.pipeline.stats import Stats

log = logging.getLogger(__name__)

QOS = 1  # retained state: delivered once the broker has it
SETTLE_S = 0.3  # heads arriving this close together are merged once
SETTLE_MAX_S = 2.0  # ... but a steady stream of changes is merged at least this often
SEEN_S = 60.0
MEMBERS_SAVE_S = 60.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 60.0
_STOP_S = 1.0
_POLL_S = 0.5

Reload = Callable[[str], None]


class NoFleet:
    """fleet.enabled is false: the config as written, nothing to start (DESIGN.md, habit 9)."""

    def serves(self, config: Config) -> bool:
        return not config.fleet.enabled

    def effective(self, config: Config) -> Config:
        return config

    def start(self) -> None:
        pass

    def reloaded(self, error: str | None) -> None:
        pass

    def close(self) -> None:
        pass


def make_fleet(config: Config, stats: Stats, request_reload: Reload) -> Fleet | NoFleet:
    return Fleet(config, stats, request_reload) if config.fleet.enabled else NoFleet()


class Fleet:
    """One member: built from the config, started once the pipeline runs, closed at the end."""

    def __init__(self, config: Config, stats: Stats, request_reload: Reload) -> None:
        self._settings = (config.fleet, config.outputs.mqtt)
        self._fleet = config.fleet
        self._stats = stats
        self._request_reload = request_reload
        self.topics = FleetTopics.of(config)
        state = Path(config.fleet.state_dir)
        self._heads_dir, self._models_dir = state / "heads", state / "models"
        self._book = HeadBook(stats)
        self._cond = threading.Condition()
        self._published: dict[str, bytes] = {}  # our retained heads, by topic
        self._heads_changed_at: float | None = None  # first change not merged yet
        self._last_change = 0.0
        self._seeded = False
        # The members' merges to save (None: remove the file), by the merger thread, at most
        # every MEMBERS_SAVE_S (a large fleet's is tens of megabytes) and when closing.
        self._members_due: dict[Path, Head | None] = {}
        self._dims: dict[str, int] = {}  # an extractor's width, by sha256
        # The rollout: the manifest wanted, the files being switched to, the running ones.
        self._wanted: Manifest | None = None
        self._wanted_payload = b""
        self._generation = 0
        self._pending: Installed | None = None
        self._trying: Installed | None = None  # what the last effective() put in the config
        self._ran = False  # effective() ran since the last reloaded()
        self._active = self._restore_active()
        self._previous: Installed | None = None
        self._status: dict[str, Any] | None = None
        if self._active is not None:
            self._set_status(self._active.version, "active", None)
        self._connected = False
        mqtt = config.outputs.mqtt
        self._client, _password = new_client(mqtt, f"{client_id(mqtt)}-fleet",
                                             (self.topics.online, OFFLINE, QOS))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._host = (mqtt.host, mqtt.port, mqtt.keepalive_s)
        self._merger = Worker("edgecam-fleet", self._run_merger)
        self._downloader = Worker("edgecam-fleet-rollout", self._run_rollout)

    def serves(self, config: Config) -> bool:
        """Whether this member runs with `config`'s fleet and broker (else a reload makes another)."""
        return (config.fleet, config.outputs.mqtt) == self._settings

    # -- the daemon's side (its main thread) ---------------------------------------------------

    def effective(self, config: Config) -> Config:
        """`config` with the rolled-out model and the merged heads in place of its own; writes
        the merges (only those that changed) and publishes this device's heads if they did."""
        with self._cond:
            self._trying, self._ran = self._pending or self._active, True
            self._heads_changed_at = None
        model = model_config(config.model, self._trying) if self._trying else config.model
        config = replace(config, model=model)
        targets = self._targets(config)
        if not self._seeded:
            self._seeded = True
            self._seed(targets)
        locals_ = {target.zone: self._local_head(target) for target in targets}
        self._share({target.zone: locals_[target.zone] for target in targets})
        if not self._fleet.merge_heads:
            return config
        for target in targets:
            merged, others = self._book.merge(target, locals_[target.zone])
            _write_if_changed(target.merged, merged.to_bytes())
            with self._cond:
                self._members_due[target.members_file] = others
        return _with_merged_heads(config, {t.zone: t.merged for t in targets})

    def start(self) -> None:
        self._client.connect_async(*self._host)
        self._client.loop_start()
        self._merger.start()
        self._downloader.start()
        log.info("fleet: member %s under %s/, rollouts on %s", self.topics.device, self.topics.root,
                 self.topics.model)

    def reloaded(self, error: str | None) -> None:
        """The outcome of a reload: a rolled-out model it tried is now running, or failed."""
        with self._cond:
            # A reload that failed before effective() (a broken config file) fails a pending one.
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

    def close(self) -> None:
        self._downloader.stopping.set()
        self._merger.stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._downloader.stop(_STOP_S)
        self._merger.stop(_STOP_S)
        self._save_members()
        if self._connected:
            info = self._client.publish(self.topics.online, OFFLINE, QOS, retain=True)
            deadline = time.monotonic() + _STOP_S
            while info.rc == 0 and not info.is_published() and time.monotonic() < deadline:
                time.sleep(0.01)
        self._client.disconnect()
        stopper = Worker("edgecam-fleet-stop", lambda _stop: self._client.loop_stop())
        stopper.start()
        stopper.stop(2 * _STOP_S)
        self._stats.clear_gauge("fleet_members")

    # -- heads ---------------------------------------------------------------------------------

    def _targets(self, config: Config) -> list[Target]:
        """The whole frame's head (model.head) and each zone's own (zones[].model.head)."""
        wanted: list[tuple[str | None, str, ModelConfig]] = []
        if config.model.head is not None:
            wanted.append((None, config.model.head, config.model))
        wanted += [(zone.name, zone.model.head, config.zone_model(zone)) for zone in config.zones
                   if zone.model.head is not None]
        targets = []
        for zone, local, model in wanted:
            sha = file_sha256(model.path)
            name = "fleet.head" if zone is None else f"fleet.{zone}.head"
            targets.append(Target(zone, Path(local), self._heads_dir / name, model.path, sha,
                                  self._dim(sha, Path(local), model)))
        return targets

    def _dim(self, sha: str, local: Path, model: ModelConfig) -> int:
        """The extractor's width: from the local head when there is one, else from the model."""
        if sha not in self._dims:
            try:
                head = Head.load(local) if local.exists() else None
            except HeadError:
                head = None
            if head is not None and head.extractor_sha256 == sha:
                self._dims[sha] = head.dim
            else:
                from edgecam.models.fewshot.embedder import Embedder

                self._dims[sha] = Embedder(model.path, threads=1).dim
        return self._dims[sha]

    def _local_head(self, target: Target) -> Head | None:
        """This device's own head (checked against the extractor), None before it learned any."""
        return local_head(target)

    def _seed(self, targets: list[Target]) -> None:
        """The members' merge saved by the last run, until the broker sends their heads."""
        for target in targets:
            saved = saved_members(target)
            if saved is not None:  # else none saved (or set aside): the broker will tell
                self._book.seed(target.zone, saved)

    def _share(self, heads: dict[str | None, Head | None]) -> None:
        """Publishes this device's heads that changed (an empty payload clears one)."""
        payloads = {self.topics.head_of(zone): (head.to_bytes() if head and self._fleet.share_heads
                                                else b"")
                    for zone, head in heads.items()}
        with self._cond:
            gone = {topic: b"" for topic, payload in self._published.items()
                    if topic not in payloads and payload}
            changed = {topic: payload for topic, payload in {**payloads, **gone}.items()
                       if self._published.get(topic) != payload}
            self._published.update(changed)
            connected = self._connected
        if connected:
            for topic, payload in changed.items():
                self._client.publish(topic, payload, QOS, retain=True)

    def _heads_arrived(self) -> None:
        with self._cond:
            now = time.monotonic()
            if self._heads_changed_at is None:
                self._heads_changed_at = now
            self._last_change = now
            self._cond.notify_all()

    def _save_members(self) -> None:
        with self._cond:
            due, self._members_due = self._members_due, {}
        for path, head in due.items():
            try:
                if head is None:
                    path.unlink(missing_ok=True)
                else:
                    _write_if_changed(path, head.to_bytes())
            except (OSError, EdgecamError) as exc:
                log.warning("fleet: cannot save the members' heads: %s", exc)

    def _run_merger(self, stop: threading.Event) -> None:
        next_seen = next_save = 0.0
        while not stop.is_set():
            with self._cond:
                self._cond.wait(SETTLE_S / 2)
                first, last = self._heads_changed_at, self._last_change
                now = time.monotonic()
                due = first is not None and (now - last >= SETTLE_S or now - first >= SETTLE_MAX_S)
                if due:
                    self._heads_changed_at = None
                connected = self._connected
            if due:
                self._request_reload("the members' heads changed")
            if now >= next_save and self._members_due:
                next_save = now + MEMBERS_SAVE_S
                self._save_members()
            if connected and now >= next_seen:
                next_seen = now + SEEN_S
                self._client.publish(self.topics.seen, json.dumps({"ts": round(time.time(), 3)}), QOS,
                                     retain=True)

    # -- rollouts ------------------------------------------------------------------------------

    def _kept(self) -> list[str]:
        """The versions kept on disk: the running one and the one before it (a quick rollback)."""
        return [i.version for i in (self._active, self._previous) if i is not None]

    def _restore_active(self) -> Installed | None:
        try:
            saved = json.loads((self._models_dir / "active.json").read_text())
            installed = Installed(saved["version"], Path(saved["model"]), Path(saved["labels"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not (installed.model.is_file() and installed.labels.is_file()):
            return None
        self._stats.set_model_version(installed.version)
        return installed

    def _offer_manifest(self, payload: bytes) -> None:
        """A manifest arrived (paho's thread): a new one replaces what the rollout thread wanted."""
        if not payload:
            return  # cleared: the running model stays
        with self._cond:
            if payload == self._wanted_payload:
                return  # the same retained manifest again (a reconnect)
            self._wanted_payload = payload
        try:
            manifest = Manifest.parse(payload)
        except ManifestError as exc:
            self._fail(Manifest.version_of(payload), f"{self.topics.model}: {exc}")
            return
        with self._cond:
            self._wanted = manifest
            self._generation += 1
            self._cond.notify_all()

    def _run_rollout(self, stop: threading.Event) -> None:
        done = 0
        while not stop.is_set():
            with self._cond:
                if self._generation == done:
                    self._cond.wait(_POLL_S)
                manifest, generation = self._wanted, self._generation
            if stop.is_set() or generation == done or manifest is None:
                continue
            done = generation
            self._follow(manifest, generation, stop)

    def _follow(self, manifest: Manifest, generation: int, stop: threading.Event) -> None:
        """Installs, test-loads and hands `manifest` to the daemon; gives up on a newer one."""
        active = self._active
        if active is not None and active.version == manifest.version:
            self._set_status(manifest.version, "active", None)
            return
        backoff, failures = BACKOFF_MIN_S, LogThrottle(10)
        while True:
            try:
                installed = install(manifest, self._models_dir)
                test_load(installed, threads=1)
                break
            except ChecksumError as exc:
                self._fail(manifest.version, str(exc), prune_failed=True)
                return
            except DownloadError as exc:
                if failures():
                    log.warning("fleet: model %s: %s (retrying in %.0f s)", manifest.version, exc,
                                backoff)
            except EdgecamError as exc:  # not a model, or not one that fits its labels
                self._fail(manifest.version, str(exc), prune_failed=True)
                return
            with self._cond:
                if self._cond.wait_for(lambda: stop.is_set() or self._generation != generation,
                                       backoff):
                    return
            backoff = min(2 * backoff, BACKOFF_MAX_S)
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
        with self._cond:
            self._status = {"version": version, "state": state, "error": error}
            connected = self._connected
        if connected:
            self._publish_status()

    def _publish_status(self) -> None:
        with self._cond:
            status = self._status
        if status is not None:
            self._client.publish(self.topics.model_status, json.dumps(status), QOS, retain=True)

    # -- paho's callbacks (its network thread) -------------------------------------------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("fleet: the broker refused the connection: %s", reason)
            return
        filters = [self.topics.model] + (self.topics.heads_filters() if self._fleet.merge_heads else [])
        client.subscribe([(topic, QOS) for topic in filters])
        with self._cond:
            self._connected = True
            published = dict(self._published)
        client.publish(self.topics.online, ONLINE, QOS, retain=True)
        client.publish(self.topics.seen, json.dumps({"ts": round(time.time(), 3)}), QOS, retain=True)
        for topic, payload in published.items():
            client.publish(topic, payload, QOS, retain=True)
        self._publish_status()

    def _on_disconnect(self, *_args: Any) -> None:
        with self._cond:
            self._connected = False

    def _on_subscribe(self, *_args: Any) -> None:
        """The broker sends the members' retained heads next: the saved merge makes way."""
        if self._book.forget_saved():
            self._heads_arrived()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if message.topic == self.topics.model:
            self._offer_manifest(bytes(message.payload))
            return
        member = self.topics.parse(message.topic)
        if member is None or member.kind != HEAD or member.device == self.topics.device:
            return
        if self._book.offer(member.device, member.zone, bytes(message.payload)):
            self._heads_arrived()


def _with_merged_heads(config: Config, merged: dict[str | None, Path]) -> Config:
    model = config.model
    if None in merged:
        model = replace(model, head=str(merged[None]))
    zones = tuple(replace(zone, model=replace(zone.model, head=str(merged[zone.name])))
                  if zone.name in merged else zone for zone in config.zones)
    return replace(config, model=model, zones=zones)


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write(path, data, "merged head")
