"""Real Mosquitto brokers for the MQTT tests, and a paho subscriber that records what it gets.

The `mosquitto` fixture (a plugin of conftest.py) starts brokers (Debian's
/usr/sbin/mosquitto) on 127.0.0.1 with a free port and a config file under
tmp_path: plain, with a password file (and an ACL file: `acl_file`), with TLS
from a CA made with openssl. `connect_refusal` tells why a broker turns a
client away.
Its finalizer stops every broker it started, by pid. The `subscribers` fixture
likewise connects paho clients and disconnects them at teardown. Nothing here
touches the system's mosquitto service.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.launcher import free_port, stop_each, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def require_mosquitto() -> None:
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip("mosquitto is not installed (make deps installs it)")


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> Tls:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edgecam test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    return Tls(folder / "ca.crt", folder / "server.crt", folder / "server.key")


def password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file made by mosquitto_passwd -b."""
    for user, password in users.items():
        create = [] if path.exists() else ["-c"]
        subprocess.run([MOSQUITTO_PASSWD, *create, "-b", str(path), user, password], check=True,
                       capture_output=True, timeout=30)
    return path


def acl_file(path: Path, text: str) -> Path:
    """A Mosquitto ACL file (`pattern write edgecam/%u/#`, `user NAME`, `topic read ...`)."""
    path.write_text(text)
    return path


class Mosquitto:
    """One broker process; stop() and start() again keep its port (a broker restart)."""

    def __init__(self, folder: Path, port: int, *, tls: Tls | None = None,
                 passwords: Path | None = None, acl: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.folder = folder
        self.port = port
        self.tls = tls
        self.conf = folder / "mosquitto.conf"
        self.log_path = folder / "mosquitto.log"
        lines = [f"listener {port} 127.0.0.1", "persistence false", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice", "log_type information",
                 f"allow_anonymous {'false' if passwords else 'true'}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to user mosquitto, who cannot read tmp_path
        if passwords:
            lines.append(f"password_file {passwords}")
        if acl:
            lines.append(f"acl_file {acl}")
        lines += extra
        if tls:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True
        wait_for(listening, 30, f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """`mosquitto(tls=..., passwords=..., acl=..., extra=...)` starts a broker; every one is
    stopped at teardown."""
    started: list[Mosquitto] = []

    def start(*, tls: Tls | None = None, passwords: Path | None = None, acl: Path | None = None,
              extra: tuple[str, ...] = ()) -> Mosquitto:
        require_mosquitto()
        folder = tmp_path / f"mosquitto-{len(started)}"
        folder.mkdir()
        broker = Mosquitto(folder, free_port(), tls=tls, passwords=passwords, acl=acl, extra=extra)
        started.append(broker)
        return broker.start()

    try:
        yield start
    finally:
        stop_each(started, Mosquitto.stop)


def connect_refusal(port: int, username: str | None = None, password: str | None = None) -> str:
    """Why the broker on `port` refuses this client's CONNECT (paho's reason), or "" if it
    accepts it: one attempt, no retry."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    outcome: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{os.getpid()}-{time.monotonic_ns()}")
    if username:
        client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(
        str(reason) if reason.is_failure else "")
    client.connect("127.0.0.1", port, keepalive=5)
    try:
        deadline = time.monotonic() + 30
        while not outcome and time.monotonic() < deadline:
            client.loop(0.1)
    finally:
        client.disconnect()
    assert outcome, f"no CONNACK from the broker on port {port}"
    return outcome[0]


@dataclass
class Message:
    topic: str
    payload: str
    retain: bool
    at: float


class Subscriber:
    """A paho client that subscribes to `topics` and records every message, in order."""

    def __init__(self, port: int, topics: list[str], *, tls: Tls | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._topics = topics
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{id(self)}")
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(tls.ca))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.port = port
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def wait_connected(self) -> Subscriber:
        wait_for(self.connected.is_set, 30, f"the test subscriber to connect to port {self.port}")
        return self

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            for topic in self._topics:
                client.subscribe(topic, qos=1)
            self.connected.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append(Message(message.topic, message.payload.decode(errors="replace"),
                                         bool(message.retain), time.monotonic()))

    def on(self, topic: str, since: int = 0) -> list[Message]:
        """Messages received on `topic`, from index `since` of all received."""
        with self._lock:
            return [m for m in self.messages[since:] if m.topic == topic]

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)

    def wait(self, topic: str, predicate: Callable[[Message], bool] = lambda _m: True,
             timeout: float = 60, since: int = 0, what: str | None = None) -> Message:
        def found() -> Message | None:
            return next((m for m in self.on(topic, since) if predicate(m)), None)
        return wait_for(found, timeout, what or f"a message on {topic}")

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    """`subscribers(port, topics, ...)` connects a Subscriber; every one is disconnected at
    teardown."""
    made: list[Subscriber] = []

    def connect(port: int, topics: list[str], **kw: Any) -> Subscriber:
        subscriber = Subscriber(port, topics, **kw)
        made.append(subscriber)
        return subscriber.wait_connected()

    try:
        yield connect
    finally:
        stop_each(made, Subscriber.close)
