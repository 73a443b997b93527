"""`edgecam fleet status`: the members the broker knows, read from what they retain there.

For each member (`<topic_root>/<device>/...`): online or offline (its last
will), when it was last online (its `seen` heartbeat), its model version and
the rollout's state, and its heads' classes with their example counts and
whether the fleet's head merged that version of them. Then the fleet's head
(`<topic_root>/fleet/head`, an aggregator's): its classes, and the members and
versions (the sha256 of each member's head payload) it merged. The
command connects with the config's outputs.mqtt settings, reads the retained
messages for a moment and disconnects; it never publishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edgecam.config import Config
from edgecam.errors import EdgecamError
from edgecam.fleet.topics import FLEET, HEAD, MODEL_STATUS, ONLINE_KIND, SEEN, FleetTopics
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
    versions: dict[str, str] = field(default_factory=dict)  # each head payload's sha256, by zone

    def as_json(self) -> dict[str, Any]:
        return {"device": self.device, "online": self.online, "last_seen": self.seen,
                "model": self.model, "heads": self.heads, "head_sha256": self.versions}


Fleet = dict[str, dict[str, Any]]  # the fleet's heads, by zone ("" the whole frame)


def read_members(config: Config, wait_s: float) -> tuple[dict[str, Member], dict[str, Any] | None,
                                                         Fleet]:
    """(each member by name, the manifest, the fleet's heads) from the broker's retained messages."""
    topics = FleetTopics.of(config)
    mqtt = config.outputs.mqtt
    client, _password = new_client(mqtt, f"edgecam-fleet-status-{os.getpid()}", None)
    members: dict[str, Member] = {}
    fleet: Fleet = {}
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
            _record(topics, (members, fleet), manifest, message.topic, bytes(message.payload))

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
        return dict(sorted(members.items())), manifest[0], dict(sorted(fleet.items()))


def _record(topics: FleetTopics, seen: tuple[dict[str, Member], Fleet],
            manifest: list[dict[str, Any] | None], topic: str, payload: bytes) -> None:
    members, fleet = seen
    if topic == topics.model:
        manifest[0] = _json(payload) if payload else None
        return
    where = topics.parse(topic)
    if where is None or not payload:
        return
    if where.device == FLEET:
        if where.kind == HEAD:
            fleet[where.zone or ""] = _fleet_head(topic, payload)
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
        member.versions[where.zone or ""] = hashlib.sha256(payload).hexdigest()
        try:
            head = Head.parse(payload, topic)
            member.heads[where.zone or ""] = [{"label": c.label, "count": c.count}
                                              for c in head.classes]
        except HeadError as exc:
            member.heads[where.zone or ""] = f"not a usable head: {exc}"


def _fleet_head(topic: str, payload: bytes) -> dict[str, Any]:
    try:
        head = Head.parse(payload, topic)
    except HeadError as exc:
        return {"error": f"not a usable head: {exc}"}
    return {"classes": [{"label": c.label, "count": c.count} for c in head.classes],
            "members": [{"device": d, "sha256": s} for d, s in head.members or []]}


def _json(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def status(config: Config, wait_s: float, as_json: bool) -> int:
    if not config.outputs.mqtt.enabled:
        raise EdgecamError("outputs.mqtt.enabled is false: the fleet lives on the MQTT broker")
    members, manifest, fleet = read_members(config, wait_s)
    if as_json:
        print(json.dumps({"manifest": manifest, "members": [m.as_json() for m in members.values()],
                          "fleet_heads": fleet}))
        return 0
    topics = FleetTopics.of(config)
    wanted = manifest.get("version") if manifest else None
    print(f"manifest on {topics.model}: {wanted or 'none'}")
    if not members:
        print(f"no members under {topics.root}/ on {config.outputs.mqtt.host}")
    for member in members.values():
        _print_member(member, fleet)
    for zone, head in fleet.items():
        _print_fleet_head(topics.fleet_head_of(zone or None), head)
    if not fleet:
        print(f"{topics.fleet_head_of(None)}: none (no aggregator has published: fleet.aggregate)")
    return 0


def _print_member(member: Member, fleet: Fleet) -> None:
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
        merged = {"device": member.device, "sha256": member.versions.get(zone)} in (
            fleet.get(zone, {}).get("members") or [])
        print(f"  {'head' if not zone else f'zone {zone}'}: {what}"
              f"{' (merged)' if merged else ' (not in the fleet head yet)'}")


def _print_fleet_head(topic: str, head: dict[str, Any]) -> None:
    if "error" in head:
        print(f"{topic}: {head['error']}")
        return
    classes = ", ".join(f"{c['label']} ({c['count']})" for c in head["classes"]) or "no classes"
    merged = ", ".join(f"{m['device']} {m['sha256'][:12]}" for m in head["members"]) or "none"
    print(f"{topic}: {classes}\n  merged {len(head['members'])} members: {merged}")
