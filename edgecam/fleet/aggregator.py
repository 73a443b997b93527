"""The aggregator (fleet.aggregate: true): every member's head in, the fleet's head out.

Without it every member would hear every member's head: N² heads through the
broker when a fleet reconnects at once. With it each member publishes its head
once and hears one merge: the aggregator subscribes to `<topic_root>/+/head`
(and `+/head/+`), keeps the heads in its HeadBook (bounded and checked as any
member's were: heads.py), and publishes their merge, retained, on
`<topic_root>/fleet/head` (and `/fleet/head/<zone>` for each zone it has a head
for itself: the extractor it checks the heads against).

The merge is deterministic: the same heads give the same bytes (members in the
order of their names, no timestamp), so two aggregators publishing on the same
topic are harmless, and a member hears the same head from either. Its own head
is merged as the broker echoes it, exactly as another aggregator hears it.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecam.core.stats import Stats
from edgecam.fleet.heads import HeadBook, Target
from edgecam.fleet.topics import FleetTopics
from edgecam.models.fewshot.head import Head

Retain = Callable[[str, bytes], None]


class Aggregator:
    """The book of the members' heads and the fleet's heads it retains; the fleet's thread
    calls `publish` once the heads settled."""

    def __init__(self, stats: Stats, topics: FleetTopics, retain: Retain) -> None:
        self.book = HeadBook(stats)
        self._topics = topics
        self._retain = retain
        self._published: set[str] = set()
        self.has_published = False

    def offer(self, device: str, zone: str | None, payload: bytes) -> bool:
        """A member's retained head (this device's own too, as the broker echoes it)."""
        return self.book.offer(device, zone, payload)

    def publish(self, targets: list[Target]) -> dict[str | None, tuple[Head, bytes]]:
        """Merges and retains the fleet's head of each target (a zone no longer among them is
        cleared); the heads and their payloads, by zone."""
        merged = {}
        for target in targets:
            head = self.book.merge(target)
            merged[target.zone] = (head, head.to_wire())
        topics = {self._topics.fleet_head_of(zone): payload for zone, (_, payload) in merged.items()}
        for topic in self._published - set(topics):
            self._retain(topic, b"")
        for topic, payload in topics.items():
            self._retain(topic, payload)
        self._published = set(topics)
        self.has_published = True
        return merged
