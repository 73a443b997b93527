"""Zones benchmark: CPU per frame with 1, 2 and 4 zones sharing one model, against the whole frame.

Run from the repository root:

    .venv/bin/python -m bench.zones [--threads N] [--seconds S] [--rounds R]

Each variant is the real daemon (`python -m edgecam run`, as bench/pipeline.py runs it: the
photos folder read on demand, `camera.realtime: false`, so the model is the bottleneck;
`emit: every_frame`, `min_score: 0`, the socket on), measured from its own stats messages:

* ``frame``: no zones, the whole frame classified (the daemon as without this feature);
* ``zones=N``: N zones, the frame cut into N equal parts (N = 1: the whole picture as one
  zone; 2: halves; 4: quadrants), all on the top-level model (one interpreter).

Figures per variant: frames classified per second, CPU ms per frame (all the daemon's threads,
from /proc/PID/task/*/schedstat), and CPU ms per zone result. The claim to check: a zone costs
about one inference, so CPU per frame grows by about one whole-frame cost per zone, and CPU per
zone result stays about the whole frame's CPU per frame. Shared, noisy machine: the variants
run one after the other, in an order rotated every round, and the ratios against ``frame``
are taken within each round; their medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.daemon import DEFAULT_IMAGES, DEFAULT_LABELS, DEFAULT_MODEL, daemon_config, measure_window
from bench.machine import print_header

CROPS = {
    1: [[0.0, 0.0, 1.0, 1.0]],
    2: [[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 0.5, 1.0]],
    4: [[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 0.5, 0.5], [0.0, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]],
}


def measure(zones: int, threads: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-zones-") as tmp:
        workdir = Path(tmp)
        config = daemon_config(DEFAULT_MODEL, DEFAULT_LABELS, DEFAULT_IMAGES, threads, 0.0,
                               workdir / "results.sock")
        if zones:
            config["zones"] = [{"name": f"z{i}", "crop": crop} for i, crop in enumerate(CROPS[zones])]
        window = measure_window(config, workdir, seconds)
    frames = window.delta("frames", "classified")
    results = frames if not zones else sum(window.delta("zones", name, "classified")
                                           for name in window.last["zones"])
    cpu_ms = window.cpu_s * 1000
    return {"fps": frames / window.wall_s, "cpu_per_frame_ms": cpu_ms / frames,
            "cpu_per_result_ms": cpu_ms / results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zones", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    variants = [0, 1, 2, 4]
    print_header("edgecam zones benchmark", __file__, argv)
    print(flush=True)
    rows: dict[int, list[dict[str, Any]]] = {v: [] for v in variants}
    for rnd in range(args.rounds):
        order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
        measured = {v: measure(v, args.threads, args.seconds) for v in order}
        for v in variants:
            row = dict(measured[v])
            row["per_frame_ratio"] = row["cpu_per_frame_ms"] / measured[0]["cpu_per_frame_ms"]
            row["per_result_ratio"] = row["cpu_per_result_ms"] / measured[0]["cpu_per_frame_ms"]
            rows[v].append(row)
            name = f"zones={v}" if v else "frame"
            print(f"round {rnd + 1} {name:>8}: {row['fps']:6.1f} frames/s, "
                  f"{row['cpu_per_frame_ms']:6.2f} CPU ms/frame, {row['cpu_per_result_ms']:6.2f} "
                  f"CPU ms/result", flush=True)
    print("\n| variant | frames/s | CPU ms/frame | CPU ms/zone result | CPU/frame vs whole frame "
          "(median) | CPU/result vs whole frame (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for v in variants:
        med = {key: statistics.median(r[key] for r in rows[v]) for key in rows[v][0]}
        name = f"{v} zone{'s' if v > 1 else ''}" if v else "whole frame (no zones)"
        print(f"| {name} | {med['fps']:.1f} | {med['cpu_per_frame_ms']:.2f} | "
              f"{med['cpu_per_result_ms']:.2f} | {med['per_frame_ratio']:.2f} | "
              f"{med['per_result_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
