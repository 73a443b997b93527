"""`model.threads: auto` (edgecam/models/threads.py): the rule, and its pick on this machine.

The rule is checked on given figures. The pick is checked on the real model
against fixed thread counts measured in the same run, one after the other:
the test compares the run's own figures, never absolute times.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
from harness import DEFAULT_MODEL, MODELS

from edgecam.config import parse_config
from edgecam.models.classifier import open_image_model
from edgecam.models.threads import SPARE_CORE, WITHIN, ThreadChoice, choose

ONNX_MODEL = MODELS / "mobilenet_v2_1.0_224_quant.onnx"
ATTEMPTS = 3


@pytest.mark.parametrize(("ms", "pick", "spared"), [
    ({1: 10.0, 2: 9.8}, 1, False),  # two threads gain under 5 %: one is enough
    ({1: 10.0, 2: 5.2}, 2, False),  # one thread costs 92 % more: both cores
    ({1: 20.0, 2: 10.4, 3: 10.2, 4: 10.0}, 2, False),  # the smallest count within 5 %
    ({1: 40.0, 2: 20.0, 3: 10.7, 4: 10.0}, 3, True),  # all four would be best; three cost 7 %
    ({1: 40.0, 2: 20.0, 3: 11.5, 4: 10.0}, 4, False),  # three would cost 15 %: all four
    ({1: 5.0}, 1, False),
])
def test_the_smallest_count_within_5_percent_leaving_a_core_where_that_costs_under_10(
        ms: dict[int, float], pick: int, spared: bool) -> None:
    assert choose(ms) == ThreadChoice(pick, ms, spared)


def test_auto_is_the_default_and_a_count_or_auto_is_accepted() -> None:
    assert parse_config("", "c.yaml").model.threads == "auto"
    assert parse_config("model:\n  threads: 2\n", "c.yaml").model.threads == 2
    with pytest.raises(Exception, match=r"c\.yaml:2: model\.threads: expected auto or a whole number"):
        parse_config("model:\n  threads: many\n", "c.yaml")


def fixed_figures(path: str, counts: range, rounds: int = 60) -> dict[int, float]:
    """The median ms per frame of each fixed count, measured in turns (as auto measures)."""
    models = {n: open_image_model(path, threads=n, resize="crop") for n in counts}
    width, height = models[1].input_size
    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), np.uint8)
    samples: dict[int, list[float]] = {n: [] for n in counts}
    for model in models.values():
        model.run(image)
    for _ in range(rounds):
        for n, model in models.items():
            started = time.perf_counter()
            model.run(image)
            samples[n].append((time.perf_counter() - started) * 1000)
    return {n: statistics.median(values) for n, values in samples.items()}


@pytest.mark.parametrize("model", [DEFAULT_MODEL, ONNX_MODEL], ids=["litert", "onnx"])
def test_auto_picks_a_count_within_5_percent_of_the_best_fixed_count(model) -> None:
    """Each attempt: auto's pick, then every fixed count measured right after it.

    The machine is shared: a burst of someone else's load between auto's second and the fixed
    counts' shifts one against the other, so up to ATTEMPTS are made and one must pass; the
    figures of every attempt are shown when none does.
    """
    if model == ONNX_MODEL:
        pytest.importorskip("onnxruntime", reason="edgecam[onnx] (onnxruntime) is not installed")
    cores = os.cpu_count() or 1
    attempts = []
    for _ in range(ATTEMPTS):
        auto = open_image_model(str(model), threads="auto", resize="crop")
        choice = auto.thread_choice
        assert choice is not None and auto.threads == choice.threads
        assert sorted(choice.ms) == list(range(1, cores + 1))
        fixed = fixed_figures(str(model), range(1, cores + 1))
        allowed = SPARE_CORE if choice.spared_core else WITHIN
        attempts.append((choice.describe(), fixed))
        if fixed[choice.threads] <= min(fixed.values()) * allowed:
            return
    pytest.fail(f"auto's pick was never within {WITHIN:.2f} of the best fixed count: {attempts}")
