"""The MQTT output's count of what paho sent or lost (outputs.mqtt, `_reap`), against paho 2.x's
real MQTTMessageInfo: a message lost with the connection after paho took it has rc CONN_LOST,
and its is_published() raises RuntimeError (paho 2.2), which once ended up as an output error."""

from __future__ import annotations

from paho.mqtt.client import MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode

from edgecam.config import MqttConfig
from edgecam.core.stats import Stats
from edgecam.outputs.mqtt import MqttOutput


def test_messages_lost_with_the_connection_are_counted_dropped_not_raised() -> None:
    stats = Stats()
    output = MqttOutput(MqttConfig(enabled=True, topic_prefix="edgecam/test"), stats)
    lost, sent, waiting, state = (MQTTMessageInfo(mid) for mid in (1, 2, 3, 4))
    lost.rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
    sent._set_as_published()
    output._inflight = [(lost, True), (sent, True), (waiting, True), (state, False)]
    output._reap()
    counts = stats.figures()["outputs"]
    assert (counts["mqtt_dropped"], counts["mqtt_published"]) == (1, 1)
    assert output._inflight == [(waiting, True), (state, False)]


def test_qos1_messages_queued_while_disconnected_wait_for_their_acknowledgement() -> None:
    """paho 2.1.0 keeps a QoS >= 1 message published without a connection (rc NO_CONN) and sends
    it after the next connect; its is_published() raises for ever, so on_publish's mid tells."""
    stats = Stats()
    output = MqttOutput(MqttConfig(enabled=True, topic_prefix="edgecam/test", qos=1), stats)
    queued, other = MQTTMessageInfo(7), MQTTMessageInfo(8)
    queued.rc = other.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
    output._inflight = [(queued, True), (other, True)]
    output._reap()
    assert stats.get("mqtt_dropped") == 0 and len(output._inflight) == 2
    output._on_publish(None, None, 7, None, None)
    output._reap()
    assert (stats.get("mqtt_published"), stats.get("mqtt_dropped")) == (1, 0)
    assert output._inflight == [(other, True)]
