"""The MQTT output against real Mosquitto brokers, with the real daemon, model and photos.

Each test starts its own brokers on 127.0.0.1 (tests/brokers.py) and daemons
(tests/harness.py); finalizers stop them all by pid. Waits only bound hangs:
no assertion measures speed.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from brokers import Message, Subscriber, make_tls, password_file
from conftest import run_edgecam
from harness import EXPECTED_TOP1, base_config, wait_for, write_config
from sysfs import fake_sysfs

from edgecam.daemon.board_watch import BOARD_ROOT_ENV
from edgecam.errors import EX_CONFIG

pytest.importorskip("paho.mqtt.client")

PREFIX = "edgecam/test-cam"
LABELS = set(EXPECTED_TOP1.values())


def mqtt_config(tmp_path: Path, port: int, **mqtt: Any) -> dict[str, Any]:
    settings = {"enabled": True, "host": "127.0.0.1", "port": port, "topic_prefix": PREFIX,
                "keepalive_s": 2, "stats_interval_s": 1, **mqtt}
    return base_config(tmp_path, outputs={"mqtt": settings})


def topic(name: str, prefix: str = PREFIX) -> str:
    return f"{prefix}/{name}"


def classifications(subscriber: Subscriber, since: int = 0) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in subscriber.on(topic("classification"), since)]


def socket_stats(client, predicate=lambda _s: True, count: int = 60) -> dict[str, Any]:
    """The first stats message from the daemon's socket that satisfies `predicate`."""
    for _ in range(count):
        stats = client.messages("stats", 1)[0]
        if predicate(stats):
            return stats
    raise AssertionError(f"no stats message matched in {count}: last {stats}")


# --- results, label, availability ----------------------------------------------------------------


def test_results_label_stats_and_availability(tmp_path: Path, daemons, mosquitto, subscribers) -> None:
    broker = mosquitto()
    live = subscribers(broker.port, [f"{PREFIX}/#"])
    daemon = daemons(mqtt_config(tmp_path, broker.port))
    live.wait(topic("availability"), lambda m: m.payload == "online", what="availability online")
    wait_for(lambda: {c["labels"][0]["label"] for c in classifications(live)} >= LABELS, 60,
             "every photo's label on the classification topic")
    assert {c["labels"][0]["label"] for c in classifications(live)} == LABELS
    # The retained label is its own publish, right after the classification's: it may trail it.
    wait_for(lambda: {m.payload for m in live.on(topic("label"))} >= LABELS, 60, "every label")
    assert {m.payload for m in live.on(topic("label"))} == LABELS

    # The same JSON as the socket, result for result.
    sent = daemon.client().messages("classification", 1)[0]
    received = live.wait(topic("classification"), lambda m: json.loads(m.payload)["seq"] == sent["seq"])
    assert json.loads(received.payload) == sent

    # Stats, with the MQTT output's own counters.
    stats = json.loads(live.wait(topic("stats")).payload)
    assert stats["type"] == "stats" and stats["outputs"]["mqtt_connected"] is True
    assert stats["outputs"]["mqtt_published"] > 0

    # A subscriber arriving later gets the current label and availability at once (retained).
    late = subscribers(broker.port, [topic("label"), topic("availability")])
    label = late.wait(topic("label"), what="the retained label")
    assert label.retain and label.payload in LABELS
    assert late.wait(topic("availability")).payload == "online"

    # A clean stop says offline; it stays retained for the next subscriber.
    assert daemon.stop() == 0
    assert live.wait(topic("availability"), lambda m: m.payload == "offline").payload == "offline"
    after = subscribers(broker.port, [topic("availability")])
    message = after.wait(topic("availability"), what="the retained availability")
    assert message.retain and message.payload == "offline"
    assert "Traceback" not in daemon.log()


def test_sigkill_leaves_offline_through_the_last_will(tmp_path: Path, daemons, mosquitto,
                                                      subscribers) -> None:
    broker = mosquitto()
    watch = subscribers(broker.port, [topic("availability")])
    daemon = daemons(mqtt_config(tmp_path, broker.port, keepalive_s=2))
    watch.wait(topic("availability"), lambda m: m.payload == "online")
    mark = watch.mark()
    daemon.signal(signal.SIGKILL)
    daemon.proc.wait(30)
    # The broker publishes the will once 1.5 keepalives pass without a word (or the socket closes).
    message = watch.wait(topic("availability"), lambda m: m.payload == "offline", since=mark,
                         what="the last will")
    assert message.payload == "offline"
    assert subscribers(broker.port, [topic("availability")]).wait(topic("availability")).payload == \
        "offline"


# --- the broker goes away for 10 s -----------------------------------------------------------------


def test_broker_restart_keeps_the_pipeline_going_and_counts_what_was_dropped(
        tmp_path: Path, daemons, mosquitto, subscribers) -> None:
    queue_length = 5
    broker = mosquitto()
    live = subscribers(broker.port, [f"{PREFIX}/#"])
    daemon = daemons(mqtt_config(tmp_path, broker.port, queue_length=queue_length))
    client = daemon.client()
    live.wait(topic("classification"))

    broker.stop()
    stopped = time.monotonic()
    socket_stats(client, lambda s: s["outputs"]["mqtt_connected"] is False)
    # The socket is unaffected: results keep coming, in order, for the 10 s the broker is away.
    seqs: list[int] = []
    while time.monotonic() - stopped < 10 or len(seqs) < queue_length + 5:
        seqs.append(client.messages("classification", 1)[0]["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    away = socket_stats(client)
    assert away["outputs"]["mqtt_connected"] is False
    assert away["outputs"]["mqtt_dropped"] > 0  # more results than the queue holds

    broker.start()  # the same port
    back = socket_stats(client, lambda s: s["outputs"]["mqtt_connected"] is True)
    outputs = back["outputs"]
    assert outputs["mqtt_reconnects"] >= 1
    assert outputs["mqtt_dropped"] >= away["outputs"]["mqtt_dropped"]
    # Every emitted result was published or counted as dropped, but for those still in flight.
    in_flight = outputs["emitted"] - outputs["mqtt_published"] - outputs["mqtt_dropped"]
    assert 0 <= in_flight <= 256 + queue_length + 20, outputs
    assert outputs["output_errors"] == 0, back
    assert re.search(r"mqtt: reconnected to 127\.0\.0\.1:\d+; [1-9]\d* result\(s\) dropped meanwhile",
                     daemon.log()), daemon.log()

    # The restarted broker kept nothing (no persistence): what a new subscriber gets retained,
    # the daemon republished after reconnecting.
    fresh = subscribers(broker.port, [topic("availability"), topic("label")])
    available = fresh.wait(topic("availability"))
    assert available.retain and available.payload == "online"
    label = fresh.wait(topic("label"))
    assert label.retain and label.payload in LABELS
    # Results flow again, and the stats on MQTT report the drops too.
    mark = live.mark()
    live.wait(topic("classification"), since=mark, what="results after the restart")
    mqtt_stats = json.loads(live.wait(topic("stats"), since=mark).payload)
    assert mqtt_stats["outputs"]["mqtt_dropped"] > 0
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


# --- TLS and a password ----------------------------------------------------------------------------


@pytest.fixture
def secure_broker(tmp_path: Path, mosquitto):
    tls = make_tls(tmp_path / "tls")
    users = password_file(tmp_path / "broker.passwd", {"edgecam": "s3cret pass", "watcher": "w4tch"})
    return mosquitto(tls=tls, passwords=users), tls


def test_tls_with_a_ca_and_a_password(tmp_path: Path, daemons, secure_broker, subscribers) -> None:
    broker, tls = secure_broker
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret pass\n")
    secret.chmod(0o600)
    watch = subscribers(broker.port, [f"{PREFIX}/#"], tls=tls, username="watcher", password="w4tch")
    # `localhost`: the broker's certificate is checked against the CA and this name.
    config = mqtt_config(tmp_path, broker.port, host="localhost", username="edgecam",
                         password_file=str(secret), tls={"ca_file": str(tls.ca)})
    daemon = daemons(config)
    watch.wait(topic("availability"), lambda m: m.payload == "online")
    wait_for(lambda: {c["labels"][0]["label"] for c in classifications(watch)} >= LABELS, 60,
             "every photo's label over TLS")
    log = daemon.log()
    assert "(TLS)" in log and "s3cret" not in log
    assert daemon.stop() == 0


@pytest.mark.parametrize("problem", ["wrong-password", "unknown-ca"])
def test_a_broker_that_refuses_us_never_stops_the_pipeline(tmp_path: Path, daemons, secure_broker,
                                                           problem: str) -> None:
    broker, tls = secure_broker
    secret = tmp_path / "mqtt.password"
    secret.write_text("wrong" if problem == "wrong-password" else "s3cret pass")
    ca = tls.ca if problem == "wrong-password" else make_tls(tmp_path / "other-ca").ca
    config = mqtt_config(tmp_path, broker.port, host="localhost", username="edgecam",
                         password_file=str(secret), tls={"ca_file": str(ca)})
    daemon = daemons(config)
    client = daemon.client()
    assert len(client.messages("classification", 10)) == 10
    expected = (r"Not authorized|Bad user name or password" if problem == "wrong-password"
                else "CERTIFICATE_VERIFY_FAILED")
    wait_for(lambda: re.search(rf"mqtt: cannot connect to localhost:\d+: .*({expected})", daemon.log()),
             60, f"the {problem} warning")
    assert socket_stats(client)["outputs"]["mqtt_connected"] is False
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


# --- Home Assistant discovery -----------------------------------------------------------------------
# What Home Assistant requires of a discovery message, from its MQTT documentation
# (integrations/mqtt "MQTT Discovery", integrations/sensor.mqtt, integrations/binary_sensor.mqtt)
# and the schemas in homeassistant/components/mqtt (schemas.py: the device must have at least one
# of `identifiers` and `connections`; `availability` and `availability_topic` are exclusive).

DISCOVERY_TOPIC = re.compile(r"(?P<prefix>[^/#+]+)/(?P<component>sensor|binary_sensor)/"
                             r"(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")
COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic",
    "name", "object_id", "default_entity_id", "origin", "payload_available", "payload_not_available",
    "platform", "qos", "state_topic", "unique_id", "value_template"}
COMPONENT_KEYS = {
    "sensor": COMMON_KEYS | {"last_reset_value_template", "options", "state_class",
                             "suggested_display_precision", "unit_of_measurement"},
    "binary_sensor": COMMON_KEYS | {"off_delay", "payload_off", "payload_on"},
}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
               "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}
BINARY_SENSOR_CLASSES = {"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity",
                         "door", "garage_door", "gas", "heat", "light", "lock", "moisture", "motion",
                         "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
                         "running", "safety", "smoke", "sound", "tamper", "update", "vibration",
                         "window"}


def valid_topic(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not set(value) & {"#", "+", "\0"}


def ha_discovery_problems(config_topic: str, config: dict[str, Any]) -> list[str]:
    """Everything Home Assistant would reject (or silently ignore) in one discovery message."""
    match = DISCOVERY_TOPIC.fullmatch(config_topic)
    if not match:
        return [f"{config_topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"]
    component = match["component"]
    problems = [f"unknown key {key!r}" for key in set(config) - COMPONENT_KEYS[component]]
    if not valid_topic(config.get("state_topic")):
        problems.append("state_topic is required, a topic without wildcards")
    device = config.get("device")
    if device is not None:
        if not config.get("unique_id"):
            problems.append("device only works when unique_id is set")
        if not isinstance(device, dict) or not (device.get("identifiers") or device.get("connections")):
            problems.append("device needs at least one of identifiers, connections")
        else:
            problems += [f"unknown device key {key!r}" for key in set(device) - DEVICE_KEYS]
            ids = device.get("identifiers")
            if not (isinstance(ids, str) or (isinstance(ids, list) and all(isinstance(i, str)
                                                                            for i in ids))):
                problems.append("device.identifiers: a string or a list of strings")
    if "availability" in config and "availability_topic" in config:
        problems.append("availability and availability_topic are exclusive")
    if "availability_topic" in config and not valid_topic(config["availability_topic"]):
        problems.append("availability_topic: a topic without wildcards")
    for key in ("payload_available", "payload_not_available", "payload_on", "payload_off", "name",
                "unique_id", "value_template", "unit_of_measurement"):
        if key in config and not isinstance(config[key], str):
            problems.append(f"{key}: a string")
    if "origin" in config and not (isinstance(config["origin"], dict) and config["origin"].get("name")):
        problems.append("origin needs a name")
    if config.get("qos", 0) not in (0, 1, 2):
        problems.append("qos: 0, 1 or 2")
    if config.get("entity_category") not in (None, "config", "diagnostic"):
        problems.append("entity_category: config or diagnostic")
    if component == "sensor" and config.get("state_class") not in (
            None, "measurement", "measurement_angle", "total", "total_increasing"):
        problems.append("state_class: measurement, total or total_increasing")
    if component == "binary_sensor" and config.get("device_class") not in (None,
                                                                          *BINARY_SENSOR_CLASSES):
        problems.append("device_class: not a binary sensor class")
    return problems


def render(template: str, payload: str) -> str:
    """A value template rendered as Home Assistant does: `value` and `value_json` from the payload."""
    import jinja2

    return jinja2.Environment().from_string(template).render(value=payload,
                                                             value_json=json.loads(payload))


def test_home_assistant_discovery(tmp_path: Path, daemons, mosquitto, subscribers) -> None:
    pytest.importorskip("jinja2")
    broker = mosquitto()
    # A Pi at 61.5 °C, under-voltage now (0x1), throttled earlier (0x40000).
    board = fake_sysfs(tmp_path / "board", {"cpu-thermal": "61500"}, throttled="0x40001")
    daemon = daemons(mqtt_config(tmp_path, broker.port, homeassistant=True),
                     env={BOARD_ROOT_ENV: str(board)})
    watch = subscribers(broker.port, [topic("availability")])
    watch.wait(topic("availability"), lambda m: m.payload == "online")
    ha = subscribers(broker.port, ["homeassistant/#", f"{PREFIX}/#"])
    wait_for(lambda: len({m.topic for m in ha.messages if m.topic.startswith("homeassistant/")}) >= 6,
             60, "six discovery messages")
    configs = {m.topic: json.loads(m.payload) for m in ha.messages
               if m.topic.startswith("homeassistant/")}
    # Sent before availability (so before we subscribed), and retained.
    assert all(m.retain for m in ha.messages if m.topic in configs)
    for config_topic, config in configs.items():
        assert ha_discovery_problems(config_topic, config) == [], (config_topic, config)

    by_kind = {(DISCOVERY_TOPIC.fullmatch(t)["component"], DISCOVERY_TOPIC.fullmatch(t)["object_id"]): c
               for t, c in configs.items()}
    assert set(by_kind) == {("sensor", "label"), ("sensor", "score"), ("binary_sensor", "online"),
                            ("sensor", "temperature"), ("binary_sensor", "under_voltage"),
                            ("binary_sensor", "throttled"), ("sensor", "model_version")}
    # One device for this camera, seven distinct entities.
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1
    assert len({c["unique_id"] for c in configs.values()}) == 7
    node = {DISCOVERY_TOPIC.fullmatch(t)["node_id"] for t in configs}
    assert node == {"edgecam_test-cam"} and by_kind["sensor", "label"]["device"]["identifiers"] == [
        "edgecam_test-cam"]

    # The topics they name carry what they expect.
    label, score, online = by_kind["sensor", "label"], by_kind["sensor", "score"], \
        by_kind["binary_sensor", "online"]
    assert ha.wait(label["state_topic"]).payload in LABELS
    assert label["availability_topic"] == online["state_topic"] == topic("availability")
    assert ha.wait(online["state_topic"]).payload == online["payload_on"] == label["payload_available"]
    message = ha.wait(score["state_topic"])
    value = float(render(score["value_template"], message.payload))
    assert value == round(json.loads(message.payload)["labels"][0]["score"] * 100, 1)
    assert 0 <= value <= 100
    attributes = json.loads(render(label["json_attributes_template"], message.payload))
    assert set(attributes) == {"index", "score", "latency_ms", "seq"}

    # The board's health, from the stats topic.
    temperature, under_voltage, throttled = (by_kind["sensor", "temperature"],
                                             by_kind["binary_sensor", "under_voltage"],
                                             by_kind["binary_sensor", "throttled"])
    assert (temperature["device_class"], temperature["unit_of_measurement"],
            temperature["state_class"]) == ("temperature", "°C", "measurement")
    assert under_voltage["device_class"] == throttled["device_class"] == "problem"
    for entity in (temperature, under_voltage, throttled):
        assert entity["state_topic"] == topic("stats")
        assert entity["availability_topic"] == topic("availability")
    stats = ha.wait(topic("stats"), lambda m: json.loads(m.payload)["board"]["temperature_c"] is not None)
    assert render(temperature["value_template"], stats.payload) == "61.5"
    assert render(under_voltage["value_template"], stats.payload) == under_voltage["payload_on"]
    assert render(throttled["value_template"], stats.payload) == throttled["payload_off"]
    # The model version a fleet rollout installed: unknown while the config's own model runs.
    version = by_kind["sensor", "model_version"]
    assert version["state_topic"] == topic("stats") and version["entity_category"] == "diagnostic"
    assert render(version["value_template"], stats.payload) == "None"
    assert render(version["value_template"], json.dumps({"model_version": "v2"})) == "v2"
    # A board that does not report them (not a Pi): "None", which Home Assistant shows as unknown.
    unknown = json.dumps({"board": dict.fromkeys(json.loads(stats.payload)["board"])})
    assert {render(e["value_template"], unknown) for e in (temperature, under_voltage, throttled)} == {
        "None"}

    # Home Assistant restarted (its birth message): the device is announced again.
    mark = ha.mark()
    ha.publish("homeassistant/status", "online")
    wait_for(lambda: {m.topic for m in ha.messages[mark:]} >= set(configs), 60,
             "discovery sent again after Home Assistant's birth message")
    assert daemon.stop() == 0


# --- reload -----------------------------------------------------------------------------------------


def test_reload_keeps_an_unchanged_connection_and_moves_to_a_new_prefix(
        tmp_path: Path, daemons, mosquitto, subscribers) -> None:
    broker = mosquitto()
    watch = subscribers(broker.port, ["edgecam/#"])
    config = mqtt_config(tmp_path, broker.port)
    daemon = daemons(config)
    watch.wait(topic("availability"), lambda m: m.payload == "online")

    config["outputs"]["min_score"] = 0.2  # outputs change, the MQTT settings do not
    write_config(daemon.config_path, config)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: outputs" in daemon.log(), 30, "the first reload")
    mark = watch.mark()
    watch.wait(topic("classification"), since=mark)
    assert [m.payload for m in watch.on(topic("availability"))] == ["online"]
    assert broker.log().count("New client connected") == 2  # the watcher and one daemon connection

    config["outputs"]["mqtt"]["topic_prefix"] = "edgecam/renamed"
    write_config(daemon.config_path, config)
    daemon.signal(signal.SIGHUP)
    watch.wait(topic("availability"), lambda m: m.payload == "offline", since=mark)
    watch.wait(topic("availability", "edgecam/renamed"), lambda m: m.payload == "online", since=mark)
    watch.wait(topic("classification", "edgecam/renamed"), since=mark)
    assert daemon.stop() == 0
    watch.wait(topic("availability", "edgecam/renamed"), lambda m: m.payload == "offline", since=mark)


# --- configuration mistakes -------------------------------------------------------------------------


def test_mqtt_config_mistakes_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "edgecam.yaml"
    path.write_text(
        "outputs:\n"                          # 1
        "  mqtt:\n"                           # 2
        "    enabled: true\n"                 # 3
        "    host: mqtt://broker.local\n"     # 4
        "    port: 70000\n"                   # 5
        "    password_file: missing.pw\n"     # 6
        "    qos: 3\n"                        # 7
        "    topic_prefix: cams/+/x\n"        # 8
        "    tls:\n"                          # 9
        "      ca_file: nope/ca.crt\n"        # 10
        "      key_file: client.key\n")       # 11
    result = run_edgecam("check-config", "-c", path)
    assert result.returncode == EX_CONFIG, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:4", "outputs.mqtt.host"], [f"{path}:5", "outputs.mqtt.port"],
        [f"{path}:6", "outputs.mqtt.password_file"], [f"{path}:7", "outputs.mqtt.qos"],
        [f"{path}:8", "outputs.mqtt.topic_prefix"], [f"{path}:10", "outputs.mqtt.tls.ca_file"],
        [f"{path}:11", "outputs.mqtt.tls.key_file"]], lines
    assert f"{tmp_path / 'missing.pw'}: no such file" in lines[2]
    assert f"{tmp_path / 'nope' / 'ca.crt'}: no such file" in lines[5]
    assert "out of range (1..65535)" in lines[1] and "Traceback" not in result.stderr


def test_mqtt_settings_that_only_make_sense_together(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x\n")
    (tmp_path / "client.crt").write_text("x\n")
    path = tmp_path / "edgecam.yaml"
    path.write_text("outputs:\n  mqtt:\n    password_file: pw\n    tls:\n      cert_file: client.crt\n")
    result = run_edgecam("check-config", "-c", path)
    assert result.returncode == EX_CONFIG
    assert result.stderr.splitlines() == [
        f"{path}:3: outputs.mqtt.password_file: a password needs a username (outputs.mqtt.username)",
        f"{path}:5: outputs.mqtt.tls.cert_file: a client certificate needs TLS: set ca_file too"]


def test_an_empty_password_file_stops_the_start_with_one_line(tmp_path: Path, daemons) -> None:
    secret = tmp_path / "empty.password"
    secret.write_text("\n")
    daemon = daemons(mqtt_config(tmp_path, 1883, username="edgecam", password_file=str(secret)))
    assert daemon.proc.wait(60) != 0
    log = daemon.log()
    assert f"outputs.mqtt.password_file: {secret} is empty" in log and "Traceback" not in log


# --- zones ------------------------------------------------------------------------------------------
# Two zones on the photos: the whole picture, and its centre (where Grace Hopper's cap leads).

ZONES = [{"name": "door", "crop": [0.0, 0.0, 1.0, 1.0]},
         {"name": "feeder", "crop": [0.1, 0.1, 0.8, 0.8]}]
ZONE_LABELS = {"door": LABELS, "feeder": {"Egyptian cat", "macaw", "mortarboard"}}
BOARD_ENTITIES = {("binary_sensor", "online"), ("sensor", "temperature"),
                  ("binary_sensor", "under_voltage"), ("binary_sensor", "throttled"),
                  ("sensor", "model_version")}


def zoned(config: dict[str, Any], zones: list[dict[str, Any]] = ZONES) -> dict[str, Any]:
    config["zones"] = zones
    return config


def zone_labels(subscriber: Subscriber, zone: str, since: int = 0) -> set[str]:
    return {json.loads(m.payload)["labels"][0]["label"]
            for m in subscriber.on(topic(f"{zone}/classification"), since)}


def retained(port: int, subscribers, filters: list[str]) -> dict[str, Message]:
    """Every retained message on `filters` now, as a subscriber arriving now gets them: a marker
    it publishes after subscribing comes back after them (one connection, in order)."""
    fresh = subscribers(port, [*filters, "test/marker"])
    fresh.publish("test/marker", "end")
    fresh.wait("test/marker", what="the marker after the retained messages")
    return {m.topic: m for m in fresh.messages if m.retain and m.topic != "test/marker"}


def entities(messages: dict[str, Message]) -> set[tuple[str, str]]:
    """(component, object_id) of each discovery message that announces an entity (not a clear)."""
    found = set()
    for config_topic, message in messages.items():
        match = DISCOVERY_TOPIC.fullmatch(config_topic)
        if match and message.payload:
            found.add((match["component"], match["object_id"]))
    return found


def zone_entities(*zones: str) -> set[tuple[str, str]]:
    return {("sensor", f"{zone}_{kind}") for zone in zones for kind in ("label", "score")}


def test_each_zone_has_its_own_topics_and_retained_label(tmp_path: Path, daemons, mosquitto,
                                                         subscribers) -> None:
    broker = mosquitto()
    live = subscribers(broker.port, [f"{PREFIX}/#"])
    daemon = daemons(zoned(mqtt_config(tmp_path, broker.port)))
    for zone, labels in ZONE_LABELS.items():
        wait_for(lambda zone=zone, labels=labels: zone_labels(live, zone) >= labels, 60,
                 f"every label of {zone} on its classification topic")
        assert zone_labels(live, zone) == labels
        assert {json.loads(m.payload)["zone"] for m in live.on(topic(f"{zone}/classification"))} == {
            zone}
        wait_for(lambda zone=zone, labels=labels: {m.payload for m in live.on(topic(f"{zone}/label"))}
                 >= labels, 60, f"every label of {zone} on its label topic")
    # Nothing on the whole frame's topics: with zones there is no whole-frame result.
    assert not live.on(topic("classification")) and not live.on(topic("label"))
    stats = json.loads(live.wait(topic("stats"), lambda m: "zones" in json.loads(m.payload)).payload)
    assert set(stats["zones"]) == {"door", "feeder"}
    assert all(counts["classified"] >= counts["emitted"] > 0 for counts in stats["zones"].values())

    # After a stop each zone's label stays retained: the last one it published.
    assert daemon.stop() == 0
    live.wait(topic("availability"), lambda m: m.payload == "offline")
    kept = retained(broker.port, subscribers, [f"{PREFIX}/#"])
    assert set(kept) == {topic("availability"), topic("door/label"), topic("feeder/label")}
    for zone in ZONE_LABELS:
        assert kept[topic(f"{zone}/label")].payload == live.on(topic(f"{zone}/label"))[-1].payload
    assert "Traceback" not in daemon.log()


def test_home_assistant_gets_a_label_and_a_score_sensor_per_zone(tmp_path: Path, daemons, mosquitto,
                                                                 subscribers) -> None:
    pytest.importorskip("jinja2")
    broker = mosquitto()
    daemon = daemons(zoned(mqtt_config(tmp_path, broker.port, homeassistant=True)))
    ha = subscribers(broker.port, ["homeassistant/#", f"{PREFIX}/#"])
    wait_for(lambda: len({m.topic for m in ha.messages if m.topic.startswith("homeassistant/")}) >= 8,
             60, "eight discovery messages")
    configs = {m.topic: json.loads(m.payload) for m in ha.messages
               if m.topic.startswith("homeassistant/")}
    for config_topic, config in configs.items():
        assert ha_discovery_problems(config_topic, config) == [], (config_topic, config)
    by_kind = {(DISCOVERY_TOPIC.fullmatch(t)["component"], DISCOVERY_TOPIC.fullmatch(t)["object_id"]): c
               for t, c in configs.items()}
    # Each zone's sensors in place of the whole frame's; the board's as ever; one device.
    assert set(by_kind) == zone_entities("door", "feeder") | BOARD_ENTITIES
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1
    assert len({c["unique_id"] for c in configs.values()}) == 9
    assert by_kind["sensor", "door_label"]["name"] == "Door label"
    assert by_kind["sensor", "feeder_score"]["name"] == "Feeder score"

    for zone in ZONE_LABELS:
        label, score = by_kind["sensor", f"{zone}_label"], by_kind["sensor", f"{zone}_score"]
        assert label["state_topic"] == topic(f"{zone}/label")
        assert label["json_attributes_topic"] == score["state_topic"] == topic(f"{zone}/classification")
        assert label["availability_topic"] == score["availability_topic"] == topic("availability")
        assert ha.wait(label["state_topic"]).payload in ZONE_LABELS[zone]
        message = ha.wait(score["state_topic"])
        value = float(render(score["value_template"], message.payload))
        assert value == round(json.loads(message.payload)["labels"][0]["score"] * 100, 1)
        attributes = json.loads(render(label["json_attributes_template"], message.payload))
        assert attributes["seq"] == json.loads(message.payload)["seq"]
    assert daemon.stop() == 0


def test_a_reload_retires_the_entities_and_label_of_a_removed_zone(tmp_path: Path, daemons, mosquitto,
                                                                   subscribers) -> None:
    broker = mosquitto()
    config = zoned(mqtt_config(tmp_path, broker.port, homeassistant=True))
    daemon = daemons(config)
    watch = subscribers(broker.port, ["homeassistant/#", f"{PREFIX}/#"])
    watch.wait(topic("feeder/label"), what="feeder's label")
    connections = broker.log().count("New client connected")

    def reload(zones: list[dict[str, Any]], expect: str) -> int:
        mark = watch.mark()
        config["zones"] = zones
        write_config(daemon.config_path, config)
        before = daemon.log().count(expect)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.log().count(expect) > before, 30, f"the reload ({expect})")
        return mark

    def cleared(config_topic: str, since: int) -> None:
        watch.wait(config_topic, lambda m: m.payload == "", since=since, what=f"{config_topic} cleared")

    # feeder removed: its two entities and its retained label are cleared, door's stay.
    mark = reload(ZONES[:1], "reloaded: zones")
    for kind in ("label", "score"):
        cleared(f"homeassistant/sensor/edgecam_test-cam/feeder_{kind}/config", mark)
    cleared(topic("feeder/label"), mark)
    now = retained(broker.port, subscribers, ["homeassistant/#", f"{PREFIX}/#"])
    assert entities(now) == zone_entities("door") | BOARD_ENTITIES
    assert topic("door/label") in now and topic("feeder/label") not in now
    late = watch.mark()
    wait_for(lambda: len(watch.on(topic("door/classification"), late)) >= 5, 60, "door's results")
    assert not watch.on(topic("feeder/classification"), late), "no feeder results once it went"

    # No zones at all: the whole frame's Label and Score come back, door's go.
    mark = reload([], "reloaded: zones")
    for kind in ("label", "score"):
        cleared(f"homeassistant/sensor/edgecam_test-cam/door_{kind}/config", mark)
    cleared(topic("door/label"), mark)
    watch.wait(topic("label"), lambda m: m.payload in LABELS, since=mark, what="the whole frame's label")
    now = retained(broker.port, subscribers, ["homeassistant/#", f"{PREFIX}/#"])
    assert entities(now) == {("sensor", "label"), ("sensor", "score")} | BOARD_ENTITIES
    assert {t for t in now if t.endswith("/label")} == {topic("label")}

    # Zones again: the whole frame's label and sensors are retired in turn.
    mark = reload(ZONES, "reloaded: zones")
    cleared(topic("label"), mark)
    for kind in ("label", "score"):
        cleared(f"homeassistant/sensor/edgecam_test-cam/{kind}/config", mark)
    watch.wait(topic("feeder/label"), since=mark, what="feeder's label again")
    now = retained(broker.port, subscribers, ["homeassistant/#", f"{PREFIX}/#"])
    assert entities(now) == zone_entities("door", "feeder") | BOARD_ENTITIES
    assert topic("label") not in now
    # All on one connection: a change of zones never reconnects.
    assert broker.log().count("New client connected") == connections + 3  # the three `retained` peeks
    assert {m.payload for m in watch.on(topic("availability"))} == {"online"}
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()


def test_a_restart_with_fewer_zones_clears_what_the_last_run_retained(tmp_path: Path, daemons,
                                                                      mosquitto, subscribers) -> None:
    """An edit followed by `systemctl restart` (not reload): the next run finds the stale ones."""
    broker = mosquitto()
    watch = subscribers(broker.port, ["homeassistant/#", f"{PREFIX}/#"])
    first = daemons(mqtt_config(tmp_path, broker.port, homeassistant=True))
    watch.wait(topic("label"), what="the whole frame's label")
    assert first.stop() == 0

    second = daemons(zoned(mqtt_config(tmp_path, broker.port, homeassistant=True)))
    watch.wait(topic("feeder/label"), what="feeder's label")
    assert second.stop() == 0
    now = retained(broker.port, subscribers, ["homeassistant/#", f"{PREFIX}/#"])
    assert entities(now) == zone_entities("door", "feeder") | BOARD_ENTITIES
    assert topic("label") not in now

    mark = watch.mark()
    third = daemons(zoned(mqtt_config(tmp_path, broker.port, homeassistant=True), ZONES[:1]))
    watch.wait(topic("feeder/label"), lambda m: m.payload == "", since=mark, what="feeder's label cleared")
    watch.wait("homeassistant/sensor/edgecam_test-cam/feeder_score/config", lambda m: m.payload == "",
               since=mark, what="feeder's score sensor cleared")
    watch.wait(topic("door/label"), since=mark, what="door's label")
    now = retained(broker.port, subscribers, ["homeassistant/#", f"{PREFIX}/#"])
    assert entities(now) == zone_entities("door") | BOARD_ENTITIES
    assert {t for t in now if t.endswith("/label")} == {topic("door/label")}
    assert third.stop() == 0
