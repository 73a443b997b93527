"""The fleet's parts in process: the members' heads and their merge, manifests, topics, the config."""

from __future__ import annotations

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
from edgecam.fleet.heads import HeadBook, Target
from edgecam.fleet.rollout import Manifest, ManifestError, Trust
from edgecam.fleet.topics import FleetTopics, MemberTopic, device_name
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head, merge_heads
from edgecam.outputs.metrics import _StatsCollector

SHA = "ab" * 32


def target(embedder: Embedder, tmp_path, zone: str | None = None) -> Target:
    return Target(zone, tmp_path / "local.head", tmp_path / "fleet.head", str(EXTRACTOR),
                  embedder.sha256, embedder.dim)


def test_the_merge_is_learn_merges_own(embedder: Embedder, train, tmp_path) -> None:
    book = HeadBook(Stats())
    mine = make_head(embedder, train, ("cat",))
    theirs = {"b": make_head(embedder, train, ("hopper", "cat"), examples=2),
              "a": make_head(embedder, train, ("parrot",), examples=1)}
    for device, head in theirs.items():
        assert book.offer(device, None, head.to_bytes())
    merged, others = book.merge(target(embedder, tmp_path), mine)
    expected = merge_heads([("this device", mine), ("a", theirs["a"]), ("b", theirs["b"])])
    assert merged.fleet and merged.labels == expected.labels == ["cat", "parrot", "hopper"]
    assert [c.count for c in merged.classes] == [5, 1, 2]
    for ours, reference in zip(merged.classes, expected.classes, strict=True):
        assert np.array_equal(ours.sum, reference.sum)
    assert others is not None and others.labels == ["parrot", "hopper", "cat"]
    # Cleared (an empty retained message): that member no longer counts.
    assert book.offer("b", None, b"")
    merged, _ = book.merge(target(embedder, tmp_path), mine)
    assert merged.labels == ["cat", "parrot"] and merged.find("cat").count == 3


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
            merged, _ = book.merge(target(embedder, tmp_path), None)
            assert merged.labels == ["cat"]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and stats.get("fleet_heads_refused") == 2, refusals
    assert any("x's head" in line and "another embedding extractor" in line for line in refusals)
    assert stats.figures()["fleet"]["members"] == 1


def test_an_empty_fleet_head_classifies_everything_as_unknown(embedder: Embedder, tmp_path) -> None:
    merged, others = HeadBook(Stats()).merge(target(embedder, tmp_path), None)
    assert merged.fleet and not merged.classes and others is None
    again = Head.parse(merged.to_bytes(), "fleet.head")
    assert again.fleet
    classifier = classifier_for(embedder, again)
    assert top(classifier, views("cat", TEST)[0]) == (-1, "unknown")


def test_the_saved_merge_stands_in_until_the_members_are_heard(embedder: Embedder, train,
                                                               tmp_path) -> None:
    book = HeadBook(Stats())
    book.seed(None, make_head(embedder, train, ("cat", "hopper")))
    merged, _ = book.merge(target(embedder, tmp_path), make_head(embedder, train, ("parrot",)))
    assert merged.labels == ["parrot", "cat", "hopper"]
    assert book.forget_saved() and not book.forget_saved()
    assert book.merge(target(embedder, tmp_path), None)[0].labels == []


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
    assert topics.parse("edgecam/b/label") is None


def test_the_fleet_needs_mqtt_at_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("fleet:\n  merge_heads: false\n  enabled: true\n", "x.yaml")
    assert caught.value.lines == ["x.yaml:3: fleet.enabled: the fleet talks over the MQTT broker: "
                                  "set outputs.mqtt.enabled too"]
    assert Config().fleet.enabled is False and Config().fleet.model_topic == "edgecam/fleet/model"


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
        fleet.sync.book.offer("b", "door", make_head(embedder, train, ("parrot",)).to_bytes())
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
        assert Head.parse(published["edgecam/cam/head/door"], "door").labels == ["hopper"]
    finally:
        fleet.close()
