"""The fleet at scale (issue 28): 200 members on one real Mosquitto, and two brokers bridged.

200 simulated members (paho clients, one each, as a member's link behaves:
at each connect they retain their head of 10 classes and subscribe to the
fleet's head) and real daemons: one aggregator (fleet.aggregate), one member
that learns X (the cat) from three photos, and a new member that joins
through a byte-counting relay (tests/relay.py). The new member must receive
far less than every head (what it would have before the aggregator), and
recognize X on held-out views. Then the broker restarts: every member comes
back at once, and the bytes through the broker ($SYS/broker/bytes/...) are
O(N): each member's head in once, out once to the aggregator, and the
fleet's head out once to each member. Last, two brokers bridged: members on
both, the aggregator on one, and the bytes over the bridge.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from brokers import Subscriber
from conftest import run_edgecam
from fleets import STREAM, WAIT_S, X, Y, learn, member_config, recognizes, stream_folder
from harness import Daemon, wait_for
from heads import EXTRACTOR
from relay import Relay, relay_factory

from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head

N = 200
CLASSES = 10
FLEET_HEAD = "edgecam/fleet/head"
CAT_VIEWS = [X if label == X else None for label, _photo, _view in STREAM]


@pytest.fixture
def relays() -> Iterator[Callable[[int], Relay]]:
    yield from relay_factory()


def simulated_heads(count: int) -> list[Head]:
    """`count` heads of CLASSES classes with the same labels (3 random unit vectors each)."""
    sha = Embedder(str(EXTRACTOR), threads=1).sha256
    rng = np.random.default_rng(28)
    heads = []
    for _ in range(count):
        head = Head(sha, 1024, EXTRACTOR.name)
        for number in range(CLASSES):
            vectors = rng.normal(size=(3, 1024))
            head.add(f"class{number}", list(vectors / np.linalg.norm(vectors, axis=1)[:, None]))
        heads.append(head)
    return heads


class Simulated:
    """N members as their links behave: at each connect, retain the head and hear the fleet's."""

    def __init__(self, port: int, heads: list[Head]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.payloads = [head.to_wire() for head in heads]
        self.heard = [0] * len(heads)  # fleet heads received, by member
        self._lock = threading.Lock()
        self.clients = []
        for number in range(len(heads)):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim{number:04d}")
            client.on_connect = self._connected(number)
            client.on_message = self._heard(number)
            client.reconnect_delay_set(1, 2)
            client.connect_async("127.0.0.1", port, keepalive=30)
            client.loop_start()
            self.clients.append(client)

    def _connected(self, number: int) -> Callable[..., None]:
        def on_connect(client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                client.subscribe(FLEET_HEAD, qos=1)
                client.publish(f"edgecam/sim{number:04d}/head", self.payloads[number], qos=1,
                               retain=True)
        return on_connect

    def _heard(self, number: int) -> Callable[..., None]:
        def on_message(_client: Any, _u: Any, message: Any) -> None:
            with self._lock:
                self.heard[number] += 1
        return on_message

    def all_heard(self, at_least: int) -> bool:
        with self._lock:
            return min(self.heard) >= at_least

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


@pytest.fixture
def simulated() -> Iterator[Callable[[int], Simulated]]:
    made: list[Simulated] = []

    def start(port: int) -> Simulated:
        members = Simulated(port, simulated_heads(N))
        made.append(members)
        return members

    try:
        yield start
    finally:
        for members in made:
            members.close()


def via(config: dict[str, Any], relay: Relay) -> dict[str, Any]:
    config["outputs"]["mqtt"]["port"] = relay.port
    return config


def broker_bytes(watcher: Subscriber) -> int:
    """Bytes the broker received and sent since it started, as its $SYS counters say next (every
    second: sys_interval). Results and stats flow all the while: they are counted too."""
    since = time.monotonic()

    def counted() -> int | None:
        last = {m.topic: int(m.payload) for m in watcher.messages
                if m.at > since and m.topic in ("$SYS/broker/bytes/received", "$SYS/broker/bytes/sent")}
        return sum(last.values()) if len(last) == 2 else None
    return wait_for(counted, WAIT_S, "the broker's byte counters")


def test_a_new_member_of_200_hears_one_head_and_a_broker_restart_moves_O_N_bytes(
        daemons, mosquitto, subscribers, relays, simulated, tmp_path: Path) -> None:
    broker = mosquitto(extra=("sys_interval 1",))
    members = simulated(broker.port)
    watcher = subscribers(broker.port, [FLEET_HEAD])
    stream = stream_folder(tmp_path / "stream")
    aggregator_relay = relays(broker.port)
    aggregator = daemons(via(member_config(tmp_path, "agg", broker.port, stream, aggregate=True),
                             aggregator_relay), name="agg")
    learner = daemons(member_config(tmp_path, "a", broker.port, stream), name="a")
    learner.wait_socket()
    learn(learner, X, "cat", tmp_path / "photos")
    wait_for(lambda: any(X in m.payload and m.payload.count('"device"') == N + 1
                         for m in watcher.on(FLEET_HEAD)), WAIT_S,
             "the aggregator to merge the 200 and a's X")
    wait_for(lambda: members.all_heard(1), WAIT_S, "every simulated member to hear the fleet's head")

    joiner_relay = relays(broker.port)
    joiner = daemons(via(member_config(tmp_path, "new", broker.port, stream), joiner_relay),
                     name="new")
    recognizes(joiner, CAT_VIEWS, "the new member to recognize X on held-out views")
    received, sent = joiner_relay.counts()
    every_head = sum(len(head) for head in members.payloads)
    as_json = sum(len(Head.parse(p, "sim").to_bytes()) for p in members.payloads)
    print(f"new member: received {received / 1e6:.2f} MB, sent {sent / 1e6:.3f} MB; every head "
          f"would be {every_head / 1e6:.1f} MB (as float32), {as_json / 1e6:.1f} MB as JSON")
    assert received < 5e6 and received < every_head / 10, received
    status = run_edgecam("fleet", "status", "--json", "-c", joiner.config_path)
    assert status.returncode == 0, status.stderr
    merged = json.loads(status.stdout)["fleet_heads"][""]
    assert len(merged["members"]) == N + 1 and {"label": X, "count": 3} in merged["classes"]

    # The broker restarts: everyone comes back at once. Each head crosses it twice (in, then out
    # to the aggregator) and the fleet's head once to each member: O(N), not N² heads.
    fleet_head = len(watcher.on(FLEET_HEAD)[-1].payload)
    before = {name: relay.counts() for name, relay in (("agg", aggregator_relay),
                                                       ("new", joiner_relay))}
    heard = min(members.heard)
    broker.stop()
    broker.start()
    counters = subscribers(broker.port, ["$SYS/broker/bytes/#"])
    wait_for(lambda: members.all_heard(heard + 1), WAIT_S, "every member to hear the fleet's head")
    total = broker_bytes(counters)
    recognizes(joiner, CAT_VIEWS, "the new member to recognize X after the restart")
    head = int(np.median([len(p) for p in members.payloads]))
    bound = N * (2 * head + fleet_head) * 1.5 + 2e6
    deltas = {name: [after - then for after, then in zip(relay.counts(), before[name], strict=True)]
              for name, relay in (("agg", aggregator_relay), ("new", joiner_relay))}
    print(f"broker restart, {N} members: {total / 1e6:.1f} MB through the broker; "
          f"N x (2 x head {head / 1e3:.0f} kB + fleet head {fleet_head / 1e3:.0f} kB) = "
          f"{N * (2 * head + fleet_head) / 1e6:.1f} MB; N² heads would be "
          f"{N * N * head / 1e9:.1f} GB; aggregator received {deltas['agg'][0] / 1e6:.1f} MB, "
          f"the new member {deltas['new'][0] / 1e6:.2f} MB")
    assert total < bound, (total, bound)
    assert deltas["agg"][0] < N * head * 1.5 + 1e6  # each head once
    assert deltas["new"][0] < 3 * fleet_head + 1e6  # the fleet's head, not the members'
    for daemon in (aggregator, learner, joiner):
        assert daemon.stop() == 0 and "Traceback" not in daemon.log()


def test_two_bridged_brokers_learn_together(daemons, mosquitto, subscribers, relays,
                                            tmp_path: Path) -> None:
    """Site A: the aggregator a (learns X). Site B, bridged to A through a relay: b (learns Y)
    and c. Everyone recognizes X and Y; the bridge carries each head once."""
    central = mosquitto()
    bridge = relays(central.port)
    site = mosquitto(extra=("connection site-b", f"address 127.0.0.1:{bridge.port}",
                            "topic edgecam/# both 1", "cleansession true", "restart_timeout 1",
                            "bridge_protocol_version mqttv311"))
    stream = stream_folder(tmp_path / "stream")
    fleet: dict[str, Daemon] = {}
    for device, port, extra in (("a", central.port, {"aggregate": True}), ("b", site.port, {}),
                                ("c", site.port, {})):
        fleet[device] = daemons(member_config(tmp_path, device, port, stream, **extra), name=device)
    for daemon in fleet.values():
        daemon.wait_socket()
    learn(fleet["a"], X, "cat", tmp_path / "photos-a")
    learn(fleet["b"], Y, "hopper", tmp_path / "photos-b")
    central_heads = subscribers(central.port, ["edgecam/+/head"])
    central_heads.wait("edgecam/b/head", lambda m: Y in m.payload, WAIT_S,
                       what="b's head to cross the bridge")
    expected: list[str | None] = [label for label, _photo, _view in STREAM]
    for device, daemon in fleet.items():
        recognizes(daemon, expected, f"{device} to recognize X and Y across the bridge")
    down, up = bridge.counts()
    heads = sum(len(Head.load(Path(fleet[d].config["model"]["head"])).to_wire()) for d in "ab")
    print(f"bridge: {up / 1e3:.0f} kB site to central, {down / 1e3:.0f} kB central to site "
          f"(both heads as float32: {heads / 1e3:.0f} kB; the rest is results and status)")
    assert up + down < 2e6, (up, down)
    for device, daemon in fleet.items():
        assert daemon.stop() == 0 and "Traceback" not in daemon.log(), device
