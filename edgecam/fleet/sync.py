"""The heads' sync: this device's heads out, the members' heads in, their merge for the reload.

paho's thread offers each member's retained head to the HeadBook (parsed and
checked there). The fleet's thread calls `turn()` a few times a second: once
the heads have settled (one merge for a burst, such as 200 retained heads
after a connect) it asks the daemon for a reload, and it saves the members'
merge now and then. The reload (the daemon's main thread) calls `effective`,
which merges, writes the merges that changed and shares this device's heads.

Files, under fleet.state_dir:
    heads/fleet.head, heads/fleet.<zone>.head      the merges classified with
    heads/fleet-members.head, ...                  the other members' alone (a restart with the
                                                   broker down merges them with the local head;
                                                   saved at most every MEMBERS_SAVE_S, and at stop)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edgecam.common.files import atomic_write, file_sha256
from edgecam.config import Config, FleetConfig, ModelConfig
from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError
from edgecam.fleet.headfiles import local_head, saved_members
from edgecam.fleet.heads import HeadBook, Target
from edgecam.fleet.topics import FleetTopics
from edgecam.models.fewshot.head import Head, HeadError

log = logging.getLogger(__name__)

SETTLE_S = 0.3  # heads arriving this close together are merged once
SETTLE_MAX_S = 2.0  # ... but a steady stream of changes is merged at least this often
MEMBERS_SAVE_S = 60.0

Retain = Callable[[str, bytes], None]
Reload = Callable[[str], None]


class HeadSync:
    """The heads' side of one member: its own state, fed by paho's thread and the fleet's."""

    def __init__(self, fleet: FleetConfig, topics: FleetTopics, stats: Stats, retain: Retain,
                 request_reload: Reload) -> None:
        self._fleet = fleet
        self._topics = topics
        self._retain = retain
        self._request_reload = request_reload
        self._heads_dir = Path(fleet.state_dir) / "heads"
        self.book = HeadBook(stats)
        self._lock = threading.Lock()
        self._changed_at: float | None = None  # the first change not merged yet
        self._last_change = 0.0
        self._seeded = False
        self._shared: set[str] = set()  # the head topics this device retains
        # The members' merges to save (None: remove the file), at most every MEMBERS_SAVE_S (a
        # large fleet's is tens of megabytes) and when closing.
        self._members_due: dict[Path, Head | None] = {}
        self._next_save = 0.0
        self._dims: dict[str, int] = {}  # an extractor's width, by sha256

    # -- paho's thread -------------------------------------------------------------------------

    def offer(self, device: str, zone: str | None, payload: bytes) -> None:
        """A member's retained head (b"": cleared)."""
        if self.book.offer(device, zone, payload):
            self._arrived()

    def subscribed(self) -> None:
        """The broker sends the members' retained heads next: the saved merge makes way."""
        if self.book.forget_saved():
            self._arrived()

    # -- the fleet's thread --------------------------------------------------------------------

    def turn(self, now: float) -> None:
        """Asks for a reload once the heads settled; saves the members' merge when due."""
        with self._lock:
            first, last = self._changed_at, self._last_change
            due = first is not None and (now - last >= SETTLE_S or now - first >= SETTLE_MAX_S)
            if due:
                self._changed_at = None
        if due:
            self._request_reload("the members' heads changed")
        if now >= self._next_save and self._members_due:
            self._next_save = now + MEMBERS_SAVE_S
            self.save_members()

    def save_members(self) -> None:
        with self._lock:
            due, self._members_due = self._members_due, {}
        for path, head in due.items():
            try:
                if head is None:
                    path.unlink(missing_ok=True)
                else:
                    _write_if_changed(path, head.to_bytes())
            except (OSError, EdgecamError) as exc:
                log.warning("fleet: cannot save the members' heads: %s", exc)

    # -- the daemon's main thread (a reload) ---------------------------------------------------

    def effective(self, config: Config) -> Config:
        """`config` with the merged heads in place of its own; writes the merges that changed
        and shares this device's heads if they did."""
        with self._lock:
            self._changed_at = None
        targets = self._targets(config)
        if not self._seeded:
            self._seeded = True
            self._seed(targets)
        locals_ = {target.zone: self._local_head(target) for target in targets}
        self._share(locals_)
        if not self._fleet.merge_heads:
            return config
        for target in targets:
            merged, others = self.book.merge(target, locals_[target.zone])
            _write_if_changed(target.merged, merged.to_bytes())
            with self._lock:
                self._members_due[target.members_file] = others
        return _with_merged_heads(config, {t.zone: t.merged for t in targets})

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

    @staticmethod
    def _local_head(target: Target) -> Head | None:
        """This device's own head (checked against the extractor), None before it learned any."""
        return local_head(target)

    def _seed(self, targets: list[Target]) -> None:
        """The members' merge saved by the last run, until the broker sends their heads; one
        left unusable on disk is set aside (headfiles.saved_members) and the broker will tell."""
        for target in targets:
            saved = saved_members(target)
            if saved is not None:
                self.book.seed(target.zone, saved)

    def _share(self, heads: dict[str | None, Head | None]) -> None:
        """Retains this device's heads (an empty payload clears one no longer shared)."""
        topics = {self._topics.head_of(zone): (head.to_bytes() if head and self._fleet.share_heads
                                               else b"")
                  for zone, head in heads.items()}
        for topic in self._shared - set(topics):
            self._retain(topic, b"")
        for topic, payload in topics.items():
            self._retain(topic, payload)
        self._shared = {topic for topic, payload in topics.items() if payload}

    def _arrived(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._changed_at is None:
                self._changed_at = now
            self._last_change = now


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
