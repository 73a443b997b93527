"""An aggregator's book: every member's head as the broker holds it, and their merge.

Anyone who can publish to the broker can send a "head", so what arrives is
bounded before it costs anything: a payload over MAX_PAYLOAD bytes is refused
unread; the rest is parsed and checked (core/headcheck.py: counts, finite sums, the
width of this device's extractor, at most 1000 classes), and kept only while
the book holds fewer than MAX_ENTRIES members' heads (devices × zones) and
MAX_VALUES numbers in all. Whatever a payload raises is a refusal, never an
exception in paho's thread. Whether a kept head fits is decided at each merge,
against the embedding extractor this device classifies with (a reload may
change it). A refusal is counted and logged once per member and reason until
that member's head is merged (so alternating good and bad heads logs at most
once per merge); past LOGGED_MEMBERS members refused at once (a flood of
names), the rest are counted only. The merge is `learn merge`'s own
(head.merge_heads, where a head weighs at most MEMBER_WEIGHT examples per
class) of the members' heads in the order of their names: the fleet's head is
`edgecam learn merge OUT a.head b.head ...` of what they published, and names
each member with the sha256 of the payload it merged. The same heads give the
same bytes, so two aggregators publishing it agree.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from edgecam.core.headcheck import MAX_CLASSES
from edgecam.core.stats import Stats
from edgecam.models.fewshot.head import Head, HeadError, merge_heads

log = logging.getLogger(__name__)

# A head of 100 classes of a 1024-wide extractor is 2.2 MB of JSON (about 21 bytes a number),
# 2.6 MB at the longest numbers (25 bytes): 4 MiB lets that through and nothing absurd.
MAX_PAYLOAD = 4 << 20
MAX_ENTRIES = 1000  # members' heads kept: devices × zones
MAX_VALUES = 16 << 20  # numbers kept in all (128 MB of float64): 1000 heads of 16 classes × 1024
LOGGED_MEMBERS = 100

Key = tuple[str | None, str]  # (zone, device)


@dataclass(frozen=True)
class Target:
    """A head this device classifies with: the whole frame's (zone None), or a zone's own."""

    zone: str | None
    local: Path  # this device's head file, what `edgecam learn` writes
    merged: Path  # the merge it classifies with: the fleet's head and this device's
    extractor: str  # the embedding extractor's path
    extractor_sha256: str
    dim: int

    @property
    def members_file(self) -> Path:
        """The fleet's head last received: what a restart classifies with until an aggregator
        publishes (a file of an older version, the other members' merge, reads the same way)."""
        return self.merged.with_name(self.merged.name.replace("fleet", "fleet-members", 1))

    @property
    def where(self) -> str:
        return "the whole frame" if self.zone is None else f"zone {self.zone}"


class HeadBook:
    """Every other member's heads, by (zone, device); fed by the MQTT thread, merged by another."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._heads: dict[Key, Head] = {}
        self._versions: dict[Key, str] = {}  # the sha256 of each head's payload
        self._values = 0  # numbers held by the members' heads (not the saved merge)
        self._dims: dict[str | None, int] = {}  # the width each target wants, by zone
        # The reasons refused and logged in each member's current streak, by kind.
        self._refused: dict[Key, dict[str, str]] = {}
        self._quiet = False  # LOGGED_MEMBERS reached: refusals are counted only

    def offer(self, device: str, zone: str | None, payload: bytes) -> bool:
        """A member's retained head (empty: cleared); whether the heads changed. Never raises
        for what the payload holds: a payload that is not a usable head is a refusal."""
        key = (zone, device)
        version = hashlib.sha256(payload).hexdigest()
        with self._lock:  # the same head again (every member republishes at each connect)
            if self._versions.get(key) == version:
                return False
        where = f"{device}'s head" + (f" for zone {zone}" if zone else "")
        head = None
        if len(payload) > MAX_PAYLOAD:
            self._refuse(key, "size", f"{where}: {len(payload):,} bytes, more than a head may be "
                                      f"({MAX_PAYLOAD:,})")
        elif payload:
            head = self._parse(key, where, payload)
        with self._lock:
            old = self._heads.pop(key, None)
            self._versions.pop(key, None)
            self._values -= _values(old)
            if head is None:
                return old is not None
            problem = self._room_for(head)
            if problem is None:
                self._heads[key] = head
                self._versions[key] = version
                self._values += _values(head)
        if problem is not None:
            self._refuse(key, "full", f"{where}: {problem}")
        return problem is None or old is not None

    def merge(self, target: Target) -> Head:
        """The fleet's head for `target`: every fitting member's, in the order of their names,
        naming each with the sha256 of the head it merged."""
        with self._lock:
            self._dims[target.zone] = target.dim
            members = sorted((device, head, self._versions[(zone, device)])
                             for (zone, device), head in self._heads.items() if zone == target.zone)
        fitting = [(device, head, sha) for device, head, sha in members
                   if self._fits(device, head, target)]
        self._stats.set_gauge("fleet_members", len(fitting))
        merged = (merge_heads([(device, head) for device, head, _ in fitting]) if fitting
                  else Head(target.extractor_sha256, target.dim))
        merged.fleet = True
        merged.members = [(device, sha) for device, _, sha in fitting]
        left_out = len({c.label for _, head, _ in fitting for c in head.classes}) - len(merged.classes)
        if left_out:
            self._refuse((target.zone, "(the merge)"), "classes",
                         f"{left_out} classes of the members' heads for {target.where}: a head "
                         f"holds at most {MAX_CLASSES}")
        return merged

    def size(self) -> int:
        """How many heads it holds (members' and zones')."""
        with self._lock:
            return len(self._heads)

    def _parse(self, key: Key, where: str, payload: bytes) -> Head | None:
        with self._lock:
            dim = self._dims.get(key[0], self._dims.get(None))
        try:
            return Head.parse(payload, where, dim)
        except HeadError as exc:
            self._refuse(key, "unparsed", str(exc))
        except Exception as exc:  # a remote payload: whatever it raises is a refusal
            self._refuse(key, "unparsed", f"{where}: unreadable ({type(exc).__name__})")
        return None

    def _room_for(self, head: Head) -> str | None:
        """Why the book has no room for `head` (its lock held), or None."""
        members = len(self._heads)
        if members >= MAX_ENTRIES:
            return f"the fleet already has {members} members' heads (at most {MAX_ENTRIES})"
        if self._values + _values(head) > MAX_VALUES:
            return (f"the members' heads already hold {self._values} numbers; this one's "
                    f"{_values(head)} would pass {MAX_VALUES}")
        return None

    def _fits(self, device: str, head: Head, target: Target) -> bool:
        if head.extractor_sha256 == target.extractor_sha256 and head.dim == target.dim:
            with self._lock:  # merged: the member's streak of refusals ends
                if self._refused.pop((target.zone, device), None) is not None:
                    self._quiet = self._quiet and len(self._refused) >= LOGGED_MEMBERS
            return True
        self._refuse((target.zone, device), "unfit",
                     f"{device}'s head for {target.where}: learned with another embedding extractor "
                     f"(sha256 {head.extractor_sha256[:12]}…, this device's is "
                     f"{target.extractor_sha256[:12]}…)")
        return False

    def _refuse(self, key: Key, kind: str, reason: str) -> None:
        """Counts and logs `reason` once in `key`'s streak; past LOGGED_MEMBERS members refused,
        counts only (and says so once)."""
        with self._lock:
            streak = self._refused.get(key)
            if streak is None and len(self._refused) >= LOGGED_MEMBERS:
                quiet, self._quiet = self._quiet, True
                line = None if quiet else (f"refused heads from {LOGGED_MEMBERS} members; further "
                                           "refusals are counted only (fleet_heads_refused)")
            elif streak is not None and kind in streak:
                return
            else:
                self._refused.setdefault(key, {})[kind] = reason
                line = f"refused {reason}; merging the others"
        self._stats.count("fleet_heads_refused")
        if line is not None:
            log.warning("fleet: %s", line)


def _values(head: Head | None) -> int:
    return 0 if head is None else head.dim * len(head.classes)
