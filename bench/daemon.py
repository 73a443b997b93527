"""The daemon as bench.pipeline, bench.zones and bench.web measure it: on the photos, read through
its own `stats` socket messages, with its CPU sampled as each arrives.

A measured window starts at the first stats message after DAEMON_WARMUP_S of uptime (stats come
every 5 s, so start-up and the first frames are never measured) and ends at the first one at
least `seconds` (x 0.9) later. Rates come from the daemon's own counters and timestamps in the
two messages; CPU from bench/cpu.py's samples of the daemon process at their arrival. The
classification lines in between are counted (a cross-check) and their `latency_ms` kept.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.cpu import CpuSample
from bench.launcher import ROOT, Process, edgecam_from, edgecam_run

SHARED = ROOT.parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
DEFAULT_IMAGES = SHARED / "images"
DEFAULT_LABELS = DEFAULT_MODEL.parent / "imagenet_labels.txt"
DAEMON_WARMUP_S = 3.0  # the daemon's uptime before its measured window may start
START_TIMEOUT_S = 60.0
STATS_TIMEOUT_S = 30.0  # beyond the expected arrival of a stats message
_LATENCY = re.compile(rb'"latency_ms": ([0-9.]+)')


def daemon_config(model: Path, labels: Path, images: Path, threads: int, paced_fps: float,
                  sock: Path) -> dict[str, Any]:
    """The photos as the camera (read on demand, or paced at `paced_fps`), every frame emitted."""
    camera: dict[str, Any] = {"source": str(images), "realtime": bool(paced_fps)}
    if paced_fps:
        camera["fps"] = paced_fps
    return {
        "camera": camera,
        "model": {"path": str(model), "labels": str(labels), "threads": threads},
        "outputs": {"min_score": 0.0, "emit": "every_frame", "journal": {"enabled": False},
                    "socket": {"enabled": True, "path": str(sock)}},
        "log_level": "warning",
    }


@dataclass(frozen=True)
class Window:
    """What the daemon said at both ends of a measured window, and its CPU in between."""

    first: dict[str, Any]
    last: dict[str, Any]
    cpu_s: float
    precise: bool  # CPU from the threads' schedstat (else whole clock ticks)
    classification_lines: int
    latencies_ms: list[float]

    @property
    def wall_s(self) -> float:
        return float(self.last["ts"] - self.first["ts"])

    def delta(self, *keys: str) -> int:
        """How much a counter of the stats message grew, named by its keys ("frames", "classified")."""
        first: Any = self.first
        last: Any = self.last
        for key in keys:
            first, last = first[key], last[key]
        return int(last) - int(first)


class DaemonRun:
    """One `python -m edgecam run` on `config` in a temporary folder, stopped (by its pid) on exit;
    with `tree`, the daemon of that source tree (launcher.edgecam_from), else this checkout's."""

    def __init__(self, config: dict[str, Any], workdir: Path, tree: Path | None = None) -> None:
        self.sock_path = Path(config["outputs"]["socket"]["path"])
        self.config_path = workdir / "edgecam.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "daemon.log"
        self.argv = edgecam_from(tree, self.config_path) if tree else edgecam_run(self.config_path)
        self.process: Process | None = None
        self.conn: socket.socket | None = None
        self._buffer = b""
        self.classification_lines = 0
        self.latencies_ms: list[float] = []  # every classification's, in the order read

    def __enter__(self) -> DaemonRun:
        self.process = Process(self.argv, stderr=self.log_path)
        try:
            self.process.wait_socket(self.sock_path, START_TIMEOUT_S)
            self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.conn.connect(str(self.sock_path))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.process is not None:
            self.process.stop()

    def _failed(self, what: str) -> RuntimeError:
        return RuntimeError(f"daemon: {what}\n{self.log_path.read_text(errors='replace').strip()}")

    def next_stats(self, timeout: float) -> tuple[dict[str, Any], CpuSample]:
        """The daemon's next `stats` message and its CPU time when it arrived."""
        assert self.conn is not None and self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                if line.startswith(b'{"type": "classification"'):
                    self.classification_lines += 1
                    latency = _LATENCY.search(line)
                    if latency:
                        self.latencies_ms.append(float(latency[1]))
                    continue
                message = json.loads(line)
                if message.get("type") == "stats":
                    return message, CpuSample.of(self.process.pid)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failed(f"no stats message within {timeout:.0f} s")
            self.conn.settimeout(remaining)
            try:
                data = self.conn.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                raise self._failed("closed the socket")
            self._buffer += data

    def window(self, seconds: float, on_first: Callable[[], None] | None = None) -> Window:
        """The measured window (see the module's docstring); `on_first` runs at the first stats
        message, before the warm-up ends (a viewer connecting, say)."""
        first, cpu0 = self.next_stats(START_TIMEOUT_S)
        if on_first is not None:
            on_first()
        while first.get("uptime_s", DAEMON_WARMUP_S) < DAEMON_WARMUP_S:
            first, cpu0 = self.next_stats(START_TIMEOUT_S)
        lines0, latencies0 = self.classification_lines, len(self.latencies_ms)
        last, cpu1 = first, cpu0
        while last["ts"] - first["ts"] < seconds * 0.9:
            last, cpu1 = self.next_stats(seconds + STATS_TIMEOUT_S)
        return Window(first, last, cpu1 - cpu0, cpu1.precise_since(cpu0),
                      self.classification_lines - lines0, self.latencies_ms[latencies0:])


def measure_window(config: dict[str, Any], workdir: Path, seconds: float,
                   on_first: Callable[[], None] | None = None, tree: Path | None = None) -> Window:
    """One daemon on `config` (of the source tree `tree`, if given), started, measured over one
    window, and stopped."""
    with DaemonRun(config, workdir, tree) as run:
        return run.window(seconds, on_first)

