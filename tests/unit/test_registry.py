"""Outputs are built transactionally: a reload whose MQTT part fails leaves nothing behind."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from pathlib import Path

import pytest
from harness import wait_for

from edgecam.config import Config, JournalConfig, MqttConfig, OutputsConfig, SocketConfig
from edgecam.core.results import Classification, Label, Result
from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError
from edgecam.outputs import registry
from edgecam.outputs.base import OutputContext
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.outputs.socket import SocketOutput


def result(seq: int) -> Result:
    return Result(seq, 1.0, 10.0, 5.0, Classification((Label(286, "Egyptian cat", 0.9),), 5.0))


def read_line(path: Path) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(str(path))
        return json.loads(client.makefile().readline())


@pytest.fixture
def running(tmp_path: Path):
    stats = Stats()
    context = OutputContext(stats, lambda: None)
    config = Config(outputs=OutputsConfig(journal=JournalConfig(enabled=False),
                                          socket=SocketConfig(path=str(tmp_path / "old.sock"))))
    dispatcher = Dispatcher([], stats)
    dispatcher.start()
    registry.commit(registry.plan(config, [], context), dispatcher)
    yield config, context, dispatcher
    dispatcher.close()


def test_a_reload_whose_mqtt_part_fails_leaves_no_socket_or_thread_and_the_old_outputs_work(
        running, tmp_path: Path) -> None:
    config, context, dispatcher = running
    old_socket = dispatcher.outputs[0]
    threads = sorted(t.name for t in threading.enumerate())
    # A new socket path (built and started first, KINDS' order) and an MQTT section whose password
    # file is gone by the time of the reload.
    new = dataclasses.replace(config, outputs=dataclasses.replace(
        config.outputs, socket=SocketConfig(path=str(tmp_path / "new.sock")),
        mqtt=MqttConfig(enabled=True, username="cam", password_file=str(tmp_path / "gone.pw"))))
    with pytest.raises(EdgecamError, match="password_file"):
        registry.plan(new, dispatcher.outputs, context)
    assert not (tmp_path / "new.sock").exists(), "the new socket was closed and its file removed"
    assert sorted(t.name for t in threading.enumerate()) == threads, "no thread left behind"
    assert dispatcher.outputs == [old_socket]

    reader = threading.Thread(target=lambda: received.append(read_line(tmp_path / "old.sock")))
    received: list[dict] = []
    reader.start()
    wait_for(lambda: context.stats.figures()["outputs"]["socket_clients"] == 1, 30, "the client")
    dispatcher.emit(result(7))
    reader.join(30)
    assert received and received[0]["seq"] == 7, "the old socket still serves results"


def test_a_good_reload_swaps_outputs_and_closes_the_replaced_ones(running, tmp_path: Path) -> None:
    config, context, dispatcher = running
    old_socket = dispatcher.outputs[0]
    moved = dataclasses.replace(config, outputs=dataclasses.replace(
        config.outputs, socket=SocketConfig(path=str(tmp_path / "moved.sock"))))
    registry.commit(registry.plan(moved, dispatcher.outputs, context), dispatcher)
    [new_socket] = dispatcher.outputs
    assert isinstance(new_socket, SocketOutput) and new_socket is not old_socket
    assert (tmp_path / "moved.sock").exists() and not (tmp_path / "old.sock").exists()


def test_an_unchanged_output_is_kept_and_a_mode_change_applied_in_place(running, tmp_path: Path) -> None:
    config, context, dispatcher = running
    old_socket = dispatcher.outputs[0]
    chmodded = dataclasses.replace(config, outputs=dataclasses.replace(
        config.outputs, socket=dataclasses.replace(config.outputs.socket, mode="0600")))
    registry.commit(registry.plan(chmodded, dispatcher.outputs, context), dispatcher)
    assert dispatcher.outputs == [old_socket]
    assert (tmp_path / "old.sock").stat().st_mode & 0o777 == 0o600
