"""Back-end benchmark: ms per frame of LiteRT against ONNX Runtime on the same MobileNet v2.

Run from the repository root:

    .venv/bin/python -m bench.backends [--threads N [N ...]] [--seconds S] [--rounds R]

The shared MobileNet v2 as a .tflite (LiteRT) and as its ONNX conversion (a QDQ graph,
ONNX Runtime) are loaded through edgecam's own CPU back-ends
(`edgecam.models.classifier.open_image_model`), once per thread count, and each runs
`run(image)` on one real photo (cat.bmp): the preprocessing into the input tensor, the
inference and the output, i.e. what the inference thread pays per frame. The figure is the
median ms per frame over `--seconds` per variant and round.

Shared, noisy machines: only ratios against a baseline measured in the same run mean
anything. The baseline is LiteRT at the first thread count; each round measures every
variant once, one after the other, in an order rotated from round to round; the ratios are
taken within each round and their median over the rounds is reported.

Then `model.threads: auto` is run on each model (as the daemon does at start) and its pick
is printed with its own figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2

from bench.launcher import ROOT
from edgecam.models.classifier import open_image_model

SHARED = ROOT.parent / "shared"
MODELS = {"LiteRT": SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite",
          "ONNX Runtime": SHARED / "models" / "mobilenet_v2_1.0_224_quant.onnx"}
PHOTO = SHARED / "images" / "cat.bmp"


def median_ms(model, image, seconds: float) -> float:
    model.run(image)
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        model.run(image)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    image = cv2.imread(str(PHOTO))
    variants = [(runtime, threads) for threads in args.threads for runtime in MODELS]
    models = {(runtime, threads): open_image_model(str(MODELS[runtime]), threads=threads, resize="crop")
              for runtime, threads in variants}
    baseline = ("LiteRT", args.threads[0])
    ms: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
    ratios: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        order = variants[round_ % len(variants):] + variants[:round_ % len(variants)]
        figures = {v: median_ms(models[v], image, args.seconds) for v in order}
        for v in variants:
            ms[v].append(figures[v])
            ratios[v].append(figures[v] / figures[baseline])
    print(f"{'runtime':14} {'threads':>7} {'ms/frame':>9} {'vs ' + baseline[0] + ' ' + str(baseline[1]):>12}")
    for v in variants:
        print(f"{v[0]:14} {v[1]:7d} {statistics.median(ms[v]):9.2f} {statistics.median(ratios[v]):12.2f}")
    for runtime, path in MODELS.items():
        auto = open_image_model(str(path), threads="auto", resize="crop")
        print(f"threads: auto on {runtime}: {auto.thread_choice.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
