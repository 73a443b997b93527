"""A member comes back after whatever the fleet left on disk: every state, then a restart.

One real daemon on one real Mosquitto, a model server on 127.0.0.1. For each
state the fleet can leave in fleet.state_dir (after a rollout, after a
rollback, active.json cut in half, the merged heads as garbage, a partial
download, kill -9 in the middle of a download) the next start delivers
results, sets a bad file aside with one line, and logs no traceback.
"""

from __future__ import annotations

import functools
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from brokers import Mosquitto, Subscriber, broker_factory, subscriber_factory
from fleets import (
    DEFAULT,
    MODEL_TOPIC,
    SMALL,
    WAIT_S,
    FileServer,
    flowing,
    last_stats,
    manifest,
    member_config,
    stream_folder,
    wait_statuses,
)
from harness import Daemon, wait_for


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    yield from broker_factory(tmp_path)


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    yield from subscriber_factory()


class Member:
    """Member a, restarted at will with the same config; every run's log is kept."""

    def __init__(self, daemons: Callable[..., Daemon], config: dict) -> None:
        self._daemons = daemons
        self.config = config
        self.state = Path(config["fleet"]["state_dir"])
        self.runs: list[Daemon] = []

    def start(self) -> Daemon:
        daemon = self._daemons(self.config, name=f"a-{len(self.runs)}")
        self.runs.append(daemon)
        daemon.wait_socket()
        return daemon

    def restart(self) -> Daemon:
        assert self.runs[-1].stop() == 0, self.runs[-1].log()
        return self.start()

    def clean(self) -> None:
        """Every run so far: no traceback."""
        for daemon in self.runs:
            assert "Traceback" not in daemon.log(), daemon.log()


@pytest.fixture
def member(daemons, mosquitto, subscribers, file_server: FileServer, operator_key, tmp_path: Path
           ) -> Iterator[tuple[Member, Subscriber, Callable[..., str]]]:
    """Member a trusting the operator's key, everything on the broker, and signed manifests."""
    private, public = operator_key
    broker = mosquitto()
    everything = subscribers(broker.port, ["#"])
    config = member_config(tmp_path, "a", broker.port, stream_folder(tmp_path / "stream"),
                           manifest_key=str(public))
    yield Member(daemons, config), everything, functools.partial(manifest, file_server, key=private)


def roll_out(everything: Subscriber, signed: Callable[..., str], version: str, model: Path) -> None:
    mark = everything.mark()
    everything.publish(MODEL_TOPIC, signed(version, model.name), retain=True)
    wait_statuses(everything, mark, version, "active", devices="a")


def comes_back_on(member: Member, everything: Subscriber, version: str) -> Daemon:
    mark = everything.mark()
    daemon = member.restart()
    flowing(daemon)
    wait_statuses(everything, mark, version, "active", devices="a")
    wait_for(lambda: last_stats(everything, "a").get("model_version") == version, WAIT_S,
             f"a's stats to say {version}")
    return daemon


def test_a_restart_after_a_rollout_and_after_a_rollback_comes_back_on_it(member) -> None:
    member, everything, signed = member
    member.start()
    roll_out(everything, signed, "v2-small", SMALL)
    comes_back_on(member, everything, "v2-small")
    roll_out(everything, signed, "v1", DEFAULT)  # a rollback, to the model the config names
    comes_back_on(member, everything, "v1")
    member.clean()


def test_a_cut_rollout_state_is_set_aside_and_the_rollout_followed_again(member) -> None:
    member, everything, signed = member
    member.start()
    roll_out(everything, signed, "v2-small", SMALL)
    member.runs[-1].stop()
    active = member.state / "models" / "active.json"
    text = active.read_bytes()
    active.write_bytes(text[: len(text) // 2])
    # The retained manifest is followed again: its files are on disk, so it switches at once.
    daemon = comes_back_on(member, everything, "v2-small")
    assert "active.json: unusable rollout state" in daemon.log()
    assert (active.parent / "active.json.corrupt").read_bytes() == text[: len(text) // 2]
    member.clean()


def test_merged_heads_left_as_garbage_are_replaced_at_the_next_start(member) -> None:
    member, _everything, _signed = member
    member.start()
    heads = member.state / "heads"
    member.runs[-1].stop()
    heads.mkdir(parents=True, exist_ok=True)
    for name in ("fleet.head", "fleet-members.head"):
        (heads / name).write_bytes(b"\x00garbage{" * 100)
    daemon = member.start()
    flowing(daemon)
    assert "fleet-members.head: " in daemon.log() and "set aside" in daemon.log()
    assert (heads / "fleet.head").read_bytes().startswith(b"{")  # the merge written anew
    member.clean()


def test_a_partial_download_and_a_kill_in_the_middle_of_one_leave_nothing_behind(member) -> None:
    member, everything, signed = member
    server = signed.args[0]
    member.start()
    server.pace(0.2)  # 16 kB every 0.2 s: the 14 MB model takes minutes
    everything.publish(MODEL_TOPIC, signed("v2", DEFAULT.name), retain=True)
    version = member.state / "models" / "v2"
    wait_for(lambda: any(p.stat().st_size > 64 * 1024 for p in version.glob(".*.part")), WAIT_S,
             "a part of the download on disk")
    daemon = member.runs[-1]
    daemon.signal(signal.SIGKILL)
    daemon.proc.wait(30)
    assert list(version.glob(".*.part"))  # what kill -9 leaves
    server.pace(0)
    mark = everything.mark()
    again = member.start()
    flowing(again)
    wait_statuses(everything, mark, "v2", "active", devices="a")
    assert not list(version.glob(".*.part")), list(version.iterdir())
    assert json.loads((version.parent / "active.json").read_text())["version"] == "v2"
    assert "Traceback" not in again.log(), again.log()
