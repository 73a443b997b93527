"""Fleet benchmark: an aggregator merging the heads of many members, and a member hearing it.

Run from the repository root:

    .venv/bin/python -m bench.fleet [--members N] [--classes C] [--rounds R] [--own-labels]

What is measured (a real broker, /usr/sbin/mosquitto, on 127.0.0.1 with a temporary config):

* ``publish``: N simulated members' heads of C classes each (random unit-vector sums of 3
  examples, 1024 wide: the extractor's width) published retained at QoS 1 by one client, as
  members publish them (Head.to_wire: float32 in base64), against the same heads as JSON
  numbers (what members published before issue 28).
* ``aggregator``: the real member code (edgecam.fleet.member.Fleet with fleet.aggregate, in
  this process) connecting: the time until it has published the fleet's head of all N, the
  memory of its book (tracemalloc, which numpy reports to), its merge (book.merge and the
  payload, median of --rounds) against one frame of the embedding extractor.
* ``member``: a member Fleet connecting: the fleet's head it receives (bytes), and the time
  until it asks for its reload; then one member learning a class (its head republished):
  the time until the member has the fleet's head with it (aggregator's settle, merge,
  broker, member), and the member's own merge (`Fleet.effective`).

The broker's side of a whole fleet coming back (after a broker restart: each head in once,
out once to the aggregator, the fleet's head out once to each member) is N x (2 x head +
fleet head), docs/PERFORMANCE.md; tests/integration/test_fleet_scale.py measures it for 200.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bench.launcher import ROOT, free_port
from bench.machine import describe
from edgecam.config import Config, parse_config
from edgecam.core.stats import Stats
from edgecam.fleet.member import Fleet
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head
from edgecam.outputs.mqtt_client import paho
from tests.brokers import Mosquitto, require_mosquitto
from tests.learn_views import TEST, views

SHARED = ROOT.parent / "shared"
EXTRACTOR = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"

DIM = 1024
WAIT_S = 600


def member_head(sha: str, classes: int, rng: np.random.Generator, member: int, shared: bool) -> Head:
    """C classes of 3 examples each: labels of its own, or (`shared`) the same C as every member."""
    head = Head(sha, DIM, EXTRACTOR.name)
    for number in range(classes):
        vectors = rng.normal(size=(3, DIM))
        label = f"class{number}" if shared else f"member{member} class{number}"
        head.add(label, list(vectors / np.linalg.norm(vectors, axis=1)[:, None]))
    return head


def wait(predicate, what: str) -> float:
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > WAIT_S:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.002)
    return time.perf_counter() - started


def publish(port: int, heads: dict[str, bytes]) -> float:
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho().Client(CallbackAPIVersion.VERSION2, client_id=f"bench-members-{time.time()}")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    infos = [client.publish(f"edgecam/{name}/head", payload, qos=1, retain=True)
             for name, payload in heads.items()]
    for info in infos:
        info.wait_for_publish(WAIT_S)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def member_config(folder: Path, port: int, name: str, aggregate: bool) -> Config:
    return parse_config(json.dumps({
        "model": {"path": str(EXTRACTOR), "head": str(folder / f"{name}.head"), "threads": 1},
        "outputs": {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": port,
                             "topic_prefix": f"edgecam/{name}"}},
        "fleet": {"enabled": True, "state_dir": str(folder / name), "aggregate": aggregate}}),
        "bench.yaml", folder)


def fleet_head(fleet: Fleet) -> Head | None:
    return fleet.sync.fleet_heads.get(None)[0]


def aggregate(config: Config, members: int, rounds: int) -> dict[str, float]:
    """The aggregator connecting to N retained heads: seconds to its fleet head, its book's MB,
    its merge's ms (median); it stays connected (returned as `fleet`)."""
    fleet = Fleet(config, Stats(), lambda _why: None)
    fleet.effective(config)  # its targets: the extractor and its width
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    fleet.start()
    published_s = wait(lambda: len((fleet_head(fleet) or Head("0" * 64, 2)).members or []) >= members,
                       "the aggregator's fleet head")
    gc.collect()
    book_mb = (tracemalloc.get_traced_memory()[0] - before) / 1e6
    tracemalloc.stop()
    assert fleet.sync.aggregator is not None
    targets = fleet.sync._targets_now  # (the benchmark reads the member's own state)
    merge_ms = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fleet.sync.aggregator.publish(targets)
        merge_ms.append((time.perf_counter() - t0) * 1000)
    return {"published_s": published_s, "book_mb": book_mb, "merge_ms": statistics.median(merge_ms),
            "fleet": fleet, "started": started}  # type: ignore[dict-item]


def scenario(args: argparse.Namespace, embedder: Embedder, folder: Path) -> None:
    shared = not args.own_labels
    rng = np.random.default_rng(16)
    heads = [member_head(embedder.sha256, args.classes, rng, n, shared) for n in range(args.members)]
    wire = {f"m{n:04d}": head.to_wire() for n, head in enumerate(heads)}
    as_json = statistics.median(len(head.to_bytes()) for head in heads)
    head_size = statistics.median(len(p) for p in wire.values())
    frames = views("cat", TEST)
    broker = Mosquitto(folder, free_port()).start()
    try:
        published_s = publish(broker.port, wire)
        agg = aggregate(member_config(folder, broker.port, "aggregator", True), args.members,
                        args.rounds)
        aggregator: Fleet = agg["fleet"]  # type: ignore[assignment]
        fleet_size = len(aggregator.link.retained()["edgecam/fleet/head"])
        requested: list[float] = []
        config = member_config(folder, broker.port, "member", False)
        member = Fleet(config, Stats(), lambda _why: requested.append(time.perf_counter()))
        member.effective(config)
        started = time.perf_counter()
        member.start()
        wait(lambda: bool(requested), "the member's reload")
        joined_s = requested[-1] - started
        effective_ms = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            member.effective(config)
            effective_ms.append((time.perf_counter() - t0) * 1000)
        frame_ms = []
        for frame in frames:
            t0 = time.perf_counter()
            embedder.embed(frame)
            frame_ms.append((time.perf_counter() - t0) * 1000)
        # One member learns a class: its head republished, until the member has the fleet's head.
        learned = member_head(embedder.sha256, 1, rng, 0, False)
        learned.classes[0].label = "learned"
        heads[0].classes.append(learned.classes[0])
        t0 = time.perf_counter()
        publish(broker.port, {"m0000": heads[0].to_wire()})
        wait(lambda: (fleet_head(member) or Head("0" * 64, 2)).find("learned") is not None,
             "the learned class to reach the member")
        spread_s = time.perf_counter() - t0
        member.close()
        aggregator.close()
    finally:
        broker.stop()
    frame, merge, effective = (statistics.median(frame_ms), agg["merge_ms"],
                               statistics.median(effective_ms))
    n = args.members
    print(f"\n{n} members x {args.classes} classes, "
          f"{'the same labels on every member' if shared else 'labels of their own'}:")
    print(f"  publish: one head {head_size / 1000:.1f} kB on the wire ({as_json / 1000:.0f} kB as "
          f"JSON numbers: {as_json / head_size:.1f}x); {n} heads acknowledged in {published_s:.2f} s")
    print(f"  aggregator: its fleet head of {n} published {agg['published_s']:.2f} s after it "
          f"connected; book {agg['book_mb']:.1f} MB traced; merge {merge:.1f} ms median "
          f"= {merge / frame:.1f} frames of the extractor ({frame:.1f} ms)")
    print(f"  member: the fleet's head {fleet_size / 1000:.0f} kB, its reload asked {joined_s:.2f} s "
          f"after it connected; its merge (Fleet.effective) {effective:.0f} ms")
    print(f"  a class learned on one member reaches the member {spread_s:.2f} s after its head "
          f"was published (then the member's reload: {effective:.0f} ms + reading the head)")
    print(f"  per member on reconnect: {(fleet_size + head_size) / 1e3:.0f} kB (fleet head + its "
          f"own republished), before: {n * as_json / 1e6:.1f} MB (every head as JSON)")
    print(f"  broker restart: N x (2 x head + fleet head) = "
          f"{n * (2 * head_size + fleet_size) / 1e6:.1f} MB; before: N² x JSON head = "
          f"{n * n * as_json / 1e9:.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--own-labels", action="store_true",
                        help="each member's labels its own (N x C classes, at most 1000 merged)")
    args = parser.parse_args()
    require_mosquitto_or_exit()
    print(json.dumps(describe(), indent=1))
    embedder = Embedder(str(EXTRACTOR), threads=1)
    with tempfile.TemporaryDirectory() as temp:
        scenario(args, embedder, Path(temp))


def require_mosquitto_or_exit() -> None:
    try:
        require_mosquitto()
    except BaseException as exc:  # pytest.skip outside pytest
        raise SystemExit("bench/fleet.py needs mosquitto (make deps installs it)") from exc


if __name__ == "__main__":
    main()
