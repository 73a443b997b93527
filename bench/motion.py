#!/usr/bin/env python3
"""Motion gating benchmark: what a still scene costs with and without `pipeline.motion`.

Run from the repository root, as root (for --board slow):

    .venv/bin/python -m bench.motion [--rounds 2] [--scene-seconds 10] [--seconds 60] [--noise 3]
                                     [--board slow] [--skip-defaults] [--skip-dusk] [--json FILE]

Three parts:

1. The defaults (offline, no daemon): on the real photos (../shared/images, letterboxed to
   1280x720 as bench/reaction.py shows them), JPEG-encoded with sensor noise (std --noise) as a
   camera streams them, the gate's measure (motion.changed_part: the part of the picture that
   changed) for noise alone, for light 30 % darker and brighter than the reference (what a
   reference max_still_s = 30 s old sees of a 30 % drift over a minute, and twice that), and the
   smallest patch of another photo (a part of the frame) that the default threshold detects, for
   a few (NOISE_FLOOR, RELATIVE) pairs: the figures that chose the defaults.
2. Live (bench/reaction.py's machinery): the photos cycle every --scene-seconds on a live 720p30
   MJPEG stream with temporal sensor noise (ffmpeg's noise filter, luma std --noise); `edgecam`
   (ungated) and `gated` (pipeline.motion.enabled) run one after the other in each round (the
   order alternating), on core 1, each with its own stream. Reported per round and as medians:
   CPU %, reaction p50/p90, missed scenes, classifications a second; and gated/ungated ratios
   from the same round.
3. Dusk: one photo for 60 s whose light falls by 30 % (ffmpeg's eq, contrast and brightness
   together: a multiplication) with the same noise, read by the gated daemon (max_still_s 30):
   how many frames it classified (every_frame: one result each).

The machine may be shared: every ratio compares runs of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench import reaction
from bench.machine import print_header, table
from edgecam.pipeline import motion
from edgecam.sources.pictures import JpegPicture

PAIRS = ((6.0, 0.06), (8.0, 0.08), (motion.NOISE_FLOOR, motion.RELATIVE), (16.0, 0.16))
DUSK_S = 60.0
DUSK_MAX_STILL_S = 30.0


def camera(image: np.ndarray, rng: np.random.Generator, gain: float, std: float) -> np.ndarray:
    """The thumbnail the gate sees of `image` under light `gain` with noise `std`, as a JPEG."""
    noisy = image.astype(np.float32) * gain + rng.normal(0, std, image.shape).astype(np.float32)
    _, data = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return JpegPicture(data.tobytes(), image.shape[1], image.shape[0]).thumbnail().astype(np.float32)


def smallest_detected(image: np.ndarray, other: np.ndarray, reference: np.ndarray,
                      rng: np.random.Generator, std: float) -> float:
    """The smallest centred square of `other` pasted on `image` (part of the frame) seen as motion."""
    height, width = image.shape[:2]
    for part in np.arange(0.0025, 0.2, 0.0025):
        side = int((part * width * height) ** 0.5)
        x, y = (width - side) // 2, (height - side) // 2
        changed = image.copy()
        changed[y:y + side, x:x + side] = other[y:y + side, x:x + side]
        if motion.changed_part(reference, camera(changed, rng, 1.0, std)) > 0.02:
            return float(part)
    return float("nan")


def defaults(images: list[np.ndarray], std: float) -> list[list[str]]:
    rng = np.random.default_rng(1)
    saved = motion.NOISE_FLOOR, motion.RELATIVE
    rows = []
    try:
        for floor, relative in PAIRS:
            motion.NOISE_FLOOR, motion.RELATIVE = floor, relative
            noise = darker = brighter = 0.0
            smallest = []
            for k, image in enumerate(images):
                reference = camera(image, rng, 1.0, std)
                noise = max([noise] + [motion.changed_part(reference, camera(image, rng, 1.0, std))
                                       for _ in range(10)])
                for g0, g1 in ((1.0, 0.85), (0.85, 0.7), (1.0, 0.7)):
                    darker = max(darker, motion.changed_part(camera(image, rng, g0, std),
                                                             camera(image, rng, g1, std)))
                for g0, g1 in ((1.0, 1.15), (1.15, 1.3), (1.0, 1.3)):
                    brighter = max(brighter, motion.changed_part(camera(image, rng, g0, std),
                                                                 camera(image, rng, g1, std)))
                smallest.append(smallest_detected(image, images[(k + 1) % len(images)], reference, rng, std))
            rows.append([f"{floor:g}", f"{relative:g}", f"{100 * noise:.2f}", f"{100 * darker:.2f}",
                         f"{100 * brighter:.2f}", " / ".join(f"{100 * s:.2f}" for s in smallest),
                         "yes" if (floor, relative) == saved else ""])
    finally:
        motion.NOISE_FLOOR, motion.RELATIVE = saved
    return rows


def live_args(args: argparse.Namespace, filters: str) -> argparse.Namespace:
    """What reaction.run_once reads of its command line."""
    return argparse.Namespace(model=args.model, labels=args.labels, daemon_stats=False, grace=20.0,
                              filters=filters, period_us=args.period_us)


def live(args: argparse.Namespace, kept: list[reaction.Scene], frames: Path) -> list[reaction.Run]:
    runs = []
    noise = f"noise=alls={args.noise * reaction.NOISE_PER_STD:.2f}:allf=t" if args.noise else ""
    for rnd in range(1, args.rounds + 1):
        order = ("edgecam", "gated") if rnd % 2 else ("gated", "edgecam")
        for contender in order:
            run = reaction.run_once(contender, "mjpeg", args.cap, rnd, args.seconds, args.scene_seconds,
                                    kept, frames, live_args(args, noise))
            f = run.figures()
            print(f"round {rnd} {contender:>7}: CPU {run.cpu_pct:.1f} %, p50 {reaction._f(f['p50'])} ms, "
                  f"p90 {reaction._f(f['p90'])} ms, {f['seen']:.0f} seen, {f['missed']:.0f} missed, "
                  f"{f['pending']:.0f} pending, {run.fps:.2f} classified/s", flush=True)
            runs.append(run)
    return runs


def live_report(runs: list[reaction.Run]) -> str:
    rows, ratios = [], []
    for rnd in sorted({r.round for r in runs}):
        pair = {r.contender: r for r in runs if r.round == rnd}
        for name in ("edgecam", "gated"):
            f = pair[name].figures()
            rows.append([str(rnd), name, f"{pair[name].cpu_pct:.1f}", reaction._f(f["p50"]),
                         reaction._f(f["p90"]), f"{f['seen']:.0f}", f"{f['missed']:.0f}",
                         f"{f['pending']:.0f}", f"{pair[name].fps:.2f}"])
        e, g = pair["edgecam"].figures(), pair["gated"].figures()
        ratios.append((pair["gated"].cpu_pct / pair["edgecam"].cpu_pct, g["p90"] - e["p90"]))
    out = [table(["round", "daemon", "CPU %", "p50 ms", "p90 ms", "seen", "missed", "pending",
                  "classified/s"], rows), ""]
    out.append(table(["round", "CPU gated/ungated", "p90 gated - ungated (ms)"],
                     [[str(i + 1), f"{c:.3f}", f"{d:+.0f}"] for i, (c, d) in enumerate(ratios)]))
    out.append(f"\nmedian over rounds: CPU gated/ungated {statistics.median(c for c, _ in ratios):.3f}, "
               f"p90 gated - ungated {statistics.median(d for _, d in ratios):+.0f} ms")
    return "\n".join(out)


def dusk(args: argparse.Namespace, scene: reaction.Scene, workdir: Path) -> reaction.Run:
    """The gated daemon on one photo whose light falls by 30 % over DUSK_S."""
    gain = f"(1-0.3*t/{DUSK_S:g})"
    filters = (f"eq=eval=frame:contrast='{gain}':brightness='{gain}*0.5-0.5'"
               + (f",noise=alls={args.noise * reaction.NOISE_PER_STD:.2f}:allf=t" if args.noise else ""))
    (workdir / "dusk").mkdir()
    frames = reaction.make_frames([scene], round(DUSK_S * reaction.FPS), round(DUSK_S * reaction.FPS),
                                  workdir / "dusk")
    return reaction.run_once("gated", "mjpeg", args.cap, 1, DUSK_S, DUSK_S / 3, [scene], frames,
                             live_args(args, filters))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.motion", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scene-seconds", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="live stream length per run")
    parser.add_argument("--noise", type=float, default=3.0, help="sensor noise, luma std (default: 3)")
    parser.add_argument("--board", choices=("slow",), help="as bench/reaction.py's --board slow")
    parser.add_argument("--skip-defaults", action="store_true")
    parser.add_argument("--skip-dusk", action="store_true")
    parser.add_argument("--model", type=Path, default=reaction.DEFAULT_MODEL)
    parser.add_argument("--labels", type=Path, default=reaction.DEFAULT_LABELS)
    parser.add_argument("--images", type=Path, default=reaction.DEFAULT_IMAGES)
    parser.add_argument("--json", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    args.model, args.labels, args.images = (p.resolve() for p in (args.model, args.labels, args.images))
    os.sched_setaffinity(0, {reaction.STREAM_CORE})
    started = time.monotonic()
    print_header("edgecam motion gating benchmark", __file__, argv)
    args.cap, args.period_us = 0.0, reaction.CFS_PERIOD_US
    if args.board == "slow":
        args.cap, notes = reaction.calibrate_slow_board(args.model, args.labels)
        args.period_us = reaction.SLOW_PERIOD_US
        print("\n## The slow board\n\n" + "\n".join(notes), flush=True)
    data: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv}
    with tempfile.TemporaryDirectory(prefix="edgecam-motion-") as tmp:
        workdir = Path(tmp)
        scenes = reaction.render_scenes(args.images, workdir)
        if not args.skip_defaults:
            rows = defaults([cv2.imread(str(s.path)) for s in scenes], args.noise)
            print(f"\n## The defaults: changed part of the picture, % (noise std {args.noise:g})\n")
            print(table(["NOISE_FLOOR", "RELATIVE", "noise", "30 % darker", "30 % brighter",
                         "smallest seen (per photo)", "default"], rows), flush=True)
            data["defaults"] = rows
        kept = reaction.calibrate(scenes, ["mjpeg"], reaction.Model(args.model, args.labels), workdir)
        print(f"\n## Live: scenes {', '.join(s.label for s in kept)}, {args.scene_seconds:g} s each\n",
              flush=True)
        scene_frames = round(args.scene_seconds * reaction.FPS)
        n_frames = max(3, int(-(-args.seconds // args.scene_seconds))) * scene_frames
        runs = live(args, kept, reaction.make_frames(kept, scene_frames, n_frames, workdir))
        print("\n" + live_report(runs))
        data["runs"] = [vars(r) | {"figures": r.figures()} for r in runs]
        if not args.skip_dusk:
            run = dusk(args, kept[0], workdir)
            print(f"\n## Dusk: {kept[0].label}, light -30 % over {DUSK_S:g} s, max_still_s "
                  f"{DUSK_MAX_STILL_S:g}: {run.results} classification(s) in {run.live_s:.0f} s live "
                  f"(bound: 1 + {motion.HANGOVER} after the first, + 1 per max_still_s = "
                  f"{1 + motion.HANGOVER + int(DUSK_S // DUSK_MAX_STILL_S)}), CPU {run.cpu_pct:.1f} %")
            data["dusk"] = vars(run)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"took {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
