"""The MQTT topics of one device, and its Home Assistant discovery messages.

Topics, under `outputs.mqtt.topic_prefix` (default `edgecam/<hostname>`):

    <prefix>/classification          every emitted result, the socket's JSON message
    <prefix>/label                   the current top label, plain text (retained with `retain: true`)
    <prefix>/<zone>/classification   with zones, in place of those two: each zone's own
    <prefix>/<zone>/label
    <prefix>/stats                   the stats message, every `stats_interval_s`
    <prefix>/availability            `online` / `offline`, retained; `offline` is also the last will

With `homeassistant: true`, retained Home Assistant discovery messages announce one
device per prefix with a label sensor and a score sensor (with zones: one of each per
zone, "Door label" and "Door score", in place of the whole frame's), a connectivity
binary sensor, and from the stats topic the board's health (a CPU temperature sensor
and under-voltage and throttling problem sensors) and the model version a fleet rollout
installed. They are sent again whenever Home
Assistant says it (re)started.

`owned_filters` are the topics where an earlier run (or the config before a reload)
may have left retained messages this device no longer publishes: the entities and
labels of zones since removed, or the whole frame's once zones are set. The output
subscribes to them and clears what is stale, so Home Assistant keeps no ghost sensor
that shows a removed zone's last label as current.
"""

from __future__ import annotations

import json
import re
import socket

from edgecam import __version__
from edgecam.config import MqttConfig

ONLINE, OFFLINE = "online", "offline"


class Topics:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.classification = f"{prefix}/classification"
        self.label = f"{prefix}/label"
        self.stats = f"{prefix}/stats"
        self.availability = f"{prefix}/availability"

    def classification_of(self, zone: str | None) -> str:
        """Where a result goes: its zone's topic, or without zones the device's."""
        return self.classification if zone is None else f"{self.prefix}/{zone}/classification"

    def label_of(self, zone: str | None) -> str:
        return self.label if zone is None else f"{self.prefix}/{zone}/label"

    def labels(self, zones: tuple[str, ...]) -> frozenset[str]:
        """The label topics results go to: one per zone, or the device's without zones."""
        return frozenset(self.label_of(zone) for zone in zones or (None,))


def topic_prefix(mqtt: MqttConfig) -> str:
    """outputs.mqtt.topic_prefix, else its default: edgecam/<hostname>."""
    return mqtt.topic_prefix or f"edgecam/{socket.gethostname()}"


def client_id(mqtt: MqttConfig) -> str:
    """outputs.mqtt.client_id, else the topic prefix with - for / (the fleet's adds -fleet)."""
    return mqtt.client_id or topic_prefix(mqtt).replace("/", "-")


def node_id(prefix: str) -> str:
    """Home Assistant's node and device id: the prefix in [a-zA-Z0-9_-] (`edgecam_kitchen-pi`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix)


def owned_filters(topics: Topics, discovery_prefix: str | None) -> list[str]:
    """Topic filters for every retained message this device may have left: its labels, and its
    entities' discovery messages (when it announces them, `discovery_prefix`)."""
    filters = [topics.label, f"{topics.prefix}/+/label"]
    if discovery_prefix is not None:
        filters.append(f"{discovery_prefix}/+/{node_id(topics.prefix)}/+/config")
    return filters


def discovery_messages(topics: Topics, discovery_prefix: str, qos: int,
                       zones: tuple[str, ...]) -> list[tuple[str, str]]:
    """Home Assistant MQTT discovery: (config topic, JSON) for each entity of this device."""
    node = node_id(topics.prefix)
    device = {"identifiers": [node], "name": f"edgecam {topics.prefix.rsplit('/', 1)[-1]}",
              "manufacturer": "edgecam", "model": "camera classifier", "sw_version": __version__}
    origin = {"name": "edgecam", "sw_version": __version__}
    available = {"availability_topic": topics.availability, "payload_available": ONLINE,
                 "payload_not_available": OFFLINE}
    entities = {}
    for zone in zones or (None,):
        entities.update(_result_entities(topics, discovery_prefix, node, zone, available))
    entities.update({
        f"{discovery_prefix}/binary_sensor/{node}/online/config": {
            "name": "Online", "unique_id": f"{node}_online", "state_topic": topics.availability,
            "payload_on": ONLINE, "payload_off": OFFLINE, "device_class": "connectivity",
            "entity_category": "diagnostic"},
        # A board that does not report a figure has null there: it renders as "None", which
        # Home Assistant shows as unknown (not 0 °C, not "no problem").
        f"{discovery_prefix}/sensor/{node}/temperature/config": {
            "name": "CPU temperature", "unique_id": f"{node}_temperature", "state_topic": topics.stats,
            "value_template": "{{ value_json.board.temperature_c }}", "device_class": "temperature",
            "unit_of_measurement": "°C", "state_class": "measurement",
            "entity_category": "diagnostic", **available},
        # The version a fleet rollout installed (edgecam.fleet); unknown while the config's model runs.
        f"{discovery_prefix}/sensor/{node}/model_version/config": {
            "name": "Model version", "unique_id": f"{node}_model_version", "state_topic": topics.stats,
            "value_template": "{{ value_json.model_version }}", "icon": "mdi:package-variant",
            "entity_category": "diagnostic", **available},
        **{f"{discovery_prefix}/binary_sensor/{node}/{flag}/config": {
            "name": name, "unique_id": f"{node}_{flag}", "state_topic": topics.stats,
            "value_template": f"{{{{ value_json.board.{flag} }}}}", "payload_on": "True",
            "payload_off": "False", "device_class": "problem", "entity_category": "diagnostic",
            **available}
           for flag, name in (("under_voltage", "Under-voltage"), ("throttled", "Throttled"))},
    })
    return [(topic, json.dumps({**config, "qos": qos, "device": device, "origin": origin}))
            for topic, config in entities.items()]


def _result_entities(topics: Topics, discovery_prefix: str, node: str, zone: str | None,
                     available: dict[str, str]) -> dict[str, dict[str, object]]:
    """The label and score sensors of the whole frame, or of one zone ("Door label", "Door score")."""
    object_id = f"{zone}_" if zone else ""
    title = zone.replace("_", " ").replace("-", " ").capitalize() if zone else ""
    names = (f"{title} label", f"{title} score") if zone else ("Label", "Score")
    label, classification = topics.label_of(zone), topics.classification_of(zone)
    top = "value_json.labels[0]"
    return {
        f"{discovery_prefix}/sensor/{node}/{object_id}label/config": {
            "name": names[0], "unique_id": f"{node}_{object_id}label",
            "state_topic": label, "icon": "mdi:image-search",
            "json_attributes_topic": classification,
            "json_attributes_template": (
                f"{{{{ {{'index': {top}.index, 'score': {top}.score, "
                "'latency_ms': value_json.latency_ms, 'seq': value_json.seq} | tojson }}"),
            **available},
        f"{discovery_prefix}/sensor/{node}/{object_id}score/config": {
            "name": names[1], "unique_id": f"{node}_{object_id}score",
            "state_topic": classification,
            "value_template": f"{{{{ ({top}.score * 100) | round(1) }}}}",
            "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent",
            **available},
    }
