"""The MQTT topics of one device, and its Home Assistant discovery messages.

Topics, under `outputs.mqtt.topic_prefix` (default `edgecam/<hostname>`):

    <prefix>/classification   every emitted result, the socket's JSON message
    <prefix>/label            the current top label, plain text (retained with `retain: true`)
    <prefix>/stats            the stats message, every `stats_interval_s`
    <prefix>/availability     `online` / `offline`, retained; `offline` is also the last will

With `homeassistant: true`, retained Home Assistant discovery messages announce one
device per prefix with a label sensor, a score sensor and a connectivity binary
sensor, and the board's health from the stats topic: a CPU temperature sensor and
under-voltage and throttling problem sensors. They are sent again whenever Home
Assistant says it (re)started.
"""

from __future__ import annotations

import json
import re
import socket

from edgecam import __version__

ONLINE, OFFLINE = "online", "offline"


class Topics:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.classification = f"{prefix}/classification"
        self.label = f"{prefix}/label"
        self.stats = f"{prefix}/stats"
        self.availability = f"{prefix}/availability"


def default_prefix() -> str:
    return f"edgecam/{socket.gethostname()}"


def node_id(prefix: str) -> str:
    """Home Assistant's node and device id: the prefix in [a-zA-Z0-9_-] (`edgecam_kitchen-pi`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix)


def discovery_messages(topics: Topics, discovery_prefix: str, qos: int) -> list[tuple[str, str]]:
    """Home Assistant MQTT discovery: (config topic, JSON) for each entity of this device."""
    node = node_id(topics.prefix)
    device = {"identifiers": [node], "name": f"edgecam {topics.prefix.rsplit('/', 1)[-1]}",
              "manufacturer": "edgecam", "model": "camera classifier", "sw_version": __version__}
    origin = {"name": "edgecam", "sw_version": __version__}
    available = {"availability_topic": topics.availability, "payload_available": ONLINE,
                 "payload_not_available": OFFLINE}
    top = "value_json.labels[0]"
    entities = {
        f"{discovery_prefix}/sensor/{node}/label/config": {
            "name": "Label", "unique_id": f"{node}_label", "state_topic": topics.label,
            "icon": "mdi:image-search",
            "json_attributes_topic": topics.classification,
            "json_attributes_template": (
                f"{{{{ {{'index': {top}.index, 'score': {top}.score, "
                "'latency_ms': value_json.latency_ms, 'seq': value_json.seq} | tojson }}"),
            **available},
        f"{discovery_prefix}/sensor/{node}/score/config": {
            "name": "Score", "unique_id": f"{node}_score", "state_topic": topics.classification,
            "value_template": f"{{{{ ({top}.score * 100) | round(1) }}}}",
            "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent",
            **available},
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
        **{f"{discovery_prefix}/binary_sensor/{node}/{flag}/config": {
            "name": name, "unique_id": f"{node}_{flag}", "state_topic": topics.stats,
            "value_template": f"{{{{ value_json.board.{flag} }}}}", "payload_on": "True",
            "payload_off": "False", "device_class": "problem", "entity_category": "diagnostic",
            **available}
           for flag, name in (("under_voltage", "Under-voltage"), ("throttled", "Throttled"))},
    }
    return [(topic, json.dumps({**config, "qos": qos, "device": device, "origin": origin}))
            for topic, config in entities.items()]
