"""Fleet benchmark: one member merging the heads of many others, over a real Mosquitto.

Run from the repository root:

    .venv/bin/python -m bench.fleet [--members N] [--classes C] [--rounds R]

What is measured (a real broker, /usr/sbin/mosquitto, on 127.0.0.1 with a temporary config):

* ``publish``: N simulated members' heads of C classes each (random unit-vector sums of 3
  examples, 1024 wide: the extractor's width) published retained at QoS 1 by one client:
  the payload size of one head and the time until the broker acknowledged them all.
* ``delivery``: the real member code (edgecam.fleet.member.Fleet, in this process) connecting
  and subscribing: the time until every retained head has arrived and been parsed into its
  HeadBook (paho's thread), and until it asks for a reload (its settle delay included).
* ``merge``: `Fleet.effective` as a reload runs it (merge this device's head with the N
  members', write the merge and the members' merge atomically), median of --rounds; against
  ``merge_heads`` alone on the same heads (the arithmetic `learn merge` does) and against one
  frame of the embedding extractor (what the merge costs in frames on this machine).
* memory: what the member's book of N heads takes (tracemalloc, which numpy reports to, from
  before it connects to once every head is in), against the heads' own sums (N x C x 1024
  float64).

Two fleets: every member with the same C labels (a shop whose cameras all learn the same
things: the merge has C classes), and every member with labels of its own (N x C classes).

The broker's side (each member that connects is sent every retained head: N^2 x head size for
a whole fleet coming back after a power cut) is extrapolated from ``delivery`` in
docs/PERFORMANCE.md.
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
from edgecam.fleet.sync import SETTLE_MAX_S
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head, merge_heads
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
        time.sleep(0.005)
    return time.perf_counter() - started


def publish(port: int, heads: list[bytes]) -> float:
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho().Client(CallbackAPIVersion.VERSION2, client_id="bench-members")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    infos = [client.publish(f"edgecam/m{n:04d}/head", payload, qos=1, retain=True)
             for n, payload in enumerate(heads)]
    for info in infos:
        info.wait_for_publish(WAIT_S)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def deliver(config: Config, members: int, traced: bool) -> tuple[float, float, Fleet]:
    """A member connecting: (seconds until every head is in its book, or with `traced` the MB
    that book takes; seconds until its last reload request; the member, still connected)."""
    requested: list[float] = []
    fleet = Fleet(config, Stats(), lambda _why: requested.append(time.perf_counter()))
    fleet.effective(config)  # this device's (empty) merge, and the extractor's width
    book = fleet.sync.book  # (the benchmark reads the member's own book)
    gc.collect()
    if traced:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if traced else 0
    started = time.perf_counter()
    fleet.start()
    delivered_s = wait(lambda: book.size() >= members, "every head")
    wait(lambda: bool(requested) and time.perf_counter() - requested[-1] > 2 * SETTLE_MAX_S,
         "the reload requests to end")
    settled_s = requested[-1] - started
    if not traced:
        fleet.close()
        return delivered_s, settled_s, fleet
    gc.collect()
    book_mb = (tracemalloc.get_traced_memory()[0] - before) / 1e6
    tracemalloc.stop()
    return book_mb, settled_s, fleet


def scenario(args: argparse.Namespace, shared: bool, embedder: Embedder, folder: Path) -> None:
    sha = embedder.sha256
    rng = np.random.default_rng(16)
    heads = [member_head(sha, args.classes, rng, n, shared) for n in range(args.members)]
    payloads = [head.to_bytes() for head in heads]
    frames = views("cat", TEST)
    broker = Mosquitto(folder, free_port()).start()
    try:
        published_s = publish(broker.port, payloads)
        config = parse_config(json.dumps({
            "model": {"path": str(EXTRACTOR), "head": str(folder / "local.head"), "threads": 1},
            "outputs": {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                                 "topic_prefix": "edgecam/bench"}},
            "fleet": {"enabled": True, "state_dir": str(folder / "state")}}), "bench.yaml", folder)
        delivered_s, settled_s = deliver(config, args.members, traced=False)[:2]
        book_mb, _settled, fleet = deliver(config, args.members, traced=True)
        effective_ms, arithmetic_ms, frame_ms = [], [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            fleet.effective(config)
            t1 = time.perf_counter()
            merge_heads([(f"m{n}", head) for n, head in enumerate(heads)])
            t2 = time.perf_counter()
            for frame in frames:
                embedder.embed(frame)
            t3 = time.perf_counter()
            effective_ms.append((t1 - t0) * 1000)
            arithmetic_ms.append((t2 - t1) * 1000)
            frame_ms.append((t3 - t2) * 1000 / len(frames))
        merged_file = folder / "state" / "heads" / "fleet.head"
        loaded = time.perf_counter()
        merged = Head.load(merged_file)
        load_ms = (time.perf_counter() - loaded) * 1000
        fleet.close()
    finally:
        broker.stop()
    size = statistics.median(len(p) for p in payloads)
    merge, arithmetic, frame = (statistics.median(v) for v in (effective_ms, arithmetic_ms, frame_ms))
    print(f"\n{args.members} members x {args.classes} classes, "
          f"{'the same labels on every member' if shared else 'labels of their own'}: "
          f"merged head {len(merged.classes)} classes, {merged_file.stat().st_size / 1e6:.1f} MB")
    print(f"  publish: one head {size / 1000:.0f} kB; {args.members} heads "
          f"({sum(map(len, payloads)) / 1e6:.1f} MB) acknowledged by the broker in {published_s:.2f} s")
    print(f"  delivery: every retained head parsed into the member's book {delivered_s:.2f} s after "
          f"it connected; its last reload asked at {settled_s:.2f} s")
    print(f"  merge (Fleet.effective, median of {args.rounds}): {merge:.0f} ms = "
          f"{merge / arithmetic:.1f} x merge_heads alone ({arithmetic:.0f} ms) = "
          f"{merge / frame:.0f} frames of the extractor ({frame:.1f} ms each); the reload then "
          f"reads the merged head in {load_ms:.0f} ms = {load_ms / frame:.0f} frames")
    print(f"  memory: the member's book {book_mb:.1f} MB traced (the sums alone: "
          f"{args.members * args.classes * DIM * 8 / 1e6:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    require_mosquitto_or_exit()
    print(json.dumps(describe(), indent=1))
    embedder = Embedder(str(EXTRACTOR), threads=1)
    for shared in (True, False):
        with tempfile.TemporaryDirectory() as temp:
            scenario(args, shared, embedder, Path(temp))


def require_mosquitto_or_exit() -> None:
    try:
        require_mosquitto()
    except BaseException as exc:  # pytest.skip outside pytest
        raise SystemExit("bench/fleet.py needs mosquitto (make deps installs it)") from exc


if __name__ == "__main__":
    main()
