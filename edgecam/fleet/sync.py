"""The heads' sync: this device's heads out, the fleet's head in, their merge for the reload.

paho's thread offers the fleet's head (<topic_root>/fleet/head: fleethead.py)
and, on an aggregator, every member's head (aggregator.py). The fleet's thread
calls `turn()` a few times a second: once the heads have settled (one merge
for a burst, such as 200 retained heads after an aggregator connects) an
aggregator publishes the fleet's head, and the member asks the daemon for a
reload. The reload (the daemon's main thread) calls `effective`, which shares
this device's heads (compact: Head.to_wire), combines the fleet's head with
its own (fleethead.combine) and writes the merges that changed.

Until an aggregator has published (or with the broker away), a member
classifies with its own head and the fleet's head saved by its last run.

Files, under fleet.state_dir:
    heads/fleet.head, heads/fleet.<zone>.head      the merges classified with
    heads/fleet-members.head, ...                  the fleet's head last received (saved at most
                                                   every MEMBERS_SAVE_S, and at stop)
"""

from __future__ import annotations

import hashlib
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
from edgecam.fleet.aggregator import Aggregator
from edgecam.fleet.fleethead import FleetHeads, combine, fits
from edgecam.fleet.headfiles import local_head, saved_members
from edgecam.fleet.heads import Target
from edgecam.fleet.topics import FleetTopics
from edgecam.models.fewshot.head import Head, HeadError

log = logging.getLogger(__name__)

SETTLE_S = 0.3  # heads arriving this close together are merged once
SETTLE_MAX_S = 2.0  # ... but a steady stream of changes is merged at least this often
# An aggregator's first merge after it connects waits for the retained heads to stop coming
# (a merge of half of them would take classes from every member for a moment), this long at most.
FIRST_MAX_S = 30.0
MEMBERS_SAVE_S = 60.0

Retain = Callable[[str, bytes], None]
Reload = Callable[[str], None]


class HeadSync:
    """The heads' side of one member: its own state, fed by paho's thread and the fleet's."""

    def __init__(self, fleet: FleetConfig, topics: FleetTopics, stats: Stats, retain: Retain,
                 request_reload: Reload) -> None:
        self._fleet = fleet
        self._topics = topics
        self._stats = stats
        self._retain = retain
        self._request_reload = request_reload
        self._heads_dir = Path(fleet.state_dir) / "heads"
        self.fleet_heads = FleetHeads(stats)
        self.aggregator = Aggregator(stats, topics, retain) if fleet.aggregate else None
        self._lock = threading.Lock()
        self._targets_now: list[Target] = []  # what the last reload classified with
        self._mine: dict[str | None, str] = {}  # the sha256 of each head this device publishes
        # What changed and is not merged yet: the fleet's head (a reload merges it) and, on an
        # aggregator, the members' heads (only its next publication merges them).
        self._fleet_changed = _Pending()
        self._book_changed = _Pending()
        self._seeded = False
        self._shared: set[str] = set()  # the head topics this device retains
        # The fleet's heads to save, at most every MEMBERS_SAVE_S and when closing.
        self._members_due: dict[Path, bytes] = {}
        self._next_save = 0.0
        self._dims: dict[str, int] = {}  # an extractor's width, by sha256

    # -- paho's thread -------------------------------------------------------------------------

    def offer(self, device: str, zone: str | None, payload: bytes) -> None:
        """A member's retained head (b"": cleared): an aggregator's only."""
        if self.aggregator is not None and self.aggregator.offer(device, zone, payload):
            self._arrived(self._book_changed)

    def offer_fleet(self, zone: str | None, payload: bytes) -> None:
        """The fleet's head (an aggregator's, until it published its own)."""
        if self.aggregator is not None and self.aggregator.has_published:
            return
        if self.fleet_heads.offer(zone, payload):
            self._arrived(self._fleet_changed)

    def subscribed(self) -> None:
        """An aggregator merges once the retained heads that follow have come."""
        if self.aggregator is not None:
            self._arrived(self._book_changed)

    # -- the fleet's thread --------------------------------------------------------------------

    def turn(self, now: float) -> None:
        """Once the heads settled: an aggregator publishes the fleet's head, and a reload is
        asked; the fleet's head is saved when due."""
        most = (FIRST_MAX_S if self.aggregator is not None and not self.aggregator.has_published
                else SETTLE_MAX_S)
        with self._lock:
            targets = self._targets_now
            publish = bool(targets) and self._book_changed.due(now, most)
            reload = self._fleet_changed.due(now, SETTLE_MAX_S)
        if publish and self.aggregator is not None:
            for zone, (head, payload) in self.aggregator.publish(targets).items():
                self.fleet_heads.set(zone, head, payload)
        if publish or reload:
            self._request_reload("the fleet's head changed")
        if now >= self._next_save and self._members_due:
            self._next_save = now + MEMBERS_SAVE_S
            self.save_members()

    def save_members(self) -> None:
        with self._lock:
            due, self._members_due = self._members_due, {}
        for path, head in due.items():  # (the payloads as received)
            try:
                _write_if_changed(path, head)
            except (OSError, EdgecamError) as exc:
                log.warning("fleet: cannot save the fleet's head: %s", exc)

    # -- the daemon's main thread (a reload) ---------------------------------------------------

    def effective(self, config: Config) -> Config:
        """`config` with the merged heads in place of its own; writes the merges that changed
        and shares this device's heads if they did."""
        with self._lock:
            self._fleet_changed.first = None  # this reload merges the fleet's head as it is now
        targets = self._targets(config)
        for target in targets:
            self.fleet_heads.want(target)
        if not self._seeded:
            self._seeded = True
            self._seed(targets)
        with self._lock:
            self._targets_now = targets
        locals_ = {target.zone: self._local_head(target) for target in targets}
        self._share(locals_)
        if not self._fleet.merge_heads:
            return config
        for target in targets:
            fleet, payload = self.fleet_heads.get(target.zone)
            problem = fits(fleet, target) if fleet is not None else None
            if problem is not None:
                self.fleet_heads.refuse(target.zone, problem)
                fleet = None
            mine = (self._topics.device, self._mine.get(target.zone))
            _write_if_changed(target.merged, combine(target, fleet, locals_[target.zone],
                                                     mine).to_bytes())
            self._stats.set_gauge("fleet_members", len(fleet.members or []) if fleet else 0)
            if payload is not None:
                with self._lock:
                    self._members_due[target.members_file] = payload
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
        """The fleet's head saved by the last run, until the broker sends one; one left
        unusable on disk is set aside (headfiles.saved_members)."""
        for target in targets:
            saved = saved_members(target)
            if saved is not None:
                self.fleet_heads.seed(target.zone, saved)

    def _share(self, heads: dict[str | None, Head | None]) -> None:
        """Retains this device's heads (an empty payload clears one no longer shared)."""
        payloads = {zone: (head.to_wire() if head and self._fleet.share_heads else b"")
                    for zone, head in heads.items()}
        self._mine = {zone: hashlib.sha256(payload).hexdigest()
                      for zone, payload in payloads.items() if payload}
        topics = {self._topics.head_of(zone): payload for zone, payload in payloads.items()}
        for topic in self._shared - set(topics):
            self._retain(topic, b"")
        for topic, payload in topics.items():
            self._retain(topic, payload)
        self._shared = {topic for topic, payload in topics.items() if payload}

    def _arrived(self, pending: _Pending) -> None:
        with self._lock:
            pending.mark(time.monotonic())


class _Pending:
    """Changes not merged yet: due once they settled (SETTLE_S without one), or `most` after
    the first."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def mark(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now

    def due(self, now: float, most: float) -> bool:
        due = self.first is not None and (now - self.last >= SETTLE_S or now - self.first >= most)
        if due:
            self.first = None
        return due


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
