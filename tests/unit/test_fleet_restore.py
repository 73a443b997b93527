"""What a member finds on disk at start: the rollout's state and the members' merge, whole or not.

A power cut or kill -9 can leave any of them cut or garbage; a start must
come back on what still checks out, setting the rest aside with one line.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edgecam.config import parse_config
from edgecam.core.stats import Stats
from edgecam.fleet.follower import RolloutFollower


def follower(tmp_path: Path, statuses: list[bytes]) -> RolloutFollower:
    config = parse_config(json.dumps({
        "outputs": {"mqtt": {"enabled": True}},
        "fleet": {"enabled": True, "state_dir": str(tmp_path / "state")}}), "x.yaml", tmp_path)
    return RolloutFollower(config.fleet, config.fleet.model_topic, Stats(), statuses.append,
                           lambda _why: None)


def rolled_out(tmp_path: Path) -> Path:
    """The files a successful rollout of v2 leaves, active.json last."""
    folder = tmp_path / "state" / "models" / "v2"
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(b"model")
    (folder / "labels.txt").write_text("a\nb\n")
    active = folder.parent / "active.json"
    active.write_text(json.dumps({"version": "v2", "model": str(folder / "model.tflite"),
                                  "labels": str(folder / "labels.txt")}))
    return active


def test_a_start_after_a_rollout_runs_the_rolled_out_model_and_says_so(tmp_path: Path) -> None:
    rolled_out(tmp_path)
    statuses: list[bytes] = []
    rollout = follower(tmp_path, statuses)
    assert json.loads(statuses[-1]) == {"version": "v2", "state": "active", "error": None}
    config = parse_config("{}", "x.yaml", tmp_path)
    assert rollout.model(config.model).path.endswith("v2/model.tflite")


@pytest.mark.parametrize("damage", ["cut", "empty", "garbage", "list", "deep", "files gone"])
def test_an_unusable_rollout_state_is_set_aside_and_the_config_model_runs(
        tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    active = rolled_out(tmp_path)
    text = active.read_text()
    if damage == "files gone":
        (active.parent / "v2" / "model.tflite").unlink()
    else:
        active.write_text({"cut": text[: len(text) // 2], "empty": "", "garbage": "\x00\xff{]",
                           "list": "[1, 2]", "deep": "[" * 100_000}[damage])
    statuses: list[bytes] = []
    with caplog.at_level(logging.WARNING):
        rollout = follower(tmp_path, statuses)
    config = parse_config("{}", "x.yaml", tmp_path)
    assert rollout.model(config.model) == config.model
    assert statuses == []
    assert not active.exists() and active.with_name("active.json.corrupt").exists()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"set aside as {active}.corrupt" in warnings[0].getMessage()
    assert warnings[0].exc_info is None


def test_what_a_message_makes_the_handler_raise_is_logged_once_per_topic_and_streak(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from edgecam.fleet.link import FleetLink
    from edgecam.fleet.topics import FleetTopics

    config = parse_config(json.dumps({"outputs": {"mqtt": {"enabled": True}},
                                      "fleet": {"enabled": True}}), "x.yaml", tmp_path)
    handled: list[bytes] = []

    def handler(_topic: str, payload: bytes) -> None:
        if payload == b"bad":
            raise OverflowError("int too large to convert to float")
        if payload == b"deep":
            raise RecursionError("maximum recursion depth exceeded")
        handled.append(payload)

    link = FleetLink(config.outputs.mqtt, FleetTopics.of(config), [], handler, lambda: None)
    with caplog.at_level(logging.WARNING):
        for n in range(4000):
            topic = f"edgecam/m{n % 3}/head"
            link._on_message(None, None, SimpleNamespace(topic=topic, payload=b"bad"))
        link._on_message(None, None, SimpleNamespace(topic="edgecam/m0/head", payload=b"deep"))
        link._on_message(None, None, SimpleNamespace(topic="edgecam/m0/head", payload=b"good"))
        link._on_message(None, None, SimpleNamespace(topic="edgecam/m0/head", payload=b"bad"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5  # 3 topics, then m0's new fault, then m0's new streak
    assert all("was ignored" in line for line in lines) and handled == [b"good"]
