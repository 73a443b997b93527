"""The fleet's topics: each member's under `<topic_root>/<device>/`, the manifest on `model_topic`.

    <topic_root>/<device>/head            the whole frame's head file (JSON), retained
    <topic_root>/<device>/head/<zone>     a zone's head (zones with their own model.head)
    <topic_root>/<device>/model_status    {"version", "state": "active" | "failed", "error"}, retained
    <topic_root>/<device>/online          "online" / "offline" (the last will), retained
    <topic_root>/<device>/seen            {"ts": <epoch seconds>}, retained, every SEEN_S: when it
                                          was last online, even once offline
    <topic_root>/fleet/head               the fleet's head: an aggregator's merge of every member's,
    <topic_root>/fleet/head/<zone>        and of each zone's; retained (what members classify with)
    <model_topic>                         the rollout manifest, retained (published by the operator)

An empty retained message clears one: a member whose head is cleared is no
longer merged. `fleet` is thus no member's name (the config refuses it).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecam.config import Config
from edgecam.outputs.mqtt_topics import OFFLINE, ONLINE, topic_prefix

__all__ = ["FLEET", "OFFLINE", "ONLINE", "FleetTopics", "MemberTopic", "device_name"]

HEAD, MODEL_STATUS, ONLINE_KIND, SEEN = "head", "model_status", "online", "seen"
FLEET = "fleet"  # <topic_root>/fleet/head: the aggregators' merge, never a member


def device_name(config: Config) -> str:
    """The last level of outputs.mqtt.topic_prefix (default: the hostname)."""
    return topic_prefix(config.outputs.mqtt).rsplit("/", 1)[-1]


@dataclass(frozen=True)
class MemberTopic:
    """What a topic under the root is: whose, which kind, and for a zone's head the zone."""

    device: str
    kind: str  # HEAD, MODEL_STATUS, ONLINE_KIND or SEEN
    zone: str | None = None


class FleetTopics:
    def __init__(self, root: str, model: str, device: str) -> None:
        self.root = root
        self.model = model
        self.device = device
        mine = f"{root}/{device}"
        self.model_status = f"{mine}/{MODEL_STATUS}"
        self.online = f"{mine}/{ONLINE_KIND}"
        self.seen = f"{mine}/{SEEN}"

    @classmethod
    def of(cls, config: Config) -> FleetTopics:
        return cls(config.fleet.topic_root, config.fleet.model_topic, device_name(config))

    def head_of(self, zone: str | None, device: str | None = None) -> str:
        base = f"{self.root}/{device or self.device}/{HEAD}"
        return base if zone is None else f"{base}/{zone}"

    def fleet_head_of(self, zone: str | None) -> str:
        """Where the aggregators publish the fleet's head (of `zone`, or the whole frame's)."""
        return self.head_of(zone, FLEET)

    def heads_filters(self) -> list[str]:
        """Every member's heads: the whole frame's and each zone's (what an aggregator hears)."""
        return [f"{self.root}/+/{HEAD}", f"{self.root}/+/{HEAD}/+"]

    def member_filters(self) -> list[str]:
        """Everything a member publishes (what `edgecam fleet status` reads)."""
        return [*self.heads_filters(), f"{self.root}/+/{MODEL_STATUS}", f"{self.root}/+/{ONLINE_KIND}",
                f"{self.root}/+/{SEEN}"]

    def parse(self, topic: str) -> MemberTopic | None:
        """The member topic `topic` is, or None (another topic, such as the manifest)."""
        if not topic.startswith(f"{self.root}/"):
            return None
        levels = topic[len(self.root) + 1:].split("/")
        if len(levels) == 2 and levels[1] in (HEAD, MODEL_STATUS, ONLINE_KIND, SEEN):
            return MemberTopic(levels[0], levels[1])
        if len(levels) == 3 and levels[1] == HEAD:
            return MemberTopic(levels[0], HEAD, levels[2])
        return None
