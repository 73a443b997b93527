"""The MQTT output: results, the current label, stats and availability on a broker.

The topics and Home Assistant's discovery messages are in outputs.mqtt_topics,
what this device retains and the messages that set it in outputs.mqtt_retained,
the connection's set-up (paho, password, TLS) in outputs.mqtt_client.

Nothing here can stall the pipeline. paho's network thread (`loop_start`)
connects, reconnects with backoff and does all socket I/O. `emit()` only
appends to a bounded queue (full: the oldest result is dropped, counted as
`mqtt_dropped`). One `edgecam-mqtt` thread hands messages to paho, only while
connected and only MAX_INFLIGHT unconfirmed at a time, so nothing piles up in
paho while the broker is away. On every (re)connect it first republishes the
state (availability, discovery, the current labels), then the queued results.

With zones (`set_zones`), each zone has its own topics and entities, and the
retained messages the zones in force no longer use are cleared (outputs.mqtt_retained).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from edgecam.common.queues import DropOldestQueue
from edgecam.common.throttle import LogThrottle
from edgecam.common.worker import Worker
from edgecam.config import Config, MqttConfig
from edgecam.core.results import Result, stats_message
from edgecam.core.stats import Stats
from edgecam.outputs.base import Output
from edgecam.outputs.mqtt_client import LOST, SENT, close_client, fate, new_client, same_password, settle
from edgecam.outputs.mqtt_retained import Message, Retained
from edgecam.outputs.mqtt_topics import OFFLINE, Topics, client_id, topic_prefix

log = logging.getLogger(__name__)

MAX_INFLIGHT = 20  # messages handed to paho and not yet written (QoS 0) or acknowledged (QoS 1, 2)
CLOSE_TIMEOUT_S = 1.0
_POLL_S = 0.2
_LOG_EVERY = 10  # repeated connection failures: log one in this many


class MqttOutput(Output):
    """Publishes to the broker `config` names; start() connects in the background (never fails on
    an absent broker: it keeps retrying), close() says `offline` and disconnects."""

    name = "mqtt"
    exclusive = True  # the broker allows one connection per client id

    def __init__(self, config: MqttConfig, stats: Stats) -> None:
        self.config = config
        self.stats_interval_s = config.stats_interval_s
        self.topics = Topics(topic_prefix(config))
        self._stats = stats
        self._qos = config.qos
        self._client = self._make_client()
        self._cond = threading.Condition()
        self._queue: DropOldestQueue[Result] = DropOldestQueue(config.queue_length, self._dropped,
                                                               self._cond)
        self._stats_payload: str | None = None
        self._connected = False
        self._resync = False
        self._ever_connected = False
        self._dropped_while_away = 0
        self._failures = LogThrottle(_LOG_EVERY)
        self._last_failure = ""
        self._inflight: list[tuple[Any, bool]] = []  # (paho MQTTMessageInfo, is a result)
        self._acknowledged: set[int] = set()  # mids on_publish reported, until _reap reads them
        self._retained = Retained(config, self.topics)
        self._stale: set[str] = set()  # retained messages of ours to clear (no longer owned)
        self._resubscribe = False  # the zones changed: have the broker resend what it retains
        self._worker = Worker("edgecam-mqtt", self._run)
        self._closed = False

    # -- set-up ------------------------------------------------------------------------------

    def reusable(self, config: Config) -> bool:
        """Whether the mqtt section, and the password file's text, are what this output runs with."""
        mqtt = config.outputs.mqtt
        return mqtt == self.config and same_password(mqtt, self._password)

    def _make_client(self) -> Any:
        client, self._password = new_client(self.config, client_id(self.config),
                                            (self.topics.availability, OFFLINE, self._qos))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def start(self) -> None:
        self._stats.set_gauge("mqtt_connected", 0)
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()
        self._worker.start()
        log.info("mqtt: publishing under %s/ to %s:%d%s", self.topics.prefix, self.config.host,
                 self.config.port, " (TLS)" if self.config.tls.ca_file else "")

    def set_zones(self, zones: tuple[str, ...]) -> None:
        """Moves to `zones`' topics and entities; the publisher thread then has the broker resend
        what it retains for this device, so those of the zones removed are cleared."""
        with self._cond:
            if zones == self._retained.zones:
                return
            self._retained.follow(zones)
            self._stale -= self._retained.owned
            self._resync = self._resubscribe = True  # announce the new zones' entities
            self._cond.notify_all()

    def _subscribe_owned(self, client: Any) -> None:
        client.subscribe(self._retained.subscriptions())

    # -- the Output protocol (the dispatcher thread) -----------------------------------------

    def emit(self, result: Result) -> None:
        with self._cond:
            if self._closed:
                return
            self._queue.put(result)

    def _dropped(self, _result: Result) -> None:
        """The queue was full: its oldest result went (the lock is held)."""
        self._stats.count("mqtt_dropped")
        self._dropped_while_away += 1
        if self._dropped_while_away == 1:
            log.warning("mqtt: the broker is not keeping up or away; dropping the oldest "
                        "results (beyond %d queued)", self.config.queue_length)

    def stats(self, figures: dict[str, Any]) -> None:
        with self._cond:
            self._stats_payload = json.dumps(stats_message(figures), separators=(", ", ": "))
            self._cond.notify()

    def close(self) -> None:
        """Publishes what is queued (briefly), then `offline`, and disconnects."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        with self._cond:
            self._cond.wait_for(lambda: not self._connected or not (len(self._queue) or self._inflight),
                                timeout=CLOSE_TIMEOUT_S)
        self._worker.stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._worker.stop(CLOSE_TIMEOUT_S)
        offline = (self.topics.availability, OFFLINE, self._qos) if self._connected else None
        close_client(self._client, offline, max(0.0, deadline - time.monotonic()) + CLOSE_TIMEOUT_S)
        self._stats.clear_gauge("mqtt_connected")

    # -- paho's callbacks (its network thread): only flags and notifications -----------------

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._connect_failed(f"refused: {reason}")
            return
        if self.config.homeassistant:
            client.subscribe(f"{self.config.discovery_prefix}/status", qos=self._qos)
        self._subscribe_owned(client)
        with self._cond:
            self._connected = self._resync = True
            self._resubscribe = False  # just subscribed, before anything is published
            reconnected, self._ever_connected = self._ever_connected, True
            dropped, self._dropped_while_away = self._dropped_while_away, 0
            self._failures.reset()
            self._last_failure = ""
            self._cond.notify_all()
        self._stats.set_gauge("mqtt_connected", 1)
        where = f"{self.config.host}:{self.config.port}"
        if reconnected:
            self._stats.count("mqtt_reconnects")
            log.info("mqtt: reconnected to %s; %d result(s) dropped meanwhile", where, dropped)
        else:
            log.info("mqtt: connected to %s", where)

    def _on_connect_fail(self, client: Any, _userdata: Any) -> None:
        error = getattr(client, "last_error", None)
        self._connect_failed(str(error) if error else "connection failed")

    def _connect_failed(self, why: str) -> None:
        if why != self._last_failure:
            self._failures.reset()  # a new reason is logged at once
        if self._failures():
            log.warning("mqtt: cannot connect to %s:%d: %s (retrying, %d failure(s) so far)",
                        self.config.host, self.config.port, why, self._failures.count)
        self._last_failure = why

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        with self._cond:
            was, self._connected = self._connected, False
            self._cond.notify_all()
        self._stats.set_gauge("mqtt_connected", 0)
        if was and not self._closed:
            log.warning("mqtt: lost the broker (%s); reconnecting", reason)

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        """Home Assistant (re)started: it forgot discovery unless retained; announce again.
        A retained message of ours that the zones no longer use: clear it."""
        if message.topic == f"{self.config.discovery_prefix}/status":
            if message.payload == b"online":
                with self._cond:
                    self._resync = True
                    self._cond.notify_all()
            return
        # Retained (what the broker held when we subscribed, not our own publishes coming
        # back) and not already cleared (an empty payload).
        if message.retain and message.payload:
            with self._cond:
                if message.topic not in self._retained.owned:
                    self._stale.add(message.topic)
                    self._cond.notify_all()

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, *_args: Any) -> None:
        with self._cond:
            self._acknowledged.add(mid)
            self._cond.notify_all()

    # -- the publisher thread ------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._step()
            except Exception:  # a bug: log it, keep publishing
                self._stats.count("output_errors")
                log.exception("mqtt: publishing failed")
                stop.wait(_POLL_S)

    def _step(self) -> None:
        self._reap()
        with self._cond:
            batch = self._take()
            if batch is None:
                self._cond.wait(_POLL_S)
                return
            resubscribe, self._resubscribe = self._resubscribe, False
        if resubscribe:
            # From this thread, after every label of the old zones it published: the broker
            # answers with their final retained state, which _on_message then clears.
            self._subscribe_owned(self._client)
        for topic, payload, retain, is_result in batch:
            self._publish(topic, payload, retain, is_result)

    def _take(self) -> list[Message] | None:
        """What to hand to paho now (the lock is held); None when nothing can go."""
        if not self._connected or len(self._inflight) >= MAX_INFLIGHT:
            return None
        batch: list[Message] = [(topic, "", True, False)
                                                    for topic in sorted(self._stale)]
        self._stale.clear()
        if self._resync:
            self._resync = False
            batch += self._retained.state()
        if self._stats_payload is not None:
            batch.append((self.topics.stats, self._stats_payload, False, False))
            self._stats_payload = None
        room = MAX_INFLIGHT - len(self._inflight)
        while room > 0 and (result := self._queue.pop()) is not None:
            room -= 1
            batch += self._retained.result(result)
        return batch or None

    def _publish(self, topic: str, payload: str, retain: bool, is_result: bool) -> None:
        try:
            info = self._client.publish(topic, payload, self._qos, retain)
        except (ValueError, OSError) as exc:
            info = None
            log.error("mqtt: cannot publish to %s: %s", topic, exc)
        if info is not None and fate(info, self._qos, ()) != LOST:  # QoS >= 1: paho keeps it
            with self._cond:
                self._inflight.append((info, is_result))
        elif is_result:
            self._stats.count("mqtt_dropped")  # QoS 0 and the connection went since _take()

    def _reap(self) -> None:
        """Counts what paho has written (QoS 0) or had acknowledged (QoS 1, 2), or lost for good
        (QoS 0 with the connection, mqtt_client.fate); QoS >= 1 waits in paho across reconnects."""
        if not self._inflight:
            return
        with self._cond:
            acknowledged, self._acknowledged = self._acknowledged, set()
        pending, settled = settle(self._inflight, self._qos, acknowledged)
        for what in settled:
            self._stats.count("mqtt_published" if what == SENT else "mqtt_dropped")
        with self._cond:
            # An acknowledgement that came before its message was listed is kept for the next turn.
            self._acknowledged |= acknowledged & {info.mid for info, _ in pending}
            self._inflight = pending
            self._cond.notify_all()
