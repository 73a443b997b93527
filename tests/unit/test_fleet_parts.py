"""The fleet's parts in process: the members' heads and their merge, manifests, topics, the config."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re

import numpy as np
import pytest
from fleet_keys import make_key, signed
from heads import EXTRACTOR, classifier_for, make_head, top
from learn_views import TEST, views

from edgecam.config import Config, FleetConfig, parse_config
from edgecam.core.stats import Stats, status_line
from edgecam.errors import ConfigError
from edgecam.fleet.fleethead import MAX_FLEET_PAYLOAD, FleetHeads, combine
from edgecam.fleet.heads import HeadBook, Target
from edgecam.fleet.rollout import Manifest, ManifestError, Trust
from edgecam.fleet.topics import FleetTopics, MemberTopic, device_name
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head, HeadError, merge_heads
from edgecam.outputs.metrics import _StatsCollector

SHA = "ab" * 32


def target(embedder: Embedder, tmp_path, zone: str | None = None) -> Target:
    return Target(zone, tmp_path / "local.head", tmp_path / "fleet.head", str(EXTRACTOR),
                  embedder.sha256, embedder.dim)


def test_the_merge_is_learn_merges_own(embedder: Embedder, train, tmp_path) -> None:
    """The aggregator's merge is `learn merge` of the members' heads (in the order of their
    names); a member combines it with its own as `learn merge` of its own and theirs would."""
    book = HeadBook(Stats())
    mine = make_head(embedder, train, ("cat",))
    theirs = {"b": make_head(embedder, train, ("hopper", "cat"), examples=2),
              "a": make_head(embedder, train, ("parrot",), examples=1)}
    for device, head in theirs.items():
        assert book.offer(device, None, head.to_bytes())
    fleet = book.merge(target(embedder, tmp_path))
    assert fleet.fleet and fleet.labels == ["parrot", "hopper", "cat"]
    assert [d for d, _sha in fleet.members] == ["a", "b"]
    assert fleet.members[0][1] == hashlib.sha256(theirs["a"].to_bytes()).hexdigest()
    merged = combine(target(embedder, tmp_path), fleet, mine, ("me", None))
    expected = merge_heads([("this device", mine), ("a", theirs["a"]), ("b", theirs["b"])])
    assert merged.fleet and merged.labels == expected.labels == ["cat", "parrot", "hopper"]
    assert [c.count for c in merged.classes] == [5, 1, 2]
    for ours, reference in zip(merged.classes, expected.classes, strict=True):
        np.testing.assert_allclose(ours.sum, reference.sum, rtol=1e-12, atol=1e-12)
    # This device's own head, when the fleet's head already merged this version: not twice.
    assert combine(target(embedder, tmp_path), fleet, theirs["a"],
                   ("a", fleet.members[0][1])).find("parrot").count == 1
    assert combine(target(embedder, tmp_path), fleet, theirs["a"],
                   ("a", "0" * 64)).find("parrot").count == 2  # a newer version: until merged
    # Cleared (an empty retained message): that member no longer counts.
    assert book.offer("b", None, b"")
    fleet = book.merge(target(embedder, tmp_path))
    assert fleet.labels == ["parrot"] and [d for d, _ in fleet.members] == ["a"]
    # The same heads give the same bytes (two aggregators agree).
    again = HeadBook(Stats())
    again.offer("a", None, theirs["a"].to_bytes())
    assert again.merge(target(embedder, tmp_path)).to_wire() == fleet.to_wire()


def test_foreign_and_broken_heads_are_refused_once_each(embedder: Embedder, train, tmp_path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    stats = Stats()
    book = HeadBook(stats)
    book.offer("a", None, make_head(embedder, train, ("cat",)).to_bytes())
    foreign = Head(SHA, embedder.dim)
    foreign.add("Z", [np.eye(embedder.dim)[0]])
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            book.offer("x", None, foreign.to_bytes())
            assert not book.offer("junk", None, b"{not json")
            merged = book.merge(target(embedder, tmp_path))
            assert merged.labels == ["cat"]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and stats.get("fleet_heads_refused") == 2, refusals
    assert any("x's head" in line and "another embedding extractor" in line for line in refusals)
    assert stats.figures()["fleet"]["members"] == 1


def test_an_empty_fleet_head_classifies_everything_as_unknown(embedder: Embedder, tmp_path) -> None:
    merged = HeadBook(Stats()).merge(target(embedder, tmp_path))
    assert merged.fleet and not merged.classes and merged.members == []
    again = Head.parse(merged.to_wire(), "fleet.head")
    assert again.fleet and again.members == []
    classifier = classifier_for(embedder, again)
    assert top(classifier, views("cat", TEST)[0]) == (-1, "unknown")


def test_the_saved_fleet_head_stands_in_until_an_aggregator_publishes(embedder: Embedder, train,
                                                                       tmp_path) -> None:
    heads = FleetHeads(Stats())
    saved = make_head(embedder, train, ("cat", "hopper"))  # an older version's members' merge
    heads.seed(None, saved)
    fleet, payload = heads.get(None)
    assert fleet is saved and payload is None
    merged = combine(target(embedder, tmp_path), fleet, make_head(embedder, train, ("parrot",)),
                     ("me", "0" * 64))
    assert merged.labels == ["parrot", "cat", "hopper"]
    published = HeadBook(Stats())
    published.offer("a", None, make_head(embedder, train, ("cat",)).to_wire())
    wire = published.merge(target(embedder, tmp_path)).to_wire()
    assert heads.offer(None, wire) and heads.get(None)[1] == wire
    assert heads.get(None)[0].labels == ["cat"]
    heads.seed(None, saved)  # a saved head never replaces one the broker sent
    assert heads.get(None)[1] == wire
    assert heads.offer(None, b"") and heads.get(None) == (None, None)


def test_a_fleet_head_must_name_the_members_its_weight_comes_from(embedder: Embedder, train,
                                                                  caplog) -> None:
    stats = Stats()
    heads = FleetHeads(stats)
    forged = make_head(embedder, train, ("cat",))
    forged.classes[0].sum *= 100
    forged.classes[0].count *= 100  # 300 examples from...
    forged.members = [("mallory", "0" * 64)]  # ...one member: at most MEMBER_WEIGHT
    with caplog.at_level(logging.WARNING):
        assert not heads.offer(None, forged.to_wire())
        forged.members = None
        assert not heads.offer(None, forged.to_wire())
        assert not heads.offer(None, b" " * (MAX_FLEET_PAYLOAD + 1))
    assert heads.get(None) == (None, None) and stats.get("fleet_heads_refused") == 3
    lines = [r.getMessage() for r in caplog.records]
    assert "weighs 300 examples, more than 5 for each of the 1 members" in lines[0], lines
    assert "names no members" in lines[1] and "6,291,457 bytes" in lines[2], lines


def test_heads_on_the_wire_are_a_quarter_and_read_back_within_float32(embedder: Embedder,
                                                                      train) -> None:
    head = make_head(embedder, train)
    wire, file = head.to_wire(), head.to_bytes()
    assert len(wire) < len(file) / 3.5, (len(wire), len(file))
    back = Head.parse(wire, "wire")
    assert back.labels == head.labels and [c.count for c in back.classes] == [3, 3, 3]
    for ours, theirs in zip(back.classes, head.classes, strict=True):
        np.testing.assert_allclose(ours.sum, theirs.sum, rtol=1e-6, atol=1e-7)
    document = json.loads(wire)
    document["classes"][0]["sum_f32"] = document["classes"][0]["sum_f32"][:-4]
    with pytest.raises(HeadError, match="sum_f32 is not 1024 float32"):
        Head.parse(json.dumps(document).encode(), "cut")
    document["classes"][0]["sum_f32"] = "!" * len(json.loads(wire)["classes"][0]["sum_f32"])
    with pytest.raises(HeadError, match="not base64"):
        Head.parse(json.dumps(document).encode(), "garbage")
    document["classes"][0]["sum_f32"] = base64.b64encode(
        np.full(embedder.dim, np.nan, "<f4").tobytes()).decode()
    with pytest.raises(HeadError, match="not finite"):
        Head.parse(json.dumps(document).encode(), "nan")


def manifest(**changes: object) -> bytes:
    document = {"version": "2026.06-1", "url": "https://models.lan/m.tflite", "sha256": "A" * 64,
                "labels_url": "file:///media/usb/labels.txt", "labels_sha256": "b" * 64, **changes}
    return json.dumps(document).encode()


def test_a_manifest_is_checked_whole(tmp_path) -> None:
    private, public = make_key(tmp_path)
    trust = Trust.of(FleetConfig(manifest_key=str(public)))

    def sign(payload: bytes) -> bytes:  # each field is checked once the signature is good
        return signed(private, json.loads(payload)).encode()
    parsed = Manifest.parse(sign(manifest()), trust)
    assert parsed.version == "2026.06-1" and parsed.sha256 == "a" * 64
    for payload, problem in ((b"nope", "not JSON"), (sign(manifest(url=None)), "no 'url'"),
                             (sign(manifest(version="../etc")), "version"),
                             (sign(manifest(sha256="12")), "sha256 is not 64 hex digits"),
                             (sign(manifest(url="ftp://x/m.tflite")), "not an http(s):// or file://")):
        with pytest.raises(ManifestError, match=re.escape(problem)):
            Manifest.parse(payload, trust)
    assert Manifest.version_of(manifest(sha256="12")) == "2026.06-1"
    assert Manifest.version_of(b"nope") is None


def test_member_topics() -> None:
    config = parse_config("outputs:\n  mqtt:\n    topic_prefix: home/cams/kitchen\n", "x.yaml")
    assert device_name(config) == "kitchen"
    topics = FleetTopics.of(config)
    assert topics.head_of(None) == "edgecam/kitchen/head"
    assert topics.head_of("door", "b") == "edgecam/b/head/door"
    assert topics.parse("edgecam/b/head/door") == MemberTopic("b", "head", "door")
    assert topics.parse("edgecam/b/model_status") == MemberTopic("b", "model_status")
    assert topics.parse("edgecam/fleet/model") is None
    assert topics.fleet_head_of("door") == "edgecam/fleet/head/door"
    assert topics.parse("edgecam/fleet/head") == MemberTopic("fleet", "head")
    assert topics.parse("edgecam/b/label") is None


def test_the_fleet_needs_mqtt_at_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("fleet:\n  merge_heads: false\n  enabled: true\n", "x.yaml")
    assert caught.value.lines == ["x.yaml:3: fleet.enabled: the fleet talks over the MQTT broker: "
                                  "set outputs.mqtt.enabled too"]
    assert Config().fleet.enabled is False and Config().fleet.model_topic == "edgecam/fleet/model"


def test_no_member_is_named_fleet_and_an_aggregator_has_a_head() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("outputs:\n  mqtt:\n    enabled: true\n    topic_prefix: shop/fleet\n"
                     "fleet:\n  enabled: true\n  aggregate: true\n", "x.yaml")
    assert caught.value.lines == [
        "x.yaml:4: outputs.mqtt.topic_prefix: a fleet member cannot be named `fleet` "
        "(<topic_root>/fleet/head is the fleet's head): end topic_prefix otherwise",
        "x.yaml:7: fleet.aggregate: an aggregator merges the heads learned with its own "
        "embedding extractor: set model.head too"]


def test_the_model_version_is_in_the_stats_status_and_metrics() -> None:
    stats = Stats()
    assert stats.figures()["model_version"] is None
    names = {family.name for family in _StatsCollector(stats).collect()}
    assert "edgecam_model" not in names
    stats.set_model_version("v7")
    figures = stats.figures()
    assert figures["model_version"] == "v7" and "model v7" in status_line(figures, None)
    info = {family.name: family for family in _StatsCollector(stats).collect()}["edgecam_model"]
    assert info.samples[0].labels == {"version": "v7"}


def test_each_zone_with_its_own_head_shares_and_merges_it(embedder: Embedder, train, tmp_path) -> None:
    from edgecam.fleet.member import Fleet

    frame_head, door_head = tmp_path / "default.head", tmp_path / "door.head"
    make_head(embedder, train, ("cat",)).save(frame_head)
    make_head(embedder, train, ("hopper",)).save(door_head)
    config = parse_config(json.dumps({
        "model": {"path": str(EXTRACTOR), "head": str(frame_head), "threads": 1},
        "zones": [{"name": "door", "crop": [0, 0, 0.5, 1], "model": {"head": str(door_head)}},
                  {"name": "yard", "crop": [0.5, 0, 0.5, 1]}],
        "outputs": {"mqtt": {"enabled": True, "topic_prefix": "home/cam"}},
        "fleet": {"enabled": True, "state_dir": str(tmp_path / "state")}}), "x.yaml", tmp_path)
    fleet = Fleet(config, Stats(), lambda _why: None)
    try:
        fleet.effective(config)  # the widths the fleet's heads must have
        book = HeadBook(Stats())  # an aggregator's, with b's head for the door
        book.offer("b", "door", make_head(embedder, train, ("parrot",)).to_wire())
        door_target = Target("door", door_head, tmp_path / "x", str(EXTRACTOR), embedder.sha256,
                             embedder.dim)
        fleet._route("edgecam/fleet/head/door", book.merge(door_target).to_wire())
        effective = fleet.effective(config)
        heads = tmp_path / "state" / "heads"
        assert effective.model.head == str(heads / "fleet.head")
        door, yard = effective.zones
        assert door.model.head == str(heads / "fleet.door.head")
        assert yard.model.head is None  # it classifies with the whole frame's, as before
        assert Head.load(heads / "fleet.door.head").labels == ["hopper", "parrot"]
        assert Head.load(heads / "fleet.head").labels == ["cat"]
        published = {topic: payload for topic, payload in fleet.link.retained().items()
                     if "/head" in topic}
        assert set(published) == {"edgecam/cam/head", "edgecam/cam/head/door"}
        # It hears the fleet's heads of its zones and the manifest, never the members' heads.
        assert fleet.link._filters == ["edgecam/fleet/model", "edgecam/fleet/head",
                                       "edgecam/fleet/head/door"]
        assert Head.parse(published["edgecam/cam/head/door"], "door").labels == ["hopper"]
    finally:
        fleet.close()
