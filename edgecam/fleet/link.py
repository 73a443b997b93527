"""A member's MQTT connection: what it retains, what it hears, and nothing a message can break.

The heads' sync and the rollout never touch paho. They hand the link what they
want retained (their state: this device's heads, the model status, `online`);
the link publishes it while connected and again at every connect, so a
restart or a broker that comes back always ends up with the current state,
whichever side set it first. Messages go to one handler, called on paho's
network thread; whatever a message makes it raise (a remote payload is
anything) is logged once per topic and streak, and paho's thread lives on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edgecam.config import MqttConfig
from edgecam.fleet.topics import OFFLINE, ONLINE, FleetTopics
from edgecam.outputs.mqtt_client import close_client, new_client
from edgecam.outputs.mqtt_topics import client_id

log = logging.getLogger(__name__)

QOS = 1  # retained state: delivered once the broker has it
SEEN_S = 60.0  # how often `seen` is refreshed while connected
STOP_S = 1.0
MAX_FAULTS_KEPT = 1024  # topics whose last fault is remembered (for the once-per-streak log)

Handler = Callable[[str, bytes], None]


class FleetLink:
    """The member's own paho client: subscribed to `filters`, messages to `handler`."""

    def __init__(self, mqtt: MqttConfig, topics: FleetTopics, filters: list[str], handler: Handler,
                 on_subscribed: Callable[[], None]) -> None:
        self._topics = topics
        self._filters = filters
        self._handler = handler
        self._on_subscribed = on_subscribed
        self._lock = threading.Lock()
        self._connected = False
        self._retained: dict[str, bytes] = {topics.online: ONLINE.encode()}
        self._faults: dict[str, str] = {}  # the fault last logged, by topic
        self._next_seen = 0.0
        self._client, _password = new_client(mqtt, f"{client_id(mqtt)}-fleet",
                                             (topics.online, OFFLINE, QOS))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._host = (mqtt.host, mqtt.port, mqtt.keepalive_s)

    def start(self) -> None:
        self._client.connect_async(*self._host)
        self._client.loop_start()

    def retain(self, topic: str, payload: bytes) -> None:
        """Makes `payload` the state retained on `topic` (b"": cleared), now and at each connect."""
        with self._lock:
            if self._retained.get(topic) == payload:
                return
            self._retained[topic] = payload
            connected = self._connected
        if connected:
            self._client.publish(topic, payload, QOS, retain=True)

    def retained(self) -> dict[str, bytes]:
        """What the link keeps retained on the broker, by topic (tests and benchmarks read it)."""
        with self._lock:
            return dict(self._retained)

    def refresh_seen(self, now: float) -> None:
        """Publishes `seen` when SEEN_S have passed (the fleet's thread calls it every turn)."""
        with self._lock:
            due = self._connected and now >= self._next_seen
            if due:
                self._next_seen = now + SEEN_S
        if due:
            self._publish_seen()

    def close(self) -> None:
        """Says `offline` (retained) if connected, then disconnects within a bounded time."""
        with self._lock:
            connected = self._connected
        close_client(self._client, (self._topics.online, OFFLINE, QOS) if connected else None, STOP_S)

    # -- paho's callbacks (its network thread) -------------------------------------------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("fleet: the broker refused the connection: %s", reason)
            return
        client.subscribe([(topic, QOS) for topic in self._filters])
        with self._lock:
            self._connected = True
            retained = dict(self._retained)
            self._next_seen = time.monotonic() + SEEN_S
        for topic, payload in retained.items():
            client.publish(topic, payload, QOS, retain=True)
        self._publish_seen()

    def _on_disconnect(self, *_args: Any) -> None:
        with self._lock:
            self._connected = False

    def _on_subscribe(self, *_args: Any) -> None:
        self._guarded("subscribe", self._on_subscribed)

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        topic = message.topic
        self._guarded(topic, lambda: self._handler(topic, bytes(message.payload)))

    def _guarded(self, topic: str, call: Callable[[], None]) -> None:
        """Runs `call`; what it raises is logged once per topic until it succeeds again."""
        try:
            call()
        except Exception as exc:  # a remote payload can make anything raise
            fault = f"{type(exc).__name__}: {str(exc)[:200]}"
            with self._lock:
                first = self._faults.get(topic) != fault
                if first:
                    if len(self._faults) >= MAX_FAULTS_KEPT:
                        self._faults.clear()
                    self._faults[topic] = fault
            if first:
                log.warning("fleet: a message on %s was ignored: %s", topic[:200], fault)
            return
        with self._lock:
            self._faults.pop(topic, None)

    def _publish_seen(self) -> None:
        self._client.publish(self._topics.seen, json.dumps({"ts": round(time.time(), 3)}), QOS,
                             retain=True)

