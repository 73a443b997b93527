"""Few-shot learning benchmark: the cost of learning an example, of classifying with a head, and
the figures behind `model.head_min_similarity`'s default.

Run from the repository root:

    .venv/bin/python -m bench.learn [--threads N] [--rounds R] [--frames F] [--cli-runs C]

What is measured, in one process, on the photos in ../shared/images and their views
(tests/learn_views.py: crops, mirror images, brightness changes):

* learning one example, in edgecam's own code: the example's embedding (preprocessing and
  one inference of the extractor), adding it to a head of three classes, and writing the head
  file atomically (temporary file, fsync, rename, fsync of the folder) to a temporary folder.
  Medians over every example of every round.
* `edgecam learn add LABEL IMAGE` as a user runs it (a new process: Python start-up, imports,
  loading the extractor, hashing it, embedding, writing): median wall time of --cli-runs runs.
* per-frame cost: `classify(frame)` of three classifiers over the same --frames frames
  (held-out views, cycled), one after the other in an order rotated each round:
  - ``plain``: the default ImageNet classifier (mobilenet_v2_1.0_224_quant), what the
    daemon runs without a head;
  - ``head``: HeadClassifier, the embedding extractor (mobilenet_v1_1.0_224_quant, no classifier
    layer) and the head's cosine similarities, softmax and top-k;
  - ``head-100``: the same with 97 more classes (random unit vectors), a large head;
  - ``extractor``: the extractor's embedding alone, to tell the head's own cost from the
    extractor's.
  Wall and CPU (process_time) time per frame; the ratios head/plain and head/extractor are
  taken within each round, and their medians reported: on a shared, noisy machine only ratios
  measured side by side mean anything.
* accuracy and the similarity floor: classes learned from 1, 2 and 3 training views, tested on
  the held-out views; the lowest cosine similarity of a held-out view to its own class, the
  highest to another class, and the highest of scenes that are none of the classes (noise,
  flat gray, a gradient, a checkerboard).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.launcher import ROOT
from bench.machine import print_header
from edgecam.config import Config
from edgecam.models.classifier import Classifier
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head
from edgecam.models.fewshot.imprint import HeadClassifier
from tests.learn_views import PHOTOS, TEST, TRAIN, scenes, views, write_views

SHARED = ROOT.parent / "shared"
EXTRACTOR = SHARED / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
CLASSIFIER = SHARED / "models" / "mobilenet_v2_1.0_224_quant.tflite"
LABELS_FILE = SHARED / "models" / "imagenet_labels.txt"

LABELS = tuple(PHOTOS)


def learn_one_example(embedder: Embedder, rounds: int) -> dict[str, float]:
    """Median ms to embed one example, to add it and write the head, and the two together."""
    embed_ms, save_ms, total_ms = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.head"
        for _ in range(rounds):
            for label in LABELS:
                for image in views(label, TRAIN):
                    started = time.perf_counter()
                    embedding = embedder.embed(image)
                    embedded = time.perf_counter()
                    head = Head.load(path) if path.exists() else Head(embedder.sha256, embedder.dim)
                    head.add(label, [embedding])
                    head.save(path)
                    done = time.perf_counter()
                    embed_ms.append((embedded - started) * 1000)
                    save_ms.append((done - embedded) * 1000)
                    total_ms.append((done - started) * 1000)
        size = path.stat().st_size
    return {"embed": statistics.median(embed_ms), "save": statistics.median(save_ms),
            "total": statistics.median(total_ms), "head_bytes": size}


def learn_cli(runs: int, threads: int) -> float:
    """Median wall ms of `edgecam learn add cat IMAGE` in a new process."""
    times = []
    with tempfile.TemporaryDirectory() as folder:
        folder_path = Path(folder)
        image = write_views(folder_path / "views", "cat", TRAIN[:1])[0]
        config = folder_path / "edgecam.yaml"
        config.write_text(f"model:\n  path: {EXTRACTOR}\n  head: bench.head\n  threads: {threads}\n")
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edgecam", "learn", "add", "cat", str(image),
                            "-c", str(config)], check=True, capture_output=True, cwd=ROOT)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def per_frame(classify, frames: list[np.ndarray]) -> tuple[float, float]:
    """(wall ms, CPU ms) per frame of classify() over `frames`, after a short warm-up."""
    for frame in frames[:5]:
        classify(frame)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for frame in frames:
        classify(frame)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall * 1000 / len(frames), cpu * 1000 / len(frames)


def compare(threads: int, rounds: int, count: int, head: Head, embedder: Embedder
            ) -> dict[str, list[tuple[float, float]]]:
    plain = Classifier(str(CLASSIFIER), str(LABELS_FILE), threads=threads)
    floor = Config().model.head_min_similarity
    headed = HeadClassifier(embedder, head, min_similarity=floor)
    large = Head(head.extractor_sha256, head.dim, classes=list(head.classes))
    rng = np.random.default_rng(0)
    for number in range(100 - len(head.classes)):
        vector = np.abs(rng.standard_normal(head.dim))
        large.add(f"class {number}", [vector / np.linalg.norm(vector)])
    large_head = HeadClassifier(embedder, large, min_similarity=floor)
    test_views = [view for label in LABELS for view in views(label, TEST)]
    frames = [test_views[i % len(test_views)] for i in range(count)]
    variants = {"plain": plain.classify, "head": headed.classify, "head-100": large_head.classify,
                "extractor": embedder.embed}
    names = list(variants)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for rnd in range(rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            wall, cpu = per_frame(variants[name], frames)
            results[name].append((wall, cpu))
            print(f"round {rnd + 1} {name:>9}: {wall:6.2f} ms/frame, {cpu:6.2f} CPU ms/frame", flush=True)
    return results


def accuracy_and_similarities(embedder: Embedder) -> list[str]:
    train = {label: [embedder.embed(v) for v in views(label, TRAIN)] for label in LABELS}
    tests = {label: [embedder.embed(v) for v in views(label, TEST)] for label in LABELS}
    others = {name: embedder.embed(image) for name, image in scenes().items()}
    floor = Config().model.head_min_similarity
    out = []
    for examples in (1, 2, 3):
        head = Head(embedder.sha256, embedder.dim)
        for label in LABELS:
            head.add(label, train[label][:examples])
        weights = head.prototypes()
        right = sum(int(np.argmax(weights @ e)) == i and float(np.max(weights @ e)) >= floor
                    for i, label in enumerate(LABELS) for e in tests[label])
        total = sum(len(v) for v in tests.values())
        own = [float(weights[i] @ e) for i, label in enumerate(LABELS) for e in tests[label]]
        other = [float(weights[j] @ e) for i, label in enumerate(LABELS) for e in tests[label]
                 for j in range(len(LABELS)) if j != i]
        scene = [float(np.max(weights @ e)) for e in others.values()]
        out.append(f"| {examples} | {right}/{total} | {min(own):.3f} | {max(other):.3f} | "
                   f"{max(scene):.3f} |")
    # A photo of none of the learned classes: each class left out in turn.
    left_out = []
    for out_label in LABELS:
        head = Head(embedder.sha256, embedder.dim)
        for label in LABELS:
            if label != out_label:
                head.add(label, train[label])
        weights = head.prototypes()
        left_out += [float(np.max(weights @ e)) for e in tests[out_label]]
    out.append("")
    out.append(f"held-out views of a photo whose class was not learned (each left out in turn): best "
               f"cosine {min(left_out):.3f}..{max(left_out):.3f}, unknown at floor {floor:g}: "
               f"{sum(s < floor for s in left_out)}/{len(left_out)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learn", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default: 1)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default: 5)")
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement (default: 200)")
    parser.add_argument("--cli-runs", type=int, default=5,
                        help="runs of `edgecam learn add` (default: 5; 0: do not)")
    args = parser.parse_args(argv)

    print_header("edgecam few-shot learning benchmark", __file__, argv)
    print(f"threads: {args.threads}; extractor: {EXTRACTOR.name}; plain classifier: {CLASSIFIER.name}")
    print(flush=True)

    embedder = Embedder(str(EXTRACTOR), threads=args.threads)
    learned = learn_one_example(embedder, args.rounds)
    cli = learn_cli(args.cli_runs, args.threads) if args.cli_runs else None
    head = Head(embedder.sha256, embedder.dim)
    for label in LABELS:
        head.add(label, [embedder.embed(v) for v in views(label, TRAIN)])
    results = compare(args.threads, args.rounds, args.frames, head, embedder)

    def ratio(a: str, b: str, which: int) -> float:
        return statistics.median(x[which] / y[which] for x, y in zip(results[a], results[b], strict=True))

    def median(name: str, which: int) -> float:
        return statistics.median(x[which] for x in results[name])

    print("\n## Learning one example\n")
    print(f"- embedding (preprocessing + one inference of the extractor): {learned['embed']:.1f} ms")
    print(f"- adding it to a head of {len(LABELS)} classes and writing the head atomically "
          f"({learned['head_bytes'] / 1024:.0f} KiB, fsync'd): {learned['save']:.1f} ms")
    print(f"- together: **{learned['total']:.1f} ms** per example (median)")
    if cli is not None:
        print(f"- `edgecam learn add LABEL IMAGE` as a command (new process, model load, sha256 of the "
              f"extractor): {cli / 1000:.2f} s (median of {args.cli_runs})")
    print("\n## Per-frame cost of classifying with a head\n")
    print("| classifier | wall ms/frame | CPU ms/frame |")
    print("| --- | --- | --- |")
    for name, what in (("plain", f"plain ({CLASSIFIER.name}, 1001 labels)"),
                       ("head", f"head ({EXTRACTOR.name} + {len(LABELS)} classes)"),
                       ("head-100", "head with 100 classes"),
                       ("extractor", "extractor alone (embedding only)")):
        print(f"| {what} | {median(name, 0):.2f} | {median(name, 1):.2f} |")
    print(f"\nhead / plain: **{ratio('head', 'plain', 1):.2f}x CPU**, {ratio('head', 'plain', 0):.2f}x "
          f"wall; head / extractor alone: {ratio('head', 'extractor', 1):.3f}x CPU, with 100 classes "
          f"{ratio('head-100', 'extractor', 1):.3f}x CPU (medians of {args.rounds} per-round ratios)")
    print("\n## Held-out accuracy and the similarity floor\n")
    print("| training views per class | held-out views right | lowest cosine to own class | "
          "highest cosine to another class | highest cosine of a non-photo scene |")
    print("| --- | --- | --- | --- | --- |")
    for line in accuracy_and_similarities(embedder):
        print(line)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
