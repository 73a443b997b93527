"""Soak benchmark: the real daemon on a live stream for a long time, with clients, reloads and outages.

Run from the repository root (matplotlib comes with the `bench` extra):

    .venv/bin/python -m bench.soak [--duration 600] [--out DIR]

What runs, for --duration seconds (default 10 min):

* the daemon, `python -m edgecam run -c CONFIG`, as systemd would run it: journal output off,
  its socket under a temporary folder, `emit: every_frame` (every classified frame goes through
  the filter, the dispatcher and the socket);
* a live stream on 127.0.0.1: ffmpeg serving, in real time and in a loop, a 640x480 video of the
  test photos one scene after another (--fps, default 25), read by the daemon as tcp://127.0.0.1:PORT
  (tests/streams.py: the same server the stream tests use);
* 5 socket clients (--clients) that connect, read for a random 1-8 s, disconnect, wait up to 2 s
  and connect again, for the whole run; plus one monitor client that stays connected and reads
  every message (the results that show recovery, the `stats` message every 5 s);
* a SIGHUP every 30 s (--hup-every), alternating two valid configs that differ in
  `outputs.min_score`;
* the stream killed (SIGKILL, a crashed camera) every 2 min (--restart-every) and started again
  on the same port after an outage (--down, seconds, cycled: default 5 s then 20 s, so the
  daemon's reconnect backoff also reaches its cap). A restart is recovered when the monitor
  reads a result for a frame captured after the new server listens, within --recover-within
  seconds (default 30 s: the backoff cap of 10 s, a 5 s open timeout, and margin).

Every --interval seconds (default 5) it samples the daemon: RSS (VmRSS), anonymous RSS (RssAnon)
and threads from /proc/PID/status, open fds from /proc/PID/fd (also less the sockets of our
clients connected at that moment, one fd each in the daemon: the figure the fd goal uses), CPU
from /proc/PID/stat, the machine's load average, and from the latest `stats` message the latency
p50/p99 (over the last 1000 results), frame, drop, source and output counters. It writes, in
--out (default: a new folder under /tmp):

    soak.csv           one row per sample
    soak-restarts.csv  one row per stream restart: when, down for how long, recovered, how fast
    soak.png           RSS and latency p99 over time, stream outages marked
    soak-summary.json  the figures printed at the end
    daemon.log         the daemon's stderr; ffmpeg.log the servers' stderr

and prints the drift: medians of the first and the last 20 % of the run after the warm-up
(--warmup, default 60 s) for RSS, fds, threads and latency p99, the stream restarts recovered,
and the drops. Goals (issue 5): RSS growth < 2 MB, no growth in fds or threads, p99 flat (the
last window's median at most 20 % or 10 ms above the first's, whichever is larger), every
restart recovered. Exit status: 0 when every goal is met, 1 when one is missed, 2 when the run
could not be done (the daemon died, a tool is missing, Ctrl-C).

Everything it starts (daemon, ffmpeg, clients) is stopped at the end, on errors and on Ctrl-C
or SIGTERM, by pid; the daemon also gets SIGTERM if this script dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.cpu import process_cpu_s
from bench.launcher import ROOT, Process, WaitTimeout, edgecam_run, free_port
from bench.machine import describe
from tests.streams import FFMPEG, HEIGHT, WIDTH, StreamServer, build_scenes

SHARED = ROOT.parent / "shared"

MODEL = "models/mobilenet_v2_1.0_224_quant.tflite"  # in --shared
LABELS = "models/imagenet_labels.txt"
SCENES = ("cat.bmp", "grace_hopper.bmp", "parrot.jpg")
SCENE_S = 5
MIN_SCORES = (0.2, 0.4)  # the two configs SIGHUP alternates; every scene's top-1 scores above both

RSS_GOAL_MB = 2.0
P99_SLACK = (1.2, 10.0)  # flat: last <= max(first * 1.2, first + 10 ms)
WINDOW = 0.2  # the first and last 20 % of the run after the warm-up

# Bounds on a hang, never measures.
SOCKET_WAIT_S = 120.0
STOP_WAIT_S = 10.0
JOIN_S = 5.0

CSV_FIELDS = (
    "t_s", "wall", "rss_mb", "rss_anon_mb", "fds", "clients_connected", "fds_net", "threads",
    "cpu_pct", "load1",
    "latency_p50_ms", "latency_p99_ms", "inference_p99_ms", "input_fps", "classified_fps",
    "captured", "classified", "dropped", "dropped_overwritten", "dropped_stale", "dropped_bad_frame",
    "stalls", "source_lost", "reconnects", "source_errors", "abandoned_reads",
    "emitted", "socket_clients", "socket_clients_dropped", "socket_messages_dropped", "output_errors",
    "stats_age_s", "stream_up", "hups", "client_connects", "monitor_results",
)
COUNTERS = CSV_FIELDS[CSV_FIELDS.index("captured"):CSV_FIELDS.index("output_errors") + 1]


# -- the daemon --------------------------------------------------------------------------------


def daemon_config(url: str, socket_path: Path, shared: Path, fps: int, threads: int,
                  min_score: float) -> dict:
    return {
        "camera": {"source": url, "width": WIDTH, "height": HEIGHT, "fps": fps},
        "model": {"path": str(shared / MODEL), "labels": str(shared / LABELS), "threads": threads},
        "outputs": {"min_score": min_score, "emit": "every_frame",
                    "journal": {"enabled": False},
                    "socket": {"path": str(socket_path)}},
        "log_level": "info",
    }


def write_atomically(path: Path, text: str) -> None:
    """The daemon may read the config at any moment (SIGHUP): it must never see half a file."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- /proc -------------------------------------------------------------------------------------


def proc_sample(pid: int) -> dict[str, float]:
    """RSS, anonymous RSS (MB), threads, open fds and CPU seconds of `pid`."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key == "VmRSS":
                values["rss_mb"] = int(rest.split()[0]) / 1024
            elif key == "RssAnon":
                values["rss_anon_mb"] = int(rest.split()[0]) / 1024
            elif key == "Threads":
                values["threads"] = int(rest)
    values["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    values["cpu_s"] = process_cpu_s(pid)
    return values


# -- socket clients ----------------------------------------------------------------------------


class Monitor(threading.Thread):
    """One client that stays connected: the latest stats message, and results after a mark."""

    def __init__(self, path: Path, stop: threading.Event) -> None:
        super().__init__(name="soak-monitor", daemon=True)
        self.path = path
        self.stop_event = stop
        self.stats: dict[str, Any] | None = None
        self.stats_at = 0.0
        self.results = 0
        self.connects = 0
        self.connected = False  # a socket of ours is open (one fd in the daemon)
        self.reconnects_after_eof = 0
        self.bad_lines = 0
        self._lock = threading.Lock()
        self._mark: float | None = None
        self.first_after_mark: float | None = None  # monotonic time the first result after it came

    def mark(self, wall: float) -> None:
        """From now on, note when the first result for a frame captured at or after `wall` arrives."""
        with self._lock:
            self._mark, self.first_after_mark = wall, None

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(0.5)
                    sock.connect(str(self.path))
                    self.connects += 1
                    self.connected = True
                    try:
                        self._read(sock)
                    finally:
                        self.connected = False
            except OSError:
                self.stop_event.wait(0.5)

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        while not self.stop_event.is_set():
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                self.reconnects_after_eof += 1
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._message(line)

    def _message(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            return
        if message.get("type") == "stats":
            self.stats, self.stats_at = message, time.monotonic()
        elif message.get("type") == "classification":
            self.results += 1
            with self._lock:
                if (self._mark is not None and self.first_after_mark is None
                        and message["ts"] >= self._mark):
                    self.first_after_mark = time.monotonic()


@dataclass
class ChurnCounts:
    connects: int = 0
    connect_errors: int = 0
    closed_by_daemon: int = 0
    lines: int = 0
    bytes: int = 0


class ChurnClient(threading.Thread):
    """Connects, reads for a random few seconds, disconnects, waits a little, and again."""

    def __init__(self, index: int, path: Path, stop: threading.Event, seed: int) -> None:
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.path = path
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.counts = ChurnCounts()
        self.connected = False  # a socket of ours is open (one fd in the daemon)

    def run(self) -> None:
        counts = self.counts
        while not self.stop_event.is_set():
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(0.5)
                sock.connect(str(self.path))
            except OSError:
                sock.close()
                counts.connect_errors += 1
                self.stop_event.wait(1.0)
                continue
            counts.connects += 1
            self.connected = True
            with sock:
                until = time.monotonic() + self.rng.uniform(1.0, 8.0)
                while time.monotonic() < until and not self.stop_event.is_set():
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        counts.closed_by_daemon += 1
                        break
                    counts.bytes += len(chunk)
                    counts.lines += chunk.count(b"\n")
                self.connected = False
            self.stop_event.wait(self.rng.uniform(0.2, 2.0))


# -- stream restarts ---------------------------------------------------------------------------


@dataclass
class Restart:
    n: int
    killed_s: float
    down_s: float
    restarted_s: float | None = None
    recovered_s: float | None = None  # since the start of the run
    recovery_s: float | None = None  # from the new server listening to the first result
    recovered: bool = False  # within the bound


@dataclass
class Run:
    """Everything measured; the summary is computed from it."""

    args: dict[str, Any]
    started: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    unplanned_server_exits: list[float] = field(default_factory=list)
    hup_times: list[float] = field(default_factory=list)
    hups: int = 0
    clients: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    interrupted: bool = False
    error: str | None = None


# -- the run -----------------------------------------------------------------------------------


def stats_fields(stats: dict[str, Any] | None) -> dict[str, Any]:
    """The CSV's columns from a `stats` message; a field the daemon does not send stays empty."""
    if stats is None:
        return {}

    def section(name: str) -> dict[str, Any]:
        value = stats.get(name)
        return value if isinstance(value, dict) else {}

    frames, source, outputs = section("frames"), section("source"), section("outputs")
    by_reason = frames.get("dropped_by_reason") or {}
    return {
        "latency_p50_ms": section("latency_ms").get("p50"),
        "latency_p99_ms": section("latency_ms").get("p99"),
        "inference_p99_ms": section("inference_ms").get("p99"),
        "input_fps": section("rates").get("input_fps"),
        "classified_fps": section("rates").get("classified_fps"),
        **{key: frames.get(key) for key in ("captured", "classified", "dropped")},
        **{f"dropped_{reason}": count for reason, count in by_reason.items()},
        **{event: source.get(event) for event in ("stalls", "source_lost", "reconnects",
                                                   "source_errors", "abandoned_reads")},
        **{key: outputs.get(key) for key in ("emitted", "socket_clients", "socket_clients_dropped",
                                             "socket_messages_dropped", "output_errors")},
    }


def soak(args: argparse.Namespace, run: Run, out: Path, tmp: Path) -> None:
    stop = threading.Event()
    video = build_scenes(tmp / "scenes.ts", [args.shared / "images" / name for name in SCENES],
                         SCENE_S, args.fps)
    server = StreamServer(video, free_port(), out / "ffmpeg.log")
    socket_path = tmp / "run" / "results.sock"
    config_path = tmp / "edgecam.yaml"
    configs = [yaml.safe_dump(daemon_config(server.url, socket_path, args.shared, args.fps, args.threads,
                                            score), sort_keys=False) for score in MIN_SCORES]
    write_atomically(config_path, configs[0])
    (out / "edgecam-a.yaml").write_text(configs[0])
    (out / "edgecam-b.yaml").write_text(configs[1])
    daemon: Process | None = None
    monitor: Monitor | None = None
    clients: list[ChurnClient] = []
    threads: list[threading.Thread] = []
    try:
        server.start()
        # Its own session: a Ctrl-C in the terminal reaches this script, which stops the daemon
        # itself (and measures that stop), not the daemon directly.
        daemon = Process(edgecam_run(config_path), stderr=out / "daemon.log", new_session=True,
                         die_with_parent=True)
        print(f"daemon pid {daemon.pid}, stream {server.url} (ffmpeg pid {server.pid}), "
              f"socket {socket_path}", flush=True)
        daemon.wait_socket(socket_path, SOCKET_WAIT_S)
        monitor = Monitor(socket_path, stop)
        clients = [ChurnClient(i, socket_path, stop, args.seed + i) for i in range(args.clients)]
        threads = [monitor, *clients]
        for thread in threads:
            thread.start()
        _loop(args, run, daemon, server, monitor, clients, configs, config_path)
    finally:
        stop.set()
        for thread in threads:
            thread.join(JOIN_S)
        for name in ChurnCounts.__dataclass_fields__:
            run.clients[name] = sum(getattr(c.counts, name) for c in clients)
        if monitor is not None:
            run.clients.update(monitor_connects=monitor.connects, monitor_results=monitor.results,
                               monitor_closed_by_daemon=monitor.reconnects_after_eof,
                               monitor_bad_lines=monitor.bad_lines)
        if daemon is not None:
            run.args["daemon_exit"] = {"code": daemon.stop(STOP_WAIT_S), "stop_s": daemon.stop_s,
                                       "killed": daemon.killed}
        server.close()


def _loop(args: argparse.Namespace, run: Run, daemon: Process, server: StreamServer,
          monitor: Monitor, clients: list[ChurnClient], configs: list[str], config_path: Path) -> None:
    t0 = time.monotonic()
    downs = args.down
    next_sample, next_hup, next_kill = 0.0, args.hup_every, args.restart_every
    down_until: float | None = None
    pending: Restart | None = None
    last_cpu: tuple[float, float] | None = None

    def elapsed() -> float:
        return time.monotonic() - t0

    while (now := elapsed()) < args.duration:
        daemon.check_alive()
        if now >= next_sample:
            next_sample += args.interval
            sample, connected = _sample_with_clients(daemon.pid, [monitor, *clients])
            cpu_pct = None
            if last_cpu is not None and now > last_cpu[0]:
                cpu_pct = round(100 * (sample["cpu_s"] - last_cpu[1]) / (now - last_cpu[0]), 1)
            last_cpu = (now, sample["cpu_s"])
            row: dict[str, Any] = {
                "t_s": round(now, 1), "wall": round(time.time(), 1),
                "rss_mb": round(sample["rss_mb"], 2), "rss_anon_mb": round(sample["rss_anon_mb"], 2),
                "fds": int(sample["fds"]), "clients_connected": connected,
                "fds_net": int(sample["fds"]) - connected if connected is not None else None,
                "threads": int(sample["threads"]), "cpu_pct": cpu_pct,
                "load1": round(os.getloadavg()[0], 2),
                **stats_fields(monitor.stats),
                "stats_age_s": round(time.monotonic() - monitor.stats_at, 1) if monitor.stats else None,
                "stream_up": int(server.running()), "hups": run.hups,
                "client_connects": sum(c.counts.connects for c in clients),
                "monitor_results": monitor.results,
            }
            run.samples.append(row)
            if args.verbose:
                print(_progress(row), flush=True)
        if now >= next_hup:
            next_hup += args.hup_every
            run.hups += 1
            run.hup_times.append(round(now, 1))
            write_atomically(config_path, configs[run.hups % 2])
            daemon.signal(signal.SIGHUP)
        if (pending is None and down_until is None and now >= next_kill
                and now + downs[len(run.restarts) % len(downs)] + args.recover_within < args.duration):
            next_kill += args.restart_every
            down = downs[len(run.restarts) % len(downs)]
            pending = Restart(len(run.restarts) + 1, round(now, 1), down)
            run.restarts.append(pending)
            server.kill()
            down_until = now + down
            print(f"[{now:6.0f} s] stream killed (restart {pending.n}, down {down:g} s)", flush=True)
        elif now >= next_kill:
            next_kill += args.restart_every  # the previous outage is not over, or no time is left
        if down_until is not None and now >= down_until:
            assert pending is not None
            down_until = None
            server.start()
            monitor.mark(time.time())
            pending.restarted_s = round(elapsed(), 2)
        if pending is not None and pending.restarted_s is not None:
            seen = monitor.first_after_mark
            if seen is not None:
                pending.recovered_s = round(seen - t0, 2)
                pending.recovery_s = round(pending.recovered_s - pending.restarted_s, 2)
                pending.recovered = pending.recovery_s <= args.recover_within
                print(f"[{now:6.0f} s] restart {pending.n}: results again {pending.recovery_s:.1f} s "
                      f"after the server listened", flush=True)
                pending = None
            elif now - pending.restarted_s > args.recover_within:
                print(f"[{now:6.0f} s] restart {pending.n}: NOT recovered within "
                      f"{args.recover_within:g} s", flush=True)
                pending = None  # stays recovered=False
        if down_until is None and not server.running():
            # ffmpeg's listener serves one connection: it exits when the daemon drops it (a
            # stall, a reconnect). Counted and reported; a new server is what a camera would be.
            run.unplanned_server_exits.append(round(now, 1))
            print(f"[{now:6.0f} s] the stream server exited on its own; started again", flush=True)
            server.close()
            server.start()
        time.sleep(0.1)
    run.duration_s = round(elapsed(), 1)


def _sample_with_clients(pid: int, clients: list[Any]) -> tuple[dict[str, float], int | None]:
    """A /proc sample and how many of our clients were connected around it (None if that changed:
    each connected client is one fd in the daemon, so fds less clients is the daemon's own)."""
    for _ in range(3):
        before = sum(c.connected for c in clients)
        sample = proc_sample(pid)
        if sum(c.connected for c in clients) == before:
            return sample, before
    return sample, None


def _progress(row: dict[str, Any]) -> str:
    p99 = row.get("latency_p99_ms")
    return (f"[{row['t_s']:6.0f} s] rss {row['rss_mb']:.1f} MB, fds {row['fds']}, "
            f"threads {row['threads']}, p99 {p99 if p99 is not None else '-'} ms, "
            f"{row.get('classified_fps', '-')} fps, dropped {row.get('dropped', '-')}, "
            f"cpu {row['cpu_pct'] if row['cpu_pct'] is not None else '-'} %, load {row['load1']}")


# -- the figures -------------------------------------------------------------------------------


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """Drift between the first and last 20 % after the warm-up, restarts, drops, goals."""
    end = run.samples[-1]["t_s"] if run.samples else 0.0
    warm = min(args.warmup, end / 2)
    span = end - warm
    first_end, last_start = warm + WINDOW * span, end - WINDOW * span
    after = [row for row in run.samples if row["t_s"] >= warm]
    first = [row for row in after if row["t_s"] <= first_end]
    last = [row for row in after if row["t_s"] >= last_start]
    drift: dict[str, Any] = {}
    for key in ("rss_mb", "rss_anon_mb", "fds", "fds_net", "threads", "latency_p99_ms", "latency_p50_ms",
                "cpu_pct", "load1"):
        a, b = _median(first, key), _median(last, key)
        values = [row[key] for row in after if row.get(key) is not None]
        drift[key] = {"first": a, "last": b,
                      "change": None if a is None or b is None else round(b - a, 2),
                      "min": min(values) if values else None, "max": max(values) if values else None}
    start_row = after[0] if after else {}
    end_row = run.samples[-1] if run.samples else {}
    counters = {key: (end_row.get(key) or 0) - (start_row.get(key) or 0)
                for key in COUNTERS}
    totals = {key: end_row.get(key) for key in COUNTERS}
    recovered = sum(r.recovered for r in run.restarts)
    times = [r.recovery_s for r in run.restarts if r.recovery_s is not None]

    def check(metric: str, ok: bool | None) -> dict[str, Any]:
        return {"metric": metric, "ok": ok}

    # fds less our connected clients' sockets where known (older CSVs: the raw count)
    fds_key = "fds_net" if drift["fds_net"]["first"] is not None else "fds"
    rss, fds, thr, p99 = (drift[k] for k in ("rss_mb", fds_key, "threads", "latency_p99_ms"))
    p99_limit = None if p99["first"] is None else max(p99["first"] * P99_SLACK[0],
                                                       p99["first"] + P99_SLACK[1])
    goals = [
        check(f"RSS growth < {RSS_GOAL_MB:g} MB",
              None if rss["change"] is None else rss["change"] < RSS_GOAL_MB),
        check("no growth in fds" + (" (less the clients' sockets)" if fds_key == "fds_net" else ""),
              None if fds["change"] is None else fds["change"] <= 0),
        check("no growth in threads", None if thr["change"] is None else thr["change"] <= 0),
        check("latency p99 flat (last <= max(first x 1.2, first + 10 ms))",
              None if p99_limit is None else p99["last"] <= p99_limit),
        check("every stream restart recovered",
              recovered == len(run.restarts) if run.restarts else None),
    ]
    return {
        "started": run.started, "duration_s": run.duration_s, "interrupted": run.interrupted,
        "error": run.error, "args": run.args, "samples": len(run.samples),
        "windows_s": {"warmup": round(warm, 1), "first": [round(warm, 1), round(first_end, 1)],
                      "last": [round(last_start, 1), round(end, 1)],
                      "samples": [len(first), len(last)]},
        "drift": drift,
        "restarts": {"total": len(run.restarts), "recovered": recovered,
                     "each": [asdict(r) for r in run.restarts],
                     "recovery_s": {"min": min(times), "median": statistics.median(times),
                                    "max": max(times)} if times else None,
                     "unplanned_server_exits": run.unplanned_server_exits},
        "hups": run.hups,
        "clients": run.clients,
        "counters_after_warmup": counters, "counters_total": totals,
        "goals": goals,
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def report(summary: dict[str, Any]) -> str:
    w = summary["windows_s"]
    lines = ["PARTIAL figures: the run was interrupted"] if summary["interrupted"] else []
    lines += [f"drift: medians of the first 20 % ({w['first'][0]:.0f}-{w['first'][1]:.0f} s, "
             f"{w['samples'][0]} samples) and the last 20 % ({w['last'][0]:.0f}-{w['last'][1]:.0f} s, "
             f"{w['samples'][1]} samples), after a {w['warmup']:.0f} s warm-up",
             f"  {'':18} {'first':>9} {'last':>9} {'change':>9}   range after warm-up"]
    for key, name, digits in (("rss_mb", "RSS (MB)", 2), ("rss_anon_mb", "RssAnon (MB)", 2),
                              ("fds", "open fds", 1), ("fds_net", "  less clients'", 1),
                              ("threads", "threads", 1),
                              ("latency_p99_ms", "latency p99 (ms)", 1),
                              ("latency_p50_ms", "latency p50 (ms)", 1),
                              ("cpu_pct", "daemon CPU (%)", 1), ("load1", "load (1 min)", 2)):
        d = summary["drift"][key]
        if d["min"] is None and key == "fds_net":
            continue  # a CSV from before that column
        change = d["change"]
        sign = "+" if change is not None and change >= 0 else ""
        lines.append(f"  {name:18} {_fmt(d['first'], digits):>9} {_fmt(d['last'], digits):>9} "
                     f"{sign + _fmt(change, digits):>9}   {_fmt(d['min'], digits)}..{_fmt(d['max'], digits)}")
    r = summary["restarts"]
    times = r["recovery_s"]
    lines.append(f"stream restarts recovered {r['recovered']}/{r['total']}"
                 + (f" (results again {times['min']:.1f}-{times['max']:.1f} s after the server "
                    f"listened, median {times['median']:.1f} s)" if times else "")
                 + f"; unplanned server exits {len(r['unplanned_server_exits'])}")
    c, t = summary["counters_after_warmup"], summary["counters_total"]
    lines.append(f"SIGHUPs {summary['hups']}; frames after warm-up: captured {c['captured']}, "
                 f"classified {c['classified']}, dropped {c['dropped']} (overwritten "
                 f"{c['dropped_overwritten']}, stale {c['dropped_stale']}, bad {c['dropped_bad_frame']})")
    lines.append(f"totals: source lost {t['source_lost']}, stalls {t['stalls']}, reconnects "
                 f"{t['reconnects']}, source errors {t['source_errors']}, abandoned reads "
                 f"{t['abandoned_reads']}; socket clients dropped {t['socket_clients_dropped']}, "
                 f"socket messages dropped {t['socket_messages_dropped']}, output errors "
                 f"{t['output_errors']}")
    k = summary["clients"]
    if k:
        lines.append(f"socket clients: {k['connects']} connections by {summary['args']['clients']} "
                     f"churning clients ({k['lines']} lines read), {k['connect_errors']} refused, "
                     f"{k['closed_by_daemon']} closed by the daemon; the monitor connected "
                     f"{k['monitor_connects']} time(s), read {k['monitor_results']} results, "
                     f"{k['monitor_bad_lines']} unparsable lines")
    exit_info = summary["args"].get("daemon_exit")
    if exit_info:
        lines.append(f"daemon stop: exit code {exit_info['code']}"
                     + (f" after {exit_info['stop_s']:.2f} s" if exit_info["stop_s"] is not None else "")
                     + (" (SIGKILLed: it did not stop)" if exit_info["killed"] else ""))
    lines.append("goals:")
    for goal in summary["goals"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[goal["ok"]]
        lines.append(f"  {verdict:6} {goal['metric']}")
    return "\n".join(lines)


def write_csvs(run: Run, out: Path) -> None:
    with (out / "soak.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(run.samples)
    with (out / "soak-restarts.csv").open("w", newline="") as f:
        names = list(Restart.__dataclass_fields__)
        writer = csv.DictWriter(f, names)
        writer.writeheader()
        writer.writerows(asdict(r) for r in run.restarts)


def plot(run: Run, summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [row["t_s"] / 60 for row in run.samples]
    fig, (ax_rss, ax_lat) = plt.subplots(2, 1, figsize=(9, 6.0), sharex=True,
                                         gridspec_kw={"hspace": 0.22})
    ax_rss.plot(minutes, [row["rss_mb"] for row in run.samples], color="tab:blue", lw=1.4,
                label="RSS (VmRSS)")
    p99 = [(m, row.get("latency_p99_ms")) for m, row in zip(minutes, run.samples, strict=True)
           if row.get("latency_p99_ms") is not None]
    p50 = [(m, row.get("latency_p50_ms")) for m, row in zip(minutes, run.samples, strict=True)
           if row.get("latency_p50_ms") is not None]
    if p99:
        ax_lat.plot(*zip(*p99, strict=True), color="tab:red", lw=1.4, label="latency p99")
    if p50:
        ax_lat.plot(*zip(*p50, strict=True), color="tab:gray", lw=1.0, ls="--", label="latency p50")
    w = summary["windows_s"]
    for ax in (ax_rss, ax_lat):
        ax.axvspan(0, w["warmup"] / 60, color="0.9", lw=0)
        ax.axvspan(w["first"][0] / 60, w["first"][1] / 60, color="tab:green", alpha=0.08, lw=0)
        ax.axvspan(w["last"][0] / 60, w["last"][1] / 60, color="tab:green", alpha=0.08, lw=0)
        for restart in run.restarts:
            end = restart.recovered_s or restart.restarted_s or restart.killed_s
            ax.axvspan(restart.killed_s / 60, end / 60, color="tab:orange", alpha=0.35, lw=0)
            ax.axvline(restart.killed_s / 60, color="tab:orange", lw=1.0)
        for t in run.unplanned_server_exits:
            ax.axvline(t / 60, color="black", lw=0.8, ls=":")
        ax.grid(True, color="0.85", lw=0.6)
        ax.set_xlim(0, max(minutes[-1] if minutes else 1, 1e-3))
    rss = summary["drift"]["rss_mb"]
    for key, ax in (("rss_mb", ax_rss), ("latency_p99_ms", ax_lat)):
        d = summary["drift"][key]
        for (a, b), value in ((w["first"], d["first"]), (w["last"], d["last"])):
            if value is not None:
                ax.hlines(value, a / 60, b / 60, color="tab:green", lw=2.0)
    if rss["min"] is not None:  # a band at least 4 MB high, so a flat line reads as flat
        mid = (rss["min"] + rss["max"]) / 2
        half = max((rss["max"] - rss["min"]) / 2 * 1.3, 2.0)
        ax_rss.set_ylim(mid - half, mid + half)
    ax_lat.set_ylim(bottom=0)
    if run.hup_times:
        ax_lat.plot([t / 60 for t in run.hup_times], [0] * len(run.hup_times), ls="none",
                    marker="|", ms=7, color="tab:purple", clip_on=False, label="SIGHUP")
    load = [(m, row["load1"]) for m, row in zip(minutes, run.samples, strict=True)]
    ax_load = ax_lat.twinx()
    ax_load.plot(*zip(*load, strict=True), color="tab:olive", lw=0.8, alpha=0.7)
    ax_load.set_ylim(0, max(max(v for _, v in load) * 1.1, 1.0))
    ax_load.set_ylabel("machine load, 1 min (olive)", fontsize=8, color="tab:olive")
    ax_load.tick_params(axis="y", labelsize=7, colors="tab:olive")
    ax_rss.set_ylabel("RSS (MB)")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_xlabel("minutes")
    from matplotlib.patches import Patch

    handles = [Patch(color="tab:orange", alpha=0.5, label="stream killed → results again"),
               Patch(color="0.9", label="warm-up"),
               Patch(color="tab:green", alpha=0.2, label="first/last 20 % (median: green line)")]
    # Legends above their panels, so they never hide a curve.
    above = {"loc": "lower left", "bbox_to_anchor": (0.0, 1.0), "fontsize": 7.5, "frameon": False,
             "borderaxespad": 0.2, "handlelength": 1.6}
    ax_rss.legend(handles=[*ax_rss.get_legend_handles_labels()[0], *handles], ncol=4, **above)
    ax_lat.legend(ncol=3, **above)
    fig.suptitle(title, fontsize=9, y=0.98)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _title(summary: dict[str, Any]) -> str:
    d, r = summary["drift"], summary["restarts"]

    def span(key: str) -> str:
        """first → last, whole numbers without a decimal point."""
        return " → ".join(_fmt(d[key][end]).removesuffix(".0") for end in ("first", "last"))

    change = d["rss_mb"]["change"]
    fds = (f"fds less clients' {span('fds_net')}" if d.get("fds_net", {}).get("first") is not None
           else f"fds {span('fds')}")
    when = summary["started"][:16].replace("T", " ")
    return (f"edgecam soak {when}, {summary['duration_s'] / 60:.0f} min: "
            f"RSS {'-' if change is None else f'{change:+.2f}'} MB, {fds}, "
            f"threads {span('threads')}, p99 {span('latency_p99_ms')} ms, "
            f"restarts recovered {r['recovered']}/{r['total']}")


# -- main --------------------------------------------------------------------------------------


def _downs(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("seconds > 0, comma-separated")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--out", type=Path, help="output folder (default: a new one under /tmp)")
    parser.add_argument("--shared", type=Path, default=SHARED,
                        help=f"the shared test data: models/ and images/ (default {SHARED})")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples (5)")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds left out of the drift (60)")
    parser.add_argument("--fps", type=int, default=25, help="stream frame rate, 15..30 is realistic (25)")
    parser.add_argument("--threads", type=int, default=1,
                        help="model.threads (1: leaves a core to the stream and the clients)")
    parser.add_argument("--clients", type=int, default=5, help="churning socket clients (5)")
    parser.add_argument("--hup-every", type=float, default=30.0, help="seconds between SIGHUPs (30)")
    parser.add_argument("--restart-every", type=float, default=120.0,
                        help="seconds between stream kills (120)")
    parser.add_argument("--down", type=_downs, default=[5.0, 20.0],
                        help="stream outage(s) in seconds, cycled (5,20)")
    parser.add_argument("--recover-within", type=float, default=30.0,
                        help="a restart is recovered if results flow again this soon (30)")
    parser.add_argument("--seed", type=int, default=1, help="clients' random seed")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every sample")
    return parser.parse_args(argv)


def _ffmpeg_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, timeout=10,
                              check=False)
        return done.stdout.split("\n", 1)[0].removeprefix("ffmpeg version ").split(" ")[0]
    return "?"


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path, what in ((args.shared / MODEL, "the model"), (args.shared / "images", "the photos")):
        if not path.exists():
            print(f"soak: {what} not found at {path}", file=sys.stderr)
            return 2
    if not os.access(FFMPEG, os.X_OK):
        print(f"soak: ffmpeg not found ({FFMPEG})", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("soak: matplotlib is missing: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return 2
    started = datetime.datetime.now().astimezone()
    out = args.out or Path(tempfile.mkdtemp(prefix=f"edgecam-soak-{started:%Y%m%d-%H%M%S}-"))
    out.mkdir(parents=True, exist_ok=True)
    # Ctrl-C even when started in the background by a shell (which leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    run = Run(args={k: (v if not isinstance(v, Path) else str(v)) for k, v in vars(args).items()},
              started=started.isoformat(timespec="seconds"))
    info = {**describe(), "ffmpeg": _ffmpeg_version()}
    run.args.update(machine_info=info, root=str(ROOT),
                    command=" ".join([".venv/bin/python", "-m", "bench.soak", *(argv or sys.argv[1:])]),
                    # glibc allocator tuning changes the RSS figures: say if any was set
                    malloc_env={k: v for k, v in os.environ.items() if k.startswith("MALLOC_")})
    print(f"soak: {args.duration:g} s, output in {out}")
    for key, value in info.items():
        print(f"  {key}: {value}")
    print(flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="edgecam-soak-"))
    status = 0
    try:
        soak(args, run, out, tmp)
    except KeyboardInterrupt:
        run.interrupted, status = True, 2
        print("soak: interrupted; everything it started is stopped", file=sys.stderr)
    except (RuntimeError, OSError, WaitTimeout) as exc:
        run.error, status = str(exc), 2
        print(f"soak: {exc}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(run.samples) < 4:
        print("soak: too few samples for figures", file=sys.stderr)
        return status or 2
    summary = summarize(run, args)
    write_csvs(run, out)
    (out / "soak-summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot(run, summary, out / "soak.png", _title(summary))
    print(report(summary))
    print(f"files: {out}/soak.csv, soak-restarts.csv, soak.png, soak-summary.json, daemon.log")
    if status == 0 and any(goal["ok"] is False for goal in summary["goals"]):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())

