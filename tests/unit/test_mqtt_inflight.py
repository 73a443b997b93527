"""The MQTT output's count of what paho sent or lost (outputs.mqtt, `_reap`), against paho 2.x's
real MQTTMessageInfo: a message lost with the connection after paho took it has rc CONN_LOST,
and its is_published() raises RuntimeError (paho 2.2), which once ended up as an output error."""

from __future__ import annotations

from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode

from edgecam.config import MqttConfig
from edgecam.outputs.mqtt import MqttOutput
from edgecam.pipeline.stats import Stats


def test_messages_lost_with_the_connection_are_counted_dropped_not_raised() -> None:
    stats = Stats()
    output = MqttOutput(MqttConfig(enabled=True, topic_prefix="edgecam/test"), stats)
    lost, sent, waiting, state = (MQTTMessageInfo(mid) for mid in (1, 2, 3, 4))
    lost.rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
    sent._set_as_published()
    output._inflight = [(lost, True), (sent, True), (waiting, True), (state, False)]
    output._reap()
    counts = stats.snapshot()["outputs"]
    assert (counts["mqtt_dropped"], counts["mqtt_published"]) == (1, 1)
    assert output._inflight == [(waiting, True), (state, False)]
