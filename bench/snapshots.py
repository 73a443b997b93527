"""Snapshot retention under a long run of frequent label changes, across restarts and a lowered limit.

Run from the repository root, with ../shared beside it (the photos and the model):

    .venv/bin/python -m bench.snapshots [--duration 600] [--fps 8] [--restart-every 150] [--out DIR]

The real daemon (`python -m edgecam run -c CONFIG`) reads the photos folder at --fps with
`emit: on_change` and no heartbeat: each photo's label leads decisively, so every frame is a
label change, a snapshot to write, and soon one to remove again. The daemon is stopped
(SIGTERM) and started again every --restart-every seconds. The first half of the run keeps at
most 20 snapshots (max_mb 100: the count binds), the second half at most 1 MB (max_files
1000: the size binds); so one restart lowers the size limit under what is on disk, and the
others start on what the run before left.

While it runs:

* a client reads every message from the daemon's socket; for each that names a snapshot it
  checks at once that the JPEG and its sidecar are there, and that the sidecar parses and holds
  that very message;
* every 0.1 s the folder is counted as a user would: the `*.jpg` and `*.json` one level down
  (atomic_write's hidden temp files aside), as snapshots (a JPEG and its sidecar are one) and
  bytes of both. From each run's first snapshot message on (the writer has read and trimmed the
  folder by then) the count and the bytes must stay within that run's limits.

It prints, per half, the most seen against the limits, the messages checked, the daemons'
counters (from each run's last stats message) and the warnings in their logs; it writes
snapshots-summary.json and daemon-N.log to --out (default: a new folder under /tmp). Exit
status 0 when retention held and every snapshot named was there, 1 when not, 2 when the run
could not be done. Every process it starts is stopped by pid, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.launcher import ROOT, Process, WaitTimeout, edgecam_run

SHARED = ROOT.parent / "shared"
LIMITS = ({"max_files": 20, "max_mb": 100.0}, {"max_files": 1000, "max_mb": 1.0})  # first half, second
SAMPLE_S = 0.1
COUNTERS = ("emitted", "snapshots_saved", "snapshots_dropped", "snapshots_failed", "queue_dropped")


@dataclass
class Half:
    """What was seen while one set of limits was in force."""

    max_files: int
    max_mb: float
    most_files: int = 0
    most_bytes: int = 0
    samples: int = 0
    over: list[str] = field(default_factory=list)  # samples beyond a limit


@dataclass
class Checked:
    results: int = 0
    with_snapshot: int = 0
    missing: list[str] = field(default_factory=list)  # named, but not there (or not its message)


def daemon_config(out: Path, fps: float, limits: dict[str, Any]) -> dict[str, Any]:
    return {"camera": {"source": str(SHARED / "images"), "fps": fps},
            "model": {"path": str(SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"),
                      "labels": str(SHARED / "models" / "imagenet_labels.txt"), "threads": 1},
            "outputs": {"emit": "on_change", "heartbeat_s": 0, "journal": {"enabled": False},
                        "socket": {"path": str(out / "run" / "results.sock")}},
            "snapshots": {"enabled": True, "dir": str(out / "snapshots"), **limits}}


def count_folder(folder: Path) -> tuple[int, int]:
    """(snapshots, bytes) in `folder`'s subfolders; a file removed while counting is not counted."""
    stems, total = set(), 0
    try:
        subfolders = [entry for entry in os.scandir(folder) if entry.is_dir()]
    except FileNotFoundError:
        return 0, 0
    for subfolder in subfolders:
        for entry in os.scandir(subfolder.path):
            if entry.name.startswith(".") or not entry.name.endswith((".jpg", ".json")):
                continue
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                continue
            stems.add((subfolder.name, entry.name.rsplit(".", 1)[0]))
    return len(stems), total


def check_message(message: dict[str, Any], checked: Checked) -> None:
    checked.results += 1
    if "snapshot" not in message:
        return
    checked.with_snapshot += 1
    jpeg = Path(message["snapshot"])
    try:
        sidecar = json.loads(jpeg.with_suffix(".json").read_text())
        ok = jpeg.is_file() and sidecar["message"] == message
    except (OSError, ValueError, KeyError):
        ok = False
    if not ok:
        checked.missing.append(str(jpeg))


class Monitor(threading.Thread):
    """Reads every message of one daemon; checks snapshots; keeps the last stats message."""

    def __init__(self, path: Path, checked: Checked) -> None:
        super().__init__(name="monitor", daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.checked = checked
        self.first_snapshot = threading.Event()
        self.stats: dict[str, Any] = {}

    def run(self) -> None:
        buffer = b""
        with self.sock:
            while chunk := self.sock.recv(65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    if message["type"] == "stats":
                        self.stats = message["outputs"]
                    elif message["type"] == "classification":
                        check_message(message, self.checked)
                        if "snapshot" in message:
                            self.first_snapshot.set()


def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    halves = [Half(limits["max_files"], limits["max_mb"]) for limits in LIMITS]
    checked, counters, exits, warnings = Checked(), dict.fromkeys(COUNTERS, 0), [], []
    folder = out / "snapshots"
    started = time.monotonic()
    number = 0
    while (elapsed := time.monotonic() - started) < args.duration:
        half = halves[0] if elapsed < args.duration / 2 else halves[1]
        config = out / f"daemon-{number}.yaml"
        limits = {"max_files": half.max_files, "max_mb": half.max_mb}
        config.write_text(yaml.safe_dump(daemon_config(out, args.fps, limits)))
        daemon = Process(edgecam_run(config), stderr=out / f"daemon-{number}.log")
        try:
            daemon.wait_socket(out / "run" / "results.sock")
            monitor = Monitor(out / "run" / "results.sock", checked)
            monitor.start()
            if not monitor.first_snapshot.wait(60):
                raise RuntimeError("no snapshot within 60 s")
            until = min(started + args.duration, time.monotonic() + args.restart_every)
            while time.monotonic() < until:
                files, size = count_folder(folder)
                half.samples += 1
                half.most_files, half.most_bytes = max(half.most_files, files), max(half.most_bytes, size)
                if files > half.max_files or size > half.max_mb * 1e6:
                    half.over.append(f"{time.monotonic() - started:.1f} s: {files} snapshots, {size} bytes")
                daemon.check_alive()
                time.sleep(SAMPLE_S)
        finally:
            exits.append(daemon.stop(15))
        monitor.join(5)
        for key in COUNTERS:
            counters[key] += monitor.stats.get(key, 0)
        log = (out / f"daemon-{number}.log").read_text(errors="replace")
        warnings += [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line
                     or "Traceback" in line]
        number += 1
    final = count_folder(folder)
    return {"duration_s": args.duration, "fps": args.fps, "restart_every_s": args.restart_every,
            "runs": number, "exit_codes": exits, "halves": [asdict(half) for half in halves],
            "checked": asdict(checked), "counters_at_last_stats": counters, "warnings": warnings,
            "left_on_disk": {"snapshots": final[0], "bytes": final[1]}}


def report(summary: dict[str, Any]) -> bool:
    held = True
    for name, half in zip(("first half", "second half"), summary["halves"], strict=True):
        print(f"{name}: limits {half['max_files']} snapshots, {half['max_mb']:g} MB; most seen "
              f"{half['most_files']} snapshots, {half['most_bytes'] / 1e6:.3f} MB "
              f"({half['samples']} samples, {len(half['over'])} over a limit)")
        held = held and not half["over"]
    checked = summary["checked"]
    print(f"messages: {checked['results']} results, {checked['with_snapshot']} naming a snapshot, "
          f"{len(checked['missing'])} of those not there when read")
    print(f"daemons ({summary['runs']} runs, exit codes {summary['exit_codes']}), summed at each run's "
          f"last stats message: {summary['counters_at_last_stats']}")
    print(f"left on disk: {summary['left_on_disk']}; warnings and errors in the logs: "
          f"{len(summary['warnings'])}")
    for line in summary["warnings"][:10]:
        print(f"  {line}")
    return held and not checked["missing"] and not summary["warnings"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snapshots", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--fps", type=float, default=8, help="photos per second (default 8)")
    parser.add_argument("--restart-every", type=float, default=150, help="seconds (default 150)")
    parser.add_argument("--out", type=Path, help="folder for the results (default: a new one in /tmp)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="edgecam-snapshots-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"bench/snapshots.py: {args.duration:g} s at {args.fps:g} fps, a restart every "
          f"{args.restart_every:g} s; results in {out}", flush=True)
    try:
        summary = run(args, out)
    except (RuntimeError, OSError, WaitTimeout) as exc:
        print(f"bench/snapshots.py: the run could not be done: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 2
    (out / "snapshots-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if report(summary) else 1


if __name__ == "__main__":
    sys.exit(main())
