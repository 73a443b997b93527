"""The members' heads as the broker holds them, and their merge with this device's own.

A member's retained head is parsed when it arrives (a payload that is not a
head is refused then); whether it fits is decided at each merge, against the
embedding extractor this device classifies with (a reload may change it). Each
refusal is logged once per member and reason, and counted; the other heads
still merge. The merge is `learn merge`'s own (head.merge_heads): this
device's head first, then the members' in the order of their names, so a
device that learned nothing classifies with exactly `edgecam learn merge OUT
a.head b.head ...`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from edgecam.models.fewshot.head import Head, HeadError, merge_heads
from edgecam.pipeline.stats import Stats

log = logging.getLogger(__name__)

SAVED = "(saved)"  # the members' merge kept on disk, until the broker sends their heads again


@dataclass(frozen=True)
class Target:
    """A head this device classifies with: the whole frame's (zone None), or a zone's own."""

    zone: str | None
    local: Path  # this device's head file, what `edgecam learn` writes
    merged: Path  # the fleet's merge it classifies with
    extractor: str  # the embedding extractor's path
    extractor_sha256: str
    dim: int

    @property
    def members_file(self) -> Path:
        """The merge of the other members' heads alone: what a restart without the broker uses."""
        return self.merged.with_name(self.merged.name.replace("fleet", "fleet-members", 1))

    @property
    def where(self) -> str:
        return "the whole frame" if self.zone is None else f"zone {self.zone}"


class HeadBook:
    """Every other member's heads, by (zone, device); fed by the MQTT thread, merged by another."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._heads: dict[tuple[str | None, str], Head] = {}
        # The reason last logged, by (zone, device): a payload that is no head, a head that does not fit.
        self._unparsed: dict[tuple[str | None, str], str] = {}
        self._unfit: dict[tuple[str | None, str], str] = {}

    def offer(self, device: str, zone: str | None, payload: bytes) -> bool:
        """A member's retained head (empty: cleared); whether the heads changed."""
        key = (zone, device)
        head = None
        if payload:
            try:
                head = Head.parse(payload, f"{device}'s head" + (f" for zone {zone}" if zone else ""))
            except HeadError as exc:
                self._refuse(self._unparsed, key, str(exc))
        with self._lock:
            if head is None:
                return self._heads.pop(key, None) is not None
            self._heads[key] = head
            self._unparsed.pop(key, None)
            return True

    def seed(self, zone: str | None, head: Head) -> None:
        """The members' merge saved by the last run, standing in for them until they are heard."""
        with self._lock:
            self._heads[(zone, SAVED)] = head

    def forget_saved(self) -> bool:
        """The broker is sending the members' own heads: the saved merge goes; whether there was one."""
        with self._lock:
            saved = [key for key in self._heads if key[1] == SAVED]
            for key in saved:
                del self._heads[key]
            return bool(saved)

    def merge(self, target: Target, local: Head | None) -> tuple[Head, Head | None]:
        """(this device's head merged with every fitting member's, the members' alone or None)."""
        with self._lock:
            members = sorted((device, head) for (zone, device), head in self._heads.items()
                             if zone == target.zone)
        fitting = [(device, head) for device, head in members if self._fits(device, head, target)]
        self._stats.set_gauge("fleet_members", len({d for d, _ in fitting if d != SAVED}))
        others = merge_heads(fitting) if fitting else None
        named = [("this device", local)] if local is not None else []
        heads = named + fitting
        merged = merge_heads(heads) if heads else Head(target.extractor_sha256, target.dim)
        merged.fleet = True
        return merged, others

    def size(self) -> int:
        """How many heads it holds (members' and zones')."""
        with self._lock:
            return len(self._heads)

    def _fits(self, device: str, head: Head, target: Target) -> bool:
        if head.extractor_sha256 == target.extractor_sha256 and head.dim == target.dim:
            with self._lock:
                self._unfit.pop((target.zone, device), None)
            return True
        self._refuse(self._unfit, (target.zone, device),
                     f"{device}'s head for {target.where}: learned with another embedding extractor "
                     f"(sha256 {head.extractor_sha256[:12]}…, this device's is "
                     f"{target.extractor_sha256[:12]}…)")
        return False

    def _refuse(self, logged: dict[tuple[str | None, str], str], key: tuple[str | None, str],
                reason: str) -> None:
        with self._lock:
            if logged.get(key) == reason:
                return
            logged[key] = reason
        self._stats.count("fleet_heads_refused")
        log.warning("fleet: refused %s; merging the others", reason)
