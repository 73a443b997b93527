"""The MQTT connection: paho itself (2.x, imported only here), the password, TLS; what became of
a message handed to paho (`fate`), and closing a client whatever state it is in (`close_client`).

Each set-up problem is one clear line naming the config key (EdgecamError), raised
while the output is built, so a reload with a bad file is refused whole.

paho facts relied on (eclipse/paho.mqtt.python 2.1.0, src/paho/mqtt/client.py; 2.2.0 alike):
- `publish()` returns an MQTTMessageInfo whose `rc` says what paho did with it. A QoS 1 or 2
  message published while disconnected has rc MQTT_ERR_NO_CONN but stays in paho's
  `_out_messages` and is sent after the next connect (`_messages_reconnect_reset_out`,
  whatever the clean-session flag); paho drops one only when `max_queued_messages` is
  exceeded (rc MQTT_ERR_QUEUE_SIZE). A QoS 0 message is lost with the connection (rc
  NO_CONN, or MQTT_ERR_CONN_LOST once written to a socket that then closed).
- `is_published()` raises (ValueError for QUEUE_SIZE, RuntimeError for any other rc > 0)
  and keeps raising after such a queued message is delivered: the rc is not updated, so
  delivery shows only in `on_publish(client, userdata, mid, reason_code, properties)`.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Container
from typing import Any

from edgecam.common.files import MAX_PEM_BYTES, MAX_SECRET_BYTES, read_user_text, user_file_problem
from edgecam.common.worker import Worker
from edgecam.config import MqttConfig
from edgecam.dependencies import PAHO, MissingDependency
from edgecam.errors import EdgecamError


def paho() -> Any:
    """paho.mqtt.client, or one clear line when it is missing or too old."""
    try:
        import paho.mqtt
        import paho.mqtt.client as client
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: F401  (paho 2.x only)
    except ImportError:
        try:
            import paho.mqtt
        except ImportError:
            raise MissingDependency(PAHO) from None
        raise MissingDependency(PAHO, f"outputs.mqtt needs paho-mqtt 2.x, found {paho.mqtt.__version__} "
                                "(bookworm's python3-paho-mqtt is 1.6, whose API differs): "
                                "pip install 'edgecam[mqtt]' into the virtualenv") from None
    return client


@functools.cache
def client_class() -> type:
    """paho's Client, remembering why the last connection attempt failed (paho only retries)."""
    mqtt = paho()

    class Client(mqtt.Client):  # type: ignore[name-defined]  # (paho is imported at run time)
        last_error: OSError | None = None

        def reconnect(self) -> Any:
            try:
                return super().reconnect()
            except OSError as exc:
                self.last_error = exc
                raise

    return Client


RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


def new_client(config: MqttConfig, client_id: str, will: tuple[str, str, int] | None
               ) -> tuple[Any, str | None]:
    """A paho client for `config`'s broker with its last will (topic, payload, qos) if any,
    reconnecting with backoff; (client, the password read). Not connected yet."""
    password = read_password(config.password_file) if config.password_file else None
    context = tls_context(config)
    mqtt = paho()
    from paho.mqtt.enums import CallbackAPIVersion

    client = client_class()(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
    client.suppress_exceptions = True  # a bug in a callback is logged; paho's thread lives on
    client.enable_logger(_paho_log())
    if config.username:
        client.username_pw_set(config.username, password)
    if context is not None:
        client.tls_set_context(context)
    if will is not None:
        topic, payload, qos = will
        client.will_set(topic, payload, qos=qos, retain=True)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client, password


@functools.cache
def _paho_log() -> logging.Logger:
    """paho's logger: INFO and up (its debug lines are one per packet: never in the journal),
    without the ERROR paho 2.x logs at each turn of its loop while the socket is closed (after
    each failed reconnect, and at a clean stop): the output says what failed, once."""
    paho_log = logging.getLogger("edgecam.outputs.mqtt.paho")
    paho_log.setLevel(logging.INFO)
    paho_log.addFilter(lambda record: not record.getMessage().startswith("Client is not connected."))
    return paho_log


#: what became of a message handed to paho (`fate`)
SENT, WAITING, LOST = "sent", "waiting", "lost"


def fate(info: Any, qos: int, acknowledged: Container[int]) -> str:
    """SENT (written at QoS 0, acknowledged at 1 and 2), WAITING, or LOST for good.

    `acknowledged`: the mids on_publish reported, the only sign that a QoS >= 1 message
    queued while disconnected was delivered (its is_published() raises for ever).
    """
    mqtt = paho()
    if info.rc == mqtt.MQTT_ERR_SUCCESS:
        return SENT if info.is_published() else WAITING
    if info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0:  # queued in paho until the next connect
        return SENT if info.mid in acknowledged else WAITING
    return LOST


def settle(inflight: list[tuple[Any, bool]], qos: int, acknowledged: Container[int]
           ) -> tuple[list[tuple[Any, bool]], list[str]]:
    """Of the (MQTTMessageInfo, is a result) handed to paho: those still WAITING, and the fate
    (SENT or LOST) of each result no longer waiting."""
    pending, settled = [], []
    for info, is_result in inflight:
        what = fate(info, qos, acknowledged)
        if what == WAITING:
            pending.append((info, is_result))
        elif is_result:
            settled.append(what)
    return pending, settled


def same_password(config: MqttConfig, password: str | None) -> bool:
    """Whether the password file's text is still `password` (an unreadable file is not: the new
    output's construction reports it)."""
    try:
        return password == (read_password(config.password_file) if config.password_file else None)
    except EdgecamError:
        return False


def close_client(client: Any, last: tuple[str, str, int] | None, timeout_s: float) -> None:
    """Publishes `last` (topic, payload, qos; retained) if given, waits up to `timeout_s` for it,
    then disconnects and stops paho's loop, whatever failed before.

    A client left looping reconnects with the same client id and takes the session from the
    one that replaces it (a reload, a restart), which then takes it back, and so on.
    """
    try:
        if last is not None:
            topic, payload, qos = last
            info = client.publish(topic, payload, qos, retain=True)
            deadline = time.monotonic() + timeout_s
            # As QoS 0: one that paho queued for a connection that is not there will not go now.
            while fate(info, 0, ()) == WAITING and time.monotonic() < deadline:
                time.sleep(0.01)
    except Exception as exc:  # paho refused it (ValueError) or the connection went: go on closing
        logging.getLogger(__name__).warning("mqtt: could not say %s on %s: %s", last and last[1],
                                            last and last[0], exc)
    finally:
        try:
            client.disconnect()
        finally:
            # loop_stop() joins paho's thread with no timeout, and that thread may be stuck in a
            # connection attempt (a DNS lookup, a TCP connect): a bounded wait, then go on.
            stopper = Worker("edgecam-mqtt-stop", lambda _stop: client.loop_stop())
            stopper.start()
            stopper.stop(2 * timeout_s)  # left behind, with a warning, if it does not return


def read_password(path: str) -> str:
    """The password file's text without its trailing newline; one clear line if unusable."""
    password = read_user_text(path, "outputs.mqtt.password_file",
                              max_bytes=MAX_SECRET_BYTES).rstrip("\r\n")
    if not password:
        raise EdgecamError(f"outputs.mqtt.password_file: {path} is empty")
    return password


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """Verifies the broker against tls.ca_file (and its host name); None without a CA file."""
    tls = config.tls
    if not tls.ca_file:
        return None
    # Regular files within MAX_PEM_BYTES only: OpenSSL would wait on a FIFO, read /dev/zero forever.
    for key, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        problem = user_file_problem(path, MAX_PEM_BYTES) if path else None
        if problem is not None:
            raise EdgecamError(f"outputs.mqtt.tls.{key}: cannot load {path}: {problem}")
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise EdgecamError(f"outputs.mqtt.tls.ca_file: cannot load {tls.ca_file}: {exc}") from None
    if tls.cert_file:
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise EdgecamError(f"outputs.mqtt.tls.cert_file: cannot load {tls.cert_file}"
                               f"{' with ' + tls.key_file if tls.key_file else ''}: {exc}") from None
    return context
