"""`edgecam fleet status`: the members the broker knows, read from what they retain there.

For each member (`<topic_root>/<device>/...`): online or offline (its last
will), when it was last online (its `seen` heartbeat), its model version and
the rollout's state, and its heads' classes with their example counts. The
command connects with the config's outputs.mqtt settings, reads the retained
messages for a moment and disconnects; it never publishes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edgecam.config import Config
from edgecam.errors import EdgecamError
from edgecam.fleet.topics import HEAD, MODEL_STATUS, ONLINE_KIND, SEEN, FleetTopics
from edgecam.models.fewshot.head import Head, HeadError
from edgecam.outputs.mqtt_client import new_client

QUIET_S = 0.5  # retained messages come right after the subscription: this long without one ends it


@dataclass
class Member:
    device: str
    online: bool | None = None
    seen: float | None = None
    model: dict[str, Any] | None = None
    heads: dict[str, list[dict[str, Any]] | str] = field(default_factory=dict)  # zone ("" frame)

    def as_json(self) -> dict[str, Any]:
        return {"device": self.device, "online": self.online, "last_seen": self.seen,
                "model": self.model, "heads": self.heads}


def read_members(config: Config, wait_s: float) -> tuple[dict[str, Member], dict[str, Any] | None]:
    """(each member by name, the manifest) from the broker's retained messages."""
    topics = FleetTopics.of(config)
    mqtt = config.outputs.mqtt
    client, _password = new_client(mqtt, f"edgecam-fleet-status-{os.getpid()}", None)
    members: dict[str, Member] = {}
    manifest: list[dict[str, Any] | None] = [None]
    lock, subscribed = threading.Lock(), threading.Event()
    last = [time.monotonic()]

    def on_connect(client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in [topics.model, *topics.member_filters()]])

    def on_subscribe(*_args: Any) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        with lock:
            last[0] = time.monotonic()
            _record(topics, members, manifest, message.topic, bytes(message.payload))

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(mqtt.host, mqtt.port, mqtt.keepalive_s)
    except OSError as exc:
        raise EdgecamError(f"outputs.mqtt: cannot reach the broker at {mqtt.host}:{mqtt.port}: "
                           f"{exc.strerror or exc}") from None
    client.loop_start()
    try:
        deadline = time.monotonic() + wait_s
        if not subscribed.wait(wait_s):
            raise EdgecamError(f"outputs.mqtt: the broker at {mqtt.host}:{mqtt.port} did not answer "
                               f"within {wait_s:g} s")
        while time.monotonic() < deadline and time.monotonic() - last[0] < QUIET_S:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return dict(sorted(members.items())), manifest[0]


def _record(topics: FleetTopics, members: dict[str, Member], manifest: list[dict[str, Any] | None],
            topic: str, payload: bytes) -> None:
    if topic == topics.model:
        manifest[0] = _json(payload) if payload else None
        return
    where = topics.parse(topic)
    if where is None or not payload:
        return
    member = members.setdefault(where.device, Member(where.device))
    if where.kind == ONLINE_KIND:
        member.online = payload == b"online"
    elif where.kind == SEEN:
        ts = (_json(payload) or {}).get("ts")
        member.seen = ts if isinstance(ts, int | float) else None
    elif where.kind == MODEL_STATUS:
        member.model = _json(payload)
    elif where.kind == HEAD:
        try:
            head = Head.parse(payload, topic)
            member.heads[where.zone or ""] = [{"label": c.label, "count": c.count}
                                              for c in head.classes]
        except HeadError as exc:
            member.heads[where.zone or ""] = f"not a usable head: {exc}"


def _json(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def status(config: Config, wait_s: float, as_json: bool) -> int:
    if not config.outputs.mqtt.enabled:
        raise EdgecamError("outputs.mqtt.enabled is false: the fleet lives on the MQTT broker")
    members, manifest = read_members(config, wait_s)
    if as_json:
        print(json.dumps({"manifest": manifest, "members": [m.as_json() for m in members.values()]}))
        return 0
    topics = FleetTopics.of(config)
    wanted = manifest.get("version") if manifest else None
    print(f"manifest on {topics.model}: {wanted or 'none'}")
    if not members:
        print(f"no members under {topics.root}/ on {config.outputs.mqtt.host}")
    for member in members.values():
        online = {True: "online", False: "offline", None: "?"}[member.online]
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(member.seen)) if member.seen else "-"
        model = member.model or {}
        state = f"{model.get('version') or '-'} {model.get('state') or ''}".strip() if model else "-"
        if model.get("error"):
            state += f" ({model['error']})"
        print(f"{member.device}: {online}, last seen {seen}, model {state}")
        for zone, classes in member.heads.items():
            what = classes if isinstance(classes, str) else (
                ", ".join(f"{c['label']} ({c['count']})" for c in classes) or "no classes")
            print(f"  {'head' if not zone else f'zone {zone}'}: {what}")
    return 0
