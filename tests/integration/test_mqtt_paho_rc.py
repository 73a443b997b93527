"""The MQTT output against paho's real return codes, with a real Mosquitto restarted under it.

paho-mqtt 2.1.0 (src/paho/mqtt/client.py; the venv's 2.2.0 alike): a message published while
the connection is gone has rc MQTT_ERR_NO_CONN. At QoS 1 and 2 paho keeps it and sends it after
the next connect, yet its `is_published()` raises RuntimeError for ever after (the rc is never
updated). The window: paho's thread saw the broker go, and the output's on_disconnect has not
run yet, so the output still believes it is connected. Each test opens that window for good
(on_disconnect withheld), which on a Pi it is for a moment.
"""

from __future__ import annotations

import json

import pytest
from brokers import Mosquitto
from fakes import result
from harness import wait_for

from edgecam.config import MqttConfig
from edgecam.core.stats import Stats
from edgecam.outputs.mqtt import MqttOutput

pytest.importorskip("paho.mqtt.client")

PREFIX = "edgecam/paho-rc"


@pytest.fixture
def outputs():
    """MqttOutputs to close at teardown (close() is safe to call twice)."""
    made: list[MqttOutput] = []
    yield made
    for output in made:
        output.close()


def connected(outputs: list[MqttOutput], broker: Mosquitto, qos: int, stats: Stats) -> MqttOutput:
    output = MqttOutput(MqttConfig(enabled=True, host="127.0.0.1", port=broker.port, topic_prefix=PREFIX,
                                   qos=qos, keepalive_s=2), stats)
    outputs.append(output)
    output.start()
    wait_for(lambda: output._connected, 30, "the output to connect")
    return output


def lose_the_broker_unnoticed(output: MqttOutput, broker: Mosquitto) -> None:
    """The broker stops; paho sees it, the output is not told (its on_disconnect withheld)."""
    output._client.on_disconnect = None
    broker.stop()
    wait_for(lambda: not output._client.is_connected(), 30, "paho to see the broker gone")
    assert output._connected


def test_close_disconnects_and_stops_paho_when_offline_cannot_be_sent(mosquitto, outputs) -> None:
    """Before: is_published() raised RuntimeError out of close(), which skipped disconnect() and
    loop_stop(): the client went on reconnecting under the same client id as the next one."""
    broker = mosquitto()
    output = connected(outputs, broker, 1, Stats())
    lose_the_broker_unnoticed(output, broker)
    output.close()
    assert output._client._thread is None  # paho's network thread ended: nothing reconnects
    assert not output._client.is_connected()


def test_qos1_results_handed_over_while_the_broker_is_away_are_delivered_not_dropped(
        mosquitto, subscribers, outputs) -> None:
    """Before: each was counted in mqtt_dropped at once, and then delivered all the same."""
    broker = mosquitto()
    stats = Stats()
    output = connected(outputs, broker, 1, stats)
    lose_the_broker_unnoticed(output, broker)
    for seq in range(1, 6):
        output.emit(result(seq))
    wait_for(lambda: len(output._queue) == 0 and len(output._inflight) + stats.get("mqtt_dropped") >= 5,
             30, "the publisher to hand the results to paho")
    assert stats.get("mqtt_dropped") == 0
    # Back: paho sends what it kept, once a subscriber is there to see it.
    output._client.loop_stop()
    output._client.on_disconnect = output._on_disconnect
    broker.start()
    live = subscribers(broker.port, [f"{PREFIX}/#"])
    live.publish(f"{PREFIX}/probe", "subscribed")
    live.wait(f"{PREFIX}/probe")
    output._client.loop_start()
    wait_for(lambda: len(live.on(f"{PREFIX}/classification")) >= 5, 30, "the kept results")
    seqs = [json.loads(m.payload)["seq"] for m in live.on(f"{PREFIX}/classification")]
    assert seqs == [1, 2, 3, 4, 5]
    wait_for(lambda: stats.get("mqtt_published") == 5, 30, "the acknowledgements counted")
    assert stats.get("mqtt_dropped") == 0 and stats.get("output_errors") == 0
