"""What the MQTT output keeps on the broker for this device, and the messages that set it.

The retained state (Home Assistant's discovery entities, `online`, each zone's
current label) is republished whole on every (re)connect; a result adds its
classification and, when its zone's label changed, the new retained label.
The MQTT output (outputs.mqtt) holds its lock around every call here.

With zones (`set_zones`), each zone's results and retained label go to its own
topics and Home Assistant gets its own label and score sensors. This device's
retained messages that the zones in force no longer use (a zone removed by a
reload, or by an edit before a restart; the whole frame's, once there are
zones) are found by subscribing to everything it may have retained
(mqtt_topics.owned_filters): the broker sends what it holds, at each connect
and again when the zones change, and each stale one is cleared with an empty
retained message, so Home Assistant drops the entity.
"""

from __future__ import annotations

import json

from edgecam.config import MqttConfig
from edgecam.core.results import Result
from edgecam.outputs.mqtt_topics import ONLINE, Topics, discovery_messages, owned_filters

#: (topic, payload, retain, is a result): one message to hand to paho
Message = tuple[str, str, bool, bool]


class Retained:
    """The zones in force, the topics this device then retains (`owned`), and the labels set."""

    def __init__(self, config: MqttConfig, topics: Topics) -> None:
        self.config = config
        self.topics = topics
        self.labels: dict[str | None, str] = {}  # each zone's (None: the frame's) current label
        self.follow(())

    def follow(self, zones: tuple[str, ...]) -> None:
        """Sets the zones, their discovery messages (if homeassistant is on) and every topic this
        device then retains: its labels and its entities. A label of a zone gone is forgotten."""
        self.zones = zones
        self.discovery = (discovery_messages(self.topics, self.config.discovery_prefix,
                                             self.config.qos, zones)
                          if self.config.homeassistant else [])
        self.owned = self.topics.labels(zones) | {topic for topic, _ in self.discovery}
        self.labels = {zone: label for zone, label in self.labels.items() if self.labelled(zone)}

    def labelled(self, zone: str | None) -> bool:
        """Whether a result of `zone` sets a retained label (one queued before a reload that
        removed its zone, or that set zones, does not: its label would come back)."""
        return zone in self.zones if self.zones else zone is None

    def subscriptions(self) -> list[tuple[str, int]]:
        """The filters matching everything this device may have retained, for the broker to resend."""
        discovery = self.config.discovery_prefix if self.config.homeassistant else None
        return [(topic, self.config.qos) for topic in owned_filters(self.topics, discovery)]

    def state(self) -> list[Message]:
        """The entities first (Home Assistant's advice), then their state."""
        messages: list[Message] = [(topic, payload, True, False) for topic, payload in self.discovery]
        messages.append((self.topics.availability, ONLINE, True, False))
        messages += [(self.topics.label_of(zone), label, self.config.retain, False)
                     for zone, label in self.labels.items()]
        return messages

    def result(self, result: Result) -> list[Message]:
        """A result's classification, and its zone's retained label if that changed."""
        zone, label = result.zone, result.top.label
        messages: list[Message] = [(self.topics.classification_of(zone),
                                    json.dumps(result.message(), separators=(", ", ": ")), False, True)]
        if self.labelled(zone) and label != self.labels.get(zone):
            self.labels[zone] = label
            messages.append((self.topics.label_of(zone), label, self.config.retain, False))
        return messages
