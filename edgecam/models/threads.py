"""`model.threads: auto`: measure 1..N threads on the loaded model at start, keep the right one.

More threads are not always faster: on a Pi the capture thread (and on a
small model, the threads' own hand-offs) compete for the same cores, and
which count wins depends on the board, the model and the runtime. So the
model is loaded with each count from 1 to the CPU count and timed on the
same picture, turn by turn (a background job slows every count alike) for
about a second in all. The choice is the smallest count within 5 % of the
fastest; where that is every core, one fewer is taken when it costs under
10 %, leaving a core for capture. The figures go in the log and in
`edgecam doctor`.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the smallest count this close to the fastest is as good as the fastest
WITHIN = 1.05
#: a core is left for capture when using one fewer costs less than this
SPARE_CORE = 1.10
BUDGET_S = 1.0


@dataclass(frozen=True)
class ThreadChoice:
    """The count chosen, and the median ms per frame measured for each count."""

    threads: int
    ms: dict[int, float]
    spared_core: bool

    def describe(self) -> str:
        figures = ", ".join(f"{count}: {ms:.1f} ms" for count, ms in sorted(self.ms.items()))
        why = "; one core left for capture" if self.spared_core else ""
        return f"{self.threads} thread(s) ({figures} per frame{why})"


def choose(ms: dict[int, float]) -> ThreadChoice:
    """The smallest count within WITHIN of the fastest; all cores minus one where that costs
    under SPARE_CORE, instead of all of them."""
    fastest = min(ms.values())
    pick = min(count for count, value in ms.items() if value <= fastest * WITHIN)
    top = max(ms)
    if pick == top and top - 1 in ms and ms[top - 1] < fastest * SPARE_CORE:
        return ThreadChoice(top - 1, ms, True)
    return ThreadChoice(pick, ms, False)


def auto_threads(load: Callable[[int], Any], cores: int | None = None,
                 budget_s: float = BUDGET_S) -> tuple[Any, ThreadChoice]:
    """The model `load(count)` makes with the chosen count, and the choice.

    `load(count)` returns a model with `input_size` and `run(image)`; one is loaded per
    count (loading is not timed) and the ones not chosen are dropped.
    """
    counts = range(1, (cores or os.cpu_count() or 1) + 1)
    models = {count: load(count) for count in counts}
    if len(models) == 1:
        return models[1], ThreadChoice(1, {1: measure(models, budget_s)[1]}, False)
    choice = choose(measure(models, budget_s))
    return models[choice.threads], choice


def measure(models: dict[int, Any], budget_s: float) -> dict[int, float]:
    """The median ms per frame of each model, timed in turns on one picture for `budget_s`."""
    width, height = next(iter(models.values())).input_size
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    samples: dict[int, list[float]] = {count: [] for count in models}
    for model in models.values():
        model.run(image)  # warm-up: first runs allocate
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or min(len(s) for s in samples.values()) < 3:
        for count, model in models.items():
            started = time.perf_counter()
            model.run(image)
            samples[count].append((time.perf_counter() - started) * 1000)
    return {count: statistics.median(values) for count, values in samples.items()}
