"""A fleet of three real daemons (a, b, c) on one real Mosquitto: shared classes and model rollouts.

Each daemon reads a folder of held-out photos (views never learned:
tests/learn_views.py), cycled in name order, so a result's view is
(seq - 1) % len(folder). a learns class X (the cat) and b class Y (Grace
Hopper) from three training views each with `edgecam learn add`; c learns
nothing; c is the aggregator (fleet.aggregate): it alone hears every head,
and publishes the fleet's head that a and b hear. All three must then
recognize both; c's merged head must be what `edgecam learn merge` makes of
a's and b's (within float32 rounding: heads travel as float32). Rollouts are served by an HTTP
server on 127.0.0.1 from ../shared/models. A subscriber to `#` records every
message: the topics and sizes of what left the devices are checked at the end.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from brokers import Subscriber, free_port
from conftest import run_edgecam
from fleets import (
    DEFAULT,
    MODEL_TOPIC,
    SMALL,
    STREAM,
    WAIT_S,
    FileServer,
    X,
    Y,
    flowing,
    last_stats,
    learn,
    manifest,
    member_config,
    recognizes,
    start_members,
    stream_folder,
    wait_statuses,
)
from harness import Daemon, wait_for
from heads import OTHER_MODEL

from edgecam.models.fewshot.head import Head

RESULTS = {"classification", "label", "stats", "availability"}  # outputs.mqtt's
FLEET = {"head", "online", "seen"}  # and model_status once there is a rollout
MEMBER_KINDS = RESULTS | FLEET | {"model_status"}
FLEET_HEAD = "edgecam/fleet/head"  # the aggregator's merge (c's)


def head_equal(one: Head, other: Head) -> bool:
    """Equal within float32 rounding: heads travel as float32 (Head.to_wire)."""
    return (one.extractor_sha256 == other.extractor_sha256 and one.labels == other.labels
            and [c.count for c in one.classes] == [c.count for c in other.classes]
            and all(np.allclose(a.sum, b.sum, rtol=1e-6, atol=1e-6)
                    for a, b in zip(one.classes, other.classes, strict=True)))


def fleet_status(daemon: Daemon) -> dict[str, dict[str, Any]]:
    """`edgecam fleet status --json`'s members, by name."""
    done = run_edgecam("fleet", "status", "--json", "-c", daemon.config_path)
    assert done.returncode == 0, done.stderr
    return {member["device"]: member for member in json.loads(done.stdout)["members"]}


def check_traffic(everything: Subscriber, hand: set[str], kinds: set[str]) -> None:
    """Only results, heads, manifests and status on the broker: each device's topics of `kinds`
    exactly (and the manifest and what the test published by hand), bounded sizes, no image."""
    topics = {m.topic for m in everything.messages} - hand - {MODEL_TOPIC, FLEET_HEAD}
    assert topics == {f"edgecam/{device}/{kind}" for device in "abc" for kind in kinds}, topics
    for message in everything.messages:
        payload = message.payload.encode("utf-8", "surrogateescape")
        if message.topic in hand:
            continue
        if message.topic == FLEET_HEAD:  # the aggregator's: at most both classes, and members
            assert len(payload) <= 2 * (1024 * 4 * 4 // 3 + 300) + 3 * 120 + 300, len(payload)
            assert Head.parse(payload, "the fleet's head").members is not None
            continue
        root, _, rest = message.topic.partition("/")
        device, _, kind = rest.partition("/")
        assert root == "edgecam", message.topic
        if message.topic == MODEL_TOPIC:
            assert len(payload) < 1024
            continue
        assert device in "abc" and kind.split("/")[0] in MEMBER_KINDS, message.topic
        # A head is per class a label, a count and 1024 float32 (4 bytes, in base64): never a photo.
        bound = 2 * (1024 * 4 * 4 // 3 + 200) + 200 if kind == "head" else 8192
        assert len(payload) <= bound, (message.topic, len(payload))
        assert b"\xff\xd8\xff" not in payload and b"PNG\r\n" not in payload, message.topic
        if kind in ("head", "model_status", "seen", "stats", "classification") and payload:
            json.loads(payload)  # JSON documents, not blobs


def test_classes_learned_on_two_members_are_recognized_by_all(
        daemons, mosquitto, subscribers, tmp_path: Path) -> None:
    broker = mosquitto()
    everything = subscribers(broker.port, ["#"])
    fleet = start_members(daemons, tmp_path, broker.port)
    a, b, c = fleet["a"], fleet["b"], fleet["c"]
    nothing = ["unknown"] * len(STREAM)
    recognizes(c, nothing, "c to classify with an empty head at first")

    learn(a, X, "cat", tmp_path / "photos-a")
    learn(b, Y, "hopper", tmp_path / "photos-b")
    learned = time.monotonic()
    expected = [label for label, _photo, _view in STREAM]
    for device, daemon in fleet.items():
        recognizes(daemon, expected, f"{device} to recognize X and Y on held-out views")
        # How soon, for the record (never asserted: a slow machine is not a failure). It includes
        # the two whole cycles of the stream that `recognizes` reads.
        print(f"{device} recognized X and Y {time.monotonic() - learned:.1f} s after b learned Y")
    # c learned nothing: its head is exactly `learn merge` of a's and b's.
    a_head, b_head = (Path(d.config["model"]["head"]) for d in (a, b))
    merged_by_cli = tmp_path / "merged.head"
    done = run_edgecam("learn", "merge", merged_by_cli, a_head, b_head)
    assert done.returncode == 0, done.stderr
    c_head = tmp_path / "c" / "state" / "heads" / "fleet.head"
    assert head_equal(Head.load(c_head), Head.load(merged_by_cli))
    assert not Path(c.config["model"]["head"]).exists()  # c's own head: still nothing learned
    members = fleet_status(c)
    assert set(members) == set("abc") and all(m["online"] for m in members.values()), members
    assert members["a"]["heads"] == {"": [{"label": X, "count": 3}]}
    assert members["b"]["heads"] == {"": [{"label": Y, "count": 3}]}
    assert members["c"]["heads"] == {}
    text = run_edgecam("fleet", "status", "-c", c.config_path)
    assert text.returncode == 0, text.stderr
    assert "a: online, last seen " in text.stdout and "  head: X (3)" in text.stdout, text.stdout

    # Heads another extractor made, or that are no heads at all: refused, one line each, no change.
    before = c_head.read_bytes()
    foreign = Head(hashlib.sha256(OTHER_MODEL.read_bytes()).hexdigest(), 1001, OTHER_MODEL.name)
    foreign.add("Z", [np.eye(1001)[5]])
    hand = {"edgecam/intruder/head", "edgecam/junk/head"}
    for _ in range(2):
        everything.publish("edgecam/intruder/head", foreign.to_bytes().decode(), retain=True)
        everything.publish("edgecam/junk/head", "not a head", retain=True)
    # The aggregator (c) refuses them; a and b never even hear a member's head.
    wait_for(lambda: "intruder's head" in c.log() and "junk's head" in c.log(), WAIT_S,
             "c to refuse the hand-made heads")
    recognizes(c, expected, "c to go on recognizing X and Y")
    assert c_head.read_bytes() == before
    for device, daemon in fleet.items():
        refusals = [line for line in daemon.log().splitlines() if "fleet: refused" in line]
        assert len(refusals) == (2 if device == "c" else 0), refusals
        assert sum("intruder's head" in line for line in refusals) == (device == "c")
    for topic in hand:
        everything.publish(topic, "", retain=True)

    # b's retained head cleared: c no longer knows Y (the hopper views are no longer Y).
    everything.publish("edgecam/b/head", "", retain=True)
    without_y = [label if label != Y else "not Y" for label in expected]
    client = c.client()
    try:
        def y_gone() -> bool:
            seen = [m["labels"][0]["label"] for m in client.messages("classification",
                                                                     2 * len(STREAM))]
            return Y not in seen
        wait_for(y_gone, WAIT_S, "c to stop recognizing Y", interval=0)
        seen = client.results(4 * len(STREAM))
        assert Y not in {m["labels"][0]["label"] for m in seen}
        for m in seen:
            if without_y[(m["seq"] - 1) % len(STREAM)] == X:
                assert m["labels"][0]["label"] == X
    finally:
        client.close()
    assert Head.load(c_head).labels == [X]

    check_traffic(everything, hand, RESULTS | FLEET)
    for device, daemon in fleet.items():
        assert daemon.stop() == 0, daemon.log()
        assert "Traceback" not in daemon.log(), device


def test_merged_head_survives_a_restart_with_the_broker_down(
        daemons, mosquitto, tmp_path: Path) -> None:
    broker = mosquitto()
    fleet = start_members(daemons, tmp_path, broker.port)
    learn(fleet["a"], X, "cat", tmp_path / "photos-a")
    learn(fleet["b"], Y, "hopper", tmp_path / "photos-b")
    expected = [label for label, _photo, _view in STREAM]
    recognizes(fleet["c"], expected, "c to recognize X and Y")
    assert fleet["c"].stop() == 0
    broker.stop()
    again = daemons(fleet["c"].config, name="c-again")
    recognizes(again, expected, "c, restarted without a broker, to recognize X and Y")
    # c learns while away from the broker: its own class merges with the members' saved merge.
    learn(again, "Z", "parrot", tmp_path / "photos-c")
    recognizes(again, expected, "c to keep X and Y after learning Z without the broker")
    assert Head.load(tmp_path / "c" / "state" / "heads" / "fleet.head").labels == ["Z", X, Y]


def test_rollouts_switch_fail_and_roll_back_on_every_member(
        daemons, mosquitto, subscribers, file_server: FileServer, operator_key,
        tmp_path: Path) -> None:
    private, public = operator_key
    served = file_server.folder
    (served / "not-a-model.tflite").write_bytes(np.random.default_rng(3).bytes(200_000))
    broker = mosquitto()
    everything = subscribers(broker.port, ["#"])
    metrics_port = free_port()
    stream = stream_folder(tmp_path / "stream")
    fleet = {}
    for device in "abc":
        config = member_config(tmp_path, device, broker.port, stream, head=False,
                               manifest_key=str(public))
        if device == "a":
            config["outputs"]["metrics"] = {"enabled": True, "listen": f"127.0.0.1:{metrics_port}"}
        fleet[device] = daemons(config, name=device)
    for daemon in fleet.values():
        daemon.wait_socket()

    # A good manifest: all three switch, and say so (status, stats, /metrics).
    mark = everything.mark()
    everything.publish(MODEL_TOPIC, manifest(file_server, "v2-small", SMALL.name, key=private),
                       retain=True)
    wait_statuses(everything, mark, "v2-small", "active")
    for device, daemon in fleet.items():
        assert (tmp_path / device / "state" / "models" / "v2-small" / SMALL.name).is_file()
        wait_for(lambda d=device: last_stats(everything, d)["model_version"] == "v2-small", WAIT_S,
                 f"{device}'s stats to carry model_version")
        flowing(daemon)
    members = fleet_status(fleet["a"])
    assert {d: m["model"] for d, m in members.items()} == {
        d: {"version": "v2-small", "state": "active", "error": None} for d in "abc"}
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).read()
    assert b'edgecam_model_info{version="v2-small"} 1.0' in scrape

    # A wrong sha256, then a file that is not a model: nobody switches, all say why, results flow.
    for version, model, sha, reason in (("v3-bad-sum", SMALL.name, "0" * 64, "sha256 mismatch"),
                                        ("v3-no-model", "not-a-model.tflite", None,
                                         "not a usable TensorFlow Lite model")):
        mark = everything.mark()
        everything.publish(MODEL_TOPIC, manifest(file_server, version, model, sha256=sha, key=private),
                           retain=True)
        failed = wait_statuses(everything, mark, version, "failed")
        assert all(reason in status["error"] for status in failed.values()), failed
        for device, daemon in fleet.items():
            flowing(daemon)
            assert last_stats(everything, device)["model_version"] == "v2-small"

    # An older version rolls back the same way.
    mark = everything.mark()
    everything.publish(MODEL_TOPIC, manifest(file_server, "v1", DEFAULT.name, key=private),
                       retain=True)
    wait_statuses(everything, mark, "v1", "active")

    # The model server and the broker go away in the middle of a rollout: it still ends active.
    file_server.stop()
    mark = everything.mark()
    everything.publish(MODEL_TOPIC, manifest(file_server, "v4", SMALL.name, key=private),
                       retain=True)
    for device, daemon in fleet.items():
        wait_for(lambda d=daemon: "model v4: " in d.log(), WAIT_S, f"{device} to retry the download")
        flowing(daemon)  # the downloads retry in their own thread: results go on
    broker.stop()
    broker.start()
    file_server.start()
    wait_statuses(everything, mark, "v4", "active")
    for device, daemon in fleet.items():
        flowing(daemon)
        assert daemon.stop() == 0, daemon.log()
        assert "Traceback" not in daemon.log(), device
    check_traffic(everything, set(), RESULTS | {"online", "seen", "model_status"})  # no heads here


def test_fleet_without_mqtt_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "edgecam.yaml"
    path.write_text("outputs:\n  mqtt:\n    enabled: false\nfleet:\n  share_heads: true\n"
                    "  enabled: true\n")
    done = run_edgecam("check-config", "-c", path)
    assert done.returncode != 0
    assert done.stderr.strip() == (f"{path}:6: fleet.enabled: the fleet talks over the MQTT broker: "
                                   "set outputs.mqtt.enabled too")
