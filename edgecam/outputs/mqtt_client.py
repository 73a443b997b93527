"""Setting up the MQTT connection: paho itself (2.x, imported only here), the password, TLS.

Each problem is one clear line naming the config key (EdgecamError), raised
while the output is built, so a reload with a bad file is refused whole.
"""

from __future__ import annotations

import functools
import logging
import ssl
from typing import Any

from edgecam.common.files import MAX_PEM_BYTES, MAX_SECRET_BYTES, read_user_text, user_file_problem
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
