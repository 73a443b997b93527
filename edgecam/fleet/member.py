"""The daemon's side of the fleet: one member, assembled from its link, its heads and its rollout.

Nothing here runs on a pipeline thread, and nothing here switches a model by
itself. The link (link.py) is the member's MQTT connection; the heads' sync
(sync.py) and the rollout (follower.py) each keep their own state and hand
the link what they want retained. paho's network thread only routes what
arrives; the `edgecam-fleet` thread turns the heads' sync (and refreshes
`seen`); the `edgecam-fleet-rollout` thread follows manifests. Both ask the
daemon for a reload, whose main thread calls `effective` (the config with the
rolled-out model and the merged heads in place of the file's) and then
`reloaded` with its outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from edgecam.common.worker import Worker
from edgecam.config import Config
from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError
from edgecam.fleet.follower import RolloutFollower
from edgecam.fleet.link import FleetLink
from edgecam.fleet.sync import SETTLE_S, HeadSync
from edgecam.fleet.topics import FLEET, HEAD, FleetTopics

log = logging.getLogger(__name__)

_STOP_S = 1.0

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
        self._settings = (config.fleet, config.outputs.mqtt, _zones(config))
        self._stats = stats
        self.topics = FleetTopics.of(config)
        filters = [self.topics.model, *_head_filters(config, self.topics)]
        self.link = FleetLink(config.outputs.mqtt, self.topics, filters, self._route,
                              self._subscribed)
        self.sync = HeadSync(config.fleet, self.topics, stats, self.link.retain, request_reload)
        self.rollout = RolloutFollower(
            config.fleet, self.topics.model, stats,
            lambda status: self.link.retain(self.topics.model_status, status), request_reload)
        self._turner = Worker("edgecam-fleet", self._run)
        self._follower = Worker("edgecam-fleet-rollout", self.rollout.run)

    def serves(self, config: Config) -> bool:
        """Whether this member runs with `config`'s fleet and broker (else a reload makes another)."""
        return (config.fleet, config.outputs.mqtt, _zones(config)) == self._settings

    def effective(self, config: Config) -> Config:
        """`config` with the rolled-out model and the merged heads in place of its own. A merge
        that fails for a reason no one can fix here (what the members sent) leaves the daemon
        on its own heads, with one line; a problem with its own files is the reload's error."""
        config = replace(config, model=self.rollout.model(config.model))
        try:
            return self.sync.effective(config)
        except EdgecamError:
            raise
        except Exception as exc:  # the members' heads are remote input
            log.error("fleet: the members' heads cannot be merged (%s: %s); classifying with this "
                      "device's own", type(exc).__name__, str(exc)[:200])
            return config

    def start(self) -> None:
        self.link.start()
        self._turner.start()
        self._follower.start()
        log.info("fleet: member %s under %s/, rollouts on %s", self.topics.device, self.topics.root,
                 self.topics.model)

    def reloaded(self, error: str | None) -> None:
        self.rollout.reloaded(error)

    def close(self) -> None:
        self._follower.stopping.set()
        self.rollout.wake()
        self._follower.stop(_STOP_S)
        self._turner.stop(_STOP_S)
        self.sync.save_members()
        self.link.close()
        self._stats.clear_gauge("fleet_members")

    def _run(self, stop: threading.Event) -> None:
        """The fleet's thread: the heads' sync and `seen`, a few times a second."""
        failing = False
        while not stop.wait(SETTLE_S / 2):
            now = time.monotonic()
            try:
                self.sync.turn(now)
                failing = False
            except Exception:  # a bug here must not end the member's thread
                if not failing:  # once per streak
                    log.exception("fleet: the heads' sync failed; it goes on")
                failing = True
            self.link.refresh_seen(now)

    # -- paho's thread -------------------------------------------------------------------------

    def _route(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.model:
            self.rollout.offer(payload)
            return
        member = self.topics.parse(topic)
        if member is None or member.kind != HEAD:
            return
        if member.device == FLEET:
            self.sync.offer_fleet(member.zone, payload)
        else:  # an aggregator's: every member's head, this device's own as the broker has it
            self.sync.offer(member.device, member.zone, payload)

    def _subscribed(self) -> None:
        self.sync.subscribed()


def _zones(config: Config) -> tuple[str, ...]:
    """The zones with a head of their own: each has its fleet head topic."""
    return tuple(zone.name for zone in config.zones if zone.model.head is not None)


def _head_filters(config: Config, topics: FleetTopics) -> list[str]:
    """An aggregator hears every member's heads (and so the fleet's); a member that merges
    hears the fleet's heads it classifies with, nothing else."""
    if config.fleet.aggregate:
        return topics.heads_filters()
    if not config.fleet.merge_heads:
        return []
    return [topics.fleet_head_of(zone) for zone in (None, *_zones(config))]
