"""Per-member broker credentials and the README's Mosquitto ACL, against a real Mosquitto.

The broker runs with `allow_anonymous false`, a password file made with
mosquitto_passwd -b and the ACL of docs/FLEET.md ("Who may publish what"): each
member, logged in with its device name, writes only under edgecam/<device>/
and reads the fleet's head and the manifest; only the aggregator (`kitchen`)
reads every head and writes the fleet's head, only `operator` the manifest. A
member's credentials cannot publish another member's head nor the fleet's
(the broker drops it: the operator, subscribed to everything, never sees it),
an anonymous client cannot even connect, and the aggregator daemon with its
own credentials still shares its head, merges the others' into the fleet's
head and follows the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

from brokers import (
    acl_file,
    connect_refusal,
    password_file,
)
from fleets import MODEL_TOPIC, WAIT_S, X, learn, member_config, stream_folder
from harness import wait_for

from edgecam.models.fewshot.head import Head

# What docs/FLEET.md tells the operator to write (the same text: the test keeps the recipe honest).
ACL = """\
# Members log in with their device name (the last level of outputs.mqtt.topic_prefix).
pattern readwrite edgecam/%u/#
pattern read edgecam/fleet/head
pattern read edgecam/fleet/head/+
pattern read edgecam/fleet/model
# The aggregator (fleet.aggregate: true, here the camera kitchen): reads every member's head,
# and alone writes the fleet's head. A second aggregator gets the same four lines.
user kitchen
topic read edgecam/+/head
topic read edgecam/+/head/+
topic write edgecam/fleet/head
topic write edgecam/fleet/head/+
# The operator: reads everything, and alone writes the rollout manifest.
user operator
topic read edgecam/#
topic write edgecam/fleet/model
"""
PASSWORDS = {"kitchen": "kitchen-secret", "hall": "hall-secret", "operator": "operator-secret"}


def test_each_member_writes_only_its_own_topics(daemons, mosquitto, subscribers,
                                                tmp_path: Path) -> None:
    broker = mosquitto(passwords=password_file(tmp_path / "passwd", PASSWORDS),
                       acl=acl_file(tmp_path / "acl", ACL))
    operator = subscribers(broker.port, ["edgecam/#"], username="operator",
                           password=PASSWORDS["operator"])

    # Anonymous: refused at CONNECT, so it cannot publish anything; a wrong password too.
    assert "Not authorized" in connect_refusal(broker.port)
    assert "Not authorized" in connect_refusal(broker.port, "hall", "guess")

    # The kitchen member's credentials: its own head goes through, the hall's is dropped.
    kitchen = subscribers(broker.port, [], username="kitchen", password=PASSWORDS["kitchen"])
    forged = Head("ab" * 32, 4)
    forged.add("Z", [[1.0, 0.0, 0.0, 0.0]])
    kitchen.publish("edgecam/hall/head", forged.to_bytes().decode(), retain=True)
    kitchen.publish(MODEL_TOPIC, json.dumps({"version": "evil"}), retain=True)
    kitchen.publish("edgecam/kitchen/online", "probe")
    operator.wait("edgecam/kitchen/online", lambda m: m.payload == "probe", what="the kitchen's own topic")
    assert operator.on("edgecam/hall/head") == [] and operator.on(MODEL_TOPIC) == []
    kitchen.publish("edgecam/kitchen/online", "", retain=True)

    # A member daemon with its credentials: shares its head, merges the hall's, follows the manifest.
    config = member_config(tmp_path, "kitchen", broker.port, stream_folder(tmp_path / "stream"))
    secret = tmp_path / "kitchen.password"
    secret.write_text(PASSWORDS["kitchen"] + "\n")
    config["outputs"]["mqtt"].update(username="kitchen", password_file=str(secret))
    config["fleet"]["aggregate"] = True
    member = daemons(config, name="kitchen")
    member.wait_socket()
    learn(member, X, "cat", tmp_path / "photos")
    shared = operator.wait("edgecam/kitchen/head", lambda m: bool(m.payload), WAIT_S,
                           what="the member's head on its own topic")
    assert Head.parse(shared.payload.encode(), "kitchen's head").labels == [X]
    hall = subscribers(broker.port, ["edgecam/+/head", "edgecam/fleet/head"], username="hall",
                       password=PASSWORDS["hall"])
    theirs = Head.parse(shared.payload.encode(), "kitchen's head")
    theirs.classes[0].label = "hall's class"
    hall.publish("edgecam/hall/head", theirs.to_bytes().decode(), retain=True)
    merged = tmp_path / "kitchen" / "state" / "heads" / "fleet.head"
    wait_for(lambda: merged.exists() and "hall's class" in Head.load(merged).labels, WAIT_S,
             "the member to merge the hall's head")
    # The fleet's head: the aggregator's reaches members; a member's forgery reaches nobody.
    published = hall.wait("edgecam/fleet/head", lambda m: "hall's class" in m.payload, WAIT_S,
                          what="the aggregator's fleet head, as a member hears it")
    assert [d for d, _ in Head.parse(published.payload.encode(), "fleet").members] == [
        "hall", "kitchen"]
    mark = operator.mark()
    hall.publish("edgecam/fleet/head", forged.to_wire().decode(), retain=True)
    hall.publish("edgecam/hall/online", "probe")
    operator.wait("edgecam/hall/online", lambda m: m.payload == "probe", since=mark,
                  what="the hall's own topic")
    assert operator.on("edgecam/fleet/head", mark) == []
    assert hall.on("edgecam/kitchen/head") == []  # a member reads no other member's head
    mark = operator.mark()
    operator.publish(MODEL_TOPIC, json.dumps({"version": "acl-check"}), retain=True)
    status = operator.wait("edgecam/kitchen/model_status",
                           lambda m: bool(m.payload) and json.loads(m.payload)["version"] == "acl-check",
                           WAIT_S, since=mark, what="the member to answer the operator's manifest")
    assert json.loads(status.payload)["state"] == "failed"  # not a manifest it can follow
    assert member.stop() == 0 and "Traceback" not in member.log()
    assert "denied" not in member.log().lower(), member.log()
    operator.publish(MODEL_TOPIC, "", retain=True)
