"""The fleet's head on a member: what an aggregator published, checked, and merged with this device's own.

A member never hears the other members' heads: it hears one retained message,
`<topic_root>/fleet/head` (and `.../head/<zone>`), an aggregator's merge of
them all (aggregator.py). Anyone the broker lets publish there could send
one, so it is checked as any head is (headcheck.py: size before parsing,
width, counts, finite sums), plus what only a merge can be checked for: it
names the members it merged, and no class weighs more than MEMBER_WEIGHT
examples per member named. A refusal is counted (fleet_heads_refused) and
logged once per zone and streak; the member keeps the fleet head it had.

What a member classifies with (`combine`): the fleet's head, plus this
device's own head unless the fleet's head already names this device at the
version it publishes now (the sha256 of its published payload), so its own
examples never count twice. Until the aggregator merges a new version (about
a second), the old version's classes are in the fleet's head and the new
one's are added on top: at most MEMBER_WEIGHT more examples of a class this
device had already taught, for that second.
"""

from __future__ import annotations

import logging
import threading

from edgecam.core.headcheck import MAX_COUNT
from edgecam.core.stats import Stats
from edgecam.fleet.heads import Target
from edgecam.models.fewshot.head import MEMBER_WEIGHT, Head, HeadError

log = logging.getLogger(__name__)

# A fleet head holds at most 1000 classes (headcheck.MAX_CLASSES) of 1024 float32 in base64
# (5.5 kB a class) and its members' names: 5.7 MB at the most; 6 MiB lets that through.
MAX_FLEET_PAYLOAD = 6 << 20

Mine = tuple[str, str | None]  # (this device's name, the sha256 of the head it publishes)


class FleetHeads:
    """The fleet's head of each zone (None: the whole frame's), fed by paho's thread."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._heads: dict[str | None, tuple[Head, bytes | None]] = {}  # payload None: from disk
        self._dims: dict[str | None, int] = {}
        self._refused: dict[str | None, str] = {}  # the reason last logged, by zone

    def offer(self, zone: str | None, payload: bytes) -> bool:
        """The fleet's head as the broker holds it (b"": cleared); whether it changed. Never
        raises for what the payload holds."""
        if not payload:
            with self._lock:
                return self._heads.pop(zone, None) is not None
        head = self._checked(zone, payload)
        if head is None:
            return False
        self.set(zone, head, payload)
        return True

    def set(self, zone: str | None, head: Head, payload: bytes | None) -> None:
        """`head` is the fleet's head of `zone` (an aggregator's own merge, or a checked one)."""
        with self._lock:
            self._heads[zone] = (head, payload)
            self._refused.pop(zone, None)

    def seed(self, zone: str | None, head: Head) -> None:
        """The fleet's head saved by the last run, until the broker sends one."""
        with self._lock:
            self._heads.setdefault(zone, (head, None))

    def get(self, zone: str | None) -> tuple[Head | None, bytes | None]:
        """(the fleet's head of `zone` or None, its payload when it came from the broker)."""
        with self._lock:
            return self._heads.get(zone, (None, None))

    def want(self, target: Target) -> None:
        """The width `target`'s fleet head must have (checked before a sum is read)."""
        with self._lock:
            self._dims[target.zone] = target.dim

    def refuse(self, zone: str | None, reason: str) -> None:
        """Counts `reason`, and logs it once until the zone's fleet head is usable again."""
        with self._lock:
            first = self._refused.get(zone) != reason
            self._refused[zone] = reason
        self._stats.count("fleet_heads_refused")
        if first:
            log.warning("fleet: refused the fleet's head%s: %s; keeping the one it had",
                        f" for zone {zone}" if zone else "", reason)

    def _checked(self, zone: str | None, payload: bytes) -> Head | None:
        if len(payload) > MAX_FLEET_PAYLOAD:
            self.refuse(zone, f"{len(payload):,} bytes, more than a fleet head may be "
                              f"({MAX_FLEET_PAYLOAD:,})")
            return None
        with self._lock:
            dim = self._dims.get(zone, self._dims.get(None))
        try:
            head = Head.parse(payload, "the fleet's head", dim)
        except HeadError as exc:
            self.refuse(zone, str(exc))
            return None
        except Exception as exc:  # a remote payload: whatever it raises is a refusal
            self.refuse(zone, f"unreadable ({type(exc).__name__})")
            return None
        problem = overweight(head)
        if problem is not None:
            self.refuse(zone, problem)
            return None
        return head


def overweight(head: Head) -> str | None:
    """Why `head` is no merge of the members it names (None: it could be one)."""
    if head.members is None:
        return "it names no members (an aggregator's merge names those it merged)"
    most = MEMBER_WEIGHT * len(head.members)
    heavy = next((c for c in head.classes if c.count > most), None)
    if heavy is not None:
        return (f"{heavy.label!r} weighs {heavy.count} examples, more than {MEMBER_WEIGHT} for "
                f"each of the {len(head.members)} members it names")
    return None


def combine(target: Target, fleet: Head | None, local: Head | None, mine: Mine) -> Head:
    """What this device classifies with for `target`: this device's head (first, weighing at
    most MEMBER_WEIGHT examples a class, as in every merge) unless `fleet` already merged this
    version of it, then the fleet's head as it is (its members already weighed)."""
    named = local or fleet
    merged = Head(target.extractor_sha256, target.dim, named.extractor_name if named else "")
    merged.fleet = True
    included = fleet is not None and mine[1] is not None and mine in (fleet.members or [])
    if local is not None and not included:
        merged.merge(local, str(target.local), MEMBER_WEIGHT)
    if fleet is not None and fleet.classes:
        merged.merge(fleet, "the fleet's head", MAX_COUNT)
    return merged


def fits(fleet: Head, target: Target) -> str | None:
    """Why the fleet's head cannot go with `target`'s extractor (None: it can)."""
    if fleet.extractor_sha256 != target.extractor_sha256 or fleet.dim != target.dim:
        return (f"learned with another embedding extractor (sha256 {fleet.extractor_sha256[:12]}…, "
                f"this device's for {target.where} is {target.extractor_sha256[:12]}…)")
    return None
