"""What the merge's bound (a head weighs at most MEMBER_WEIGHT examples per class) costs in
accuracy, and what it saves under attack.

Run from the repository root:

    .venv/bin/python -m bench.merge_bound [--members M] [--held-out H] [--seed S]

Members learn the photos of ../shared/images (cat, hopper, parrot) from random
augmentations (crops of 55-100 %, mirror images, brightness ×0.5-1.5), each
class with a different number of examples per member (1, 3, 10, 30, ...: the
case the bound changes). Their heads are merged with the bound (merge_heads)
and without it (plain sums, example-weighted), and both merges classify
held-out views: tests/learn_views.py's TEST views and H random views per class
drawn with another seed. Reported: accuracy (the top answer is the class;
`unknown` counts as wrong), the mean cosine of a view to its own class, and
the mean margin over the best other class; then the same with a stranger's
head claiming "cat" with the hopper's sums and counts ×1e5.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.launcher import ROOT
from edgecam.config import Config
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import MEMBER_WEIGHT, Head, merge_heads
from tests.learn_views import PHOTOS, TEST, View, photo, views

EXTRACTOR = ROOT.parent / "shared" / "models" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"

LABELS = tuple(PHOTOS)
COUNTS = (1, 3, 10, 30)
FLOOR = Config().model.head_min_similarity


def random_views(rng: np.random.Generator, count: int) -> list[View]:
    made = []
    for n in range(count):
        size = rng.uniform(0.55, 1.0)
        left, top = rng.uniform(0, 1 - size, 2)
        made.append(View(f"r{n}", (left, top, left + size, top + size), bool(rng.integers(2)),
                         float(rng.uniform(0.5, 1.5))))
    return made


def member_heads(embedder: Embedder, members: int, rng: np.random.Generator) -> list[Head]:
    heads = []
    for member in range(members):
        head = Head(embedder.sha256, embedder.dim, EXTRACTOR.name)
        for number, label in enumerate(LABELS):
            count = COUNTS[(member + number) % len(COUNTS)]
            image = photo(label)
            head.add(label, [embedder.embed(v.apply(image)) for v in random_views(rng, count)])
        heads.append(head)
    return heads


def unbounded(heads: list[Head]) -> Head:
    merged = Head(heads[0].extractor_sha256, heads[0].dim)
    for head in heads:
        merged.merge(head)
    return merged


def score(head: Head, held_out: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """(accuracy, mean cosine to the own class, mean margin over the best other class)."""
    weights = head.prototypes()
    right, own, margins, total = 0, [], [], 0
    for label, embeddings in held_out.items():
        mine = head.labels.index(label)
        for cosines in embeddings @ weights.T:
            best = int(np.argmax(cosines))
            right += best == mine and cosines[best] >= FLOOR
            others = np.delete(cosines, mine)
            own.append(cosines[mine])
            margins.append(cosines[mine] - others.max())
            total += 1
    return right / total, float(np.mean(own)), float(np.mean(margins))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.merge_bound", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--held-out", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    embedder = Embedder(str(EXTRACTOR), threads=1)
    heads = member_heads(embedder, args.members, np.random.default_rng(args.seed))
    rng = np.random.default_rng(args.seed + 1000)
    held_out = {label: np.array([embedder.embed(image) for image in
                                 views(label, TEST + tuple(random_views(rng, args.held_out)))])
                for label in LABELS}
    stranger = Head(embedder.sha256, embedder.dim)
    hopper = unbounded(heads).find("hopper")
    assert hopper is not None
    stranger.classes.append(type(hopper)("cat", min(hopper.count * 10 ** 5, 10 ** 6),
                                         hopper.sum * (min(hopper.count * 10 ** 5, 10 ** 6) / hopper.count)))
    print(f"{args.members} members, examples per class {COUNTS} (rotating), bound "
          f"{MEMBER_WEIGHT}; {sum(len(e) for e in held_out.values())} held-out views")
    print(f"{'merge':<28} {'accuracy':>8} {'own cosine':>10} {'margin':>7}")
    for name, merged in (("bounded (merge_heads)", merge_heads([(str(n), h) for n, h in enumerate(heads)])),
                         ("unbounded (plain sums)", unbounded(heads)),
                         ("bounded + stranger", merge_heads([(str(n), h) for n, h in
                                                             enumerate([*heads, stranger])])),
                         ("unbounded + stranger", unbounded([*heads, stranger]))):
        accuracy, own, margin = score(merged, held_out)
        print(f"{name:<28} {accuracy:>8.3f} {own:>10.3f} {margin:>7.3f}")


if __name__ == "__main__":
    main()
