"""Status page benchmark: does a viewer of the page cost the pipeline anything, and what CPU?

Run from the repository root:

    .venv/bin/python -m bench.web [--camera-fps 30 0] [--preview-fps 5] [--threads N]
                                  [--seconds S] [--rounds R]

Each run is the real daemon (`python -m edgecam run`, as bench/pipeline.py runs it: the photos
folder, `emit: every_frame`, `min_score: 0`, the socket on) with the page on (`web.enabled`,
127.0.0.1, `preview_fps` 5, `preview_width` 640, camera 640x480), in one of three variants:

* ``none``: nobody watches (the baseline: frames are handed to the page's slot, never encoded);
* ``stalled``: one viewer connects to /preview.mjpeg and never reads (a 4 KiB receive buffer):
  its connection fills, the page's frames for it are dropped (counted);
* ``viewer``: one viewer reads /preview.mjpeg as fast as it comes (at `--preview-fps`), in a
  thread of this process (its own CPU is not the daemon's).

Two cameras (`--camera-fps`): 30, the photos paced at 30 fps (`camera.realtime: true`), where
the model keeps up: the figures are the reaction latency (each result's `latency_ms`, capture
to result: p50 and p99 over the window) and the daemon's CPU (all its threads, from
/proc/PID/task/*/schedstat), whose difference to ``none`` is what a viewer costs; and 0, the
photos read as fast as the model takes them (`realtime: false`), where the figure is the
classified rate, model-bound, which a viewer's CPU would lower. The window starts after
DAEMON_WARMUP_S of uptime and a first stats message, and lasts `--seconds`.

Shared, noisy machine: the variants run one after the other in an order rotated every round,
and every ratio is against ``none`` of the same round and camera; the medians are reported.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from bench.daemon import (
    DEFAULT_IMAGES,
    DEFAULT_LABELS,
    DEFAULT_MODEL,
    START_TIMEOUT_S,
    daemon_config,
    measure_window,
)
from bench.launcher import free_port
from bench.machine import print_header

VARIANTS = ("none", "stalled", "viewer")


class Watcher:
    """One /preview.mjpeg connection: reading everything in a thread, or never reading at all."""

    def __init__(self, port: int, reads: bool) -> None:
        self.sock = socket.socket()
        if not reads:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(START_TIMEOUT_S)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"GET /preview.mjpeg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.received = 0
        self._thread = threading.Thread(target=self._read, daemon=True) if reads else None
        if self._thread is not None:
            self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(1 << 16):
                self.received += len(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        if self._thread is not None:
            self._thread.join(5)


def measure(variant: str, camera_fps: float, preview_fps: float, threads: int,
            seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-web-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        config = daemon_config(DEFAULT_MODEL, DEFAULT_LABELS, DEFAULT_IMAGES, threads, camera_fps,
                               workdir / "results.sock")
        config["camera"].update({"width": 640, "height": 480})
        config["web"] = {"enabled": True, "listen": f"127.0.0.1:{port}", "preview_fps": preview_fps,
                         "preview_width": 640}
        watchers: list[Watcher] = []

        def watch() -> None:  # at the first stats message: the daemon is up
            if variant != "none":
                watchers.append(Watcher(port, reads=variant == "viewer"))
        try:
            window = measure_window(config, workdir, seconds, on_first=watch)
        finally:
            for watcher in watchers:
                watcher.close()
    wall = window.wall_s
    latencies = np.array(window.latencies_ms)
    first, last = window.first, window.last
    outputs = last["outputs"]
    return {"fps": (last["frames"]["classified"] - first["frames"]["classified"]) / wall,
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "cpu_pct": 100 * window.cpu_s / wall,
            "encoded_per_s": (outputs["web_preview_encoded"]
                              - first["outputs"]["web_preview_encoded"]) / wall,
            "preview_dropped": outputs["web_preview_dropped"],
            "received_kb_s": sum(w.received for w in watchers) / 1000 / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.splitlines()[0])
    parser.add_argument("--camera-fps", type=float, nargs="+", default=[30.0, 0.0])
    parser.add_argument("--preview-fps", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print_header("edgecam status page benchmark", __file__, argv)
    print(flush=True)
    for camera_fps in args.camera_fps:
        camera = f"camera {camera_fps:g} fps" if camera_fps else "camera as fast as the model"
        rows: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for rnd in range(args.rounds):
            order = VARIANTS[rnd % 3:] + VARIANTS[:rnd % 3]
            measured = {v: measure(v, camera_fps, args.preview_fps, args.threads, args.seconds)
                        for v in order}
            base = measured["none"]
            for v in VARIANTS:
                row: dict[str, Any] = dict(measured[v])
                row["fps_ratio"] = row["fps"] / base["fps"]
                row["p50_ratio"] = row["p50_ms"] / base["p50_ms"]
                row["p99_ratio"] = row["p99_ms"] / base["p99_ms"]
                row["cpu_extra_pct"] = row["cpu_pct"] - base["cpu_pct"]
                rows[v].append(row)
                print(f"{camera}, round {rnd + 1}, {v:>7}: {row['fps']:6.1f} classified/s, latency "
                      f"p50 {row['p50_ms']:5.1f} p99 {row['p99_ms']:6.1f} ms, CPU {row['cpu_pct']:5.1f} %, "
                      f"{row['encoded_per_s']:4.1f} previews/s, {row['preview_dropped']} dropped, "
                      f"{row['received_kb_s']:6.0f} kB/s read", flush=True)
        print(f"\n{camera} (medians over {args.rounds} rounds; ratios against `none` of the same round)\n")
        print("| viewer | classified/s | vs none | latency p50 ms | vs none | p99 ms | vs none | "
              "daemon CPU % | minus none | previews encoded/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for v in VARIANTS:
            med = {key: statistics.median(r[key] for r in rows[v]) for key in rows[v][0]}
            print(f"| {v} | {med['fps']:.1f} | {med['fps_ratio']:.2f} | {med['p50_ms']:.1f} | "
                  f"{med['p50_ratio']:.2f} | {med['p99_ms']:.1f} | {med['p99_ratio']:.2f} | "
                  f"{med['cpu_pct']:.1f} | {med['cpu_extra_pct']:+.1f} | {med['encoded_per_s']:.1f} |")
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
