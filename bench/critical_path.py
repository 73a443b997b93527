"""Where the inference thread's time goes between two invokes, when the model is the bottleneck.

Run from the repository root:

    .venv/bin/python -m bench.critical_path [--seconds S] [--threads N]

Why: issue 10's on-demand goal (`bench/pipeline.py`: results/s >= 0.97 of a bare
invoke() loop) is a ratio of two rates measured one after the other, and on a
shared VM it scatters by +-5 % from round to round, more than the gap it is
meant to show. With the model the bottleneck, the pipeline's rate is set by one
thread: invoke, then everything else the inference thread does before the next
invoke. That "everything else" can be timed directly, frame by frame, in one
run: its median against the invoke's median is the rate's ceiling,
invoke / (invoke + gap), free of the noise between two runs.

What runs: the real daemon in this process (`edgecam run`, the config of
`bench/pipeline.py`'s `pipeline` variant: the photos at `realtime: false`,
`emit: every_frame`, `min_score: 0`, a socket client reading every line), with
time.perf_counter() marks taken by thin wrappers around the functions each
step calls (nothing in edgecam is changed). Only the inference thread's marks
count, and only in the order of a frame's steps. Each wrapper costs about a
microsecond, which the gap includes.

The steps, in the order the inference thread does them:
  invoke          the model (LiteRT's invoke())
  finish          the output copied; with the next frame waiting, the frame's finish left
                  for the finisher (pipeline.finisher), else done here: its labels
                  (dequantize, top-k), the Result, the stats, the filter
  next frame      the loop's bookkeeping and taking the next frame from the slot
  decode          the frame's decode (none for photos: decoded by the reader)
  input write     fitting into the input tensor (the BGR to RGB conversion)
  wake others     what the last frame left (to the finisher, or the socket's JSON and
                  send() here) and the reader told the slot is free (Inference._release,
                  right before invoke)

It also counts the frames whose finish the finisher took.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.daemon import DEFAULT_IMAGES, DEFAULT_LABELS, DEFAULT_MODEL, daemon_config
from bench.machine import print_header
from edgecam.core.slot import FrameSlot
from edgecam.models import classifier as classifier_module
from edgecam.models.preprocess import Preprocessor
from edgecam.pipeline.inference import Inference
from edgecam.pipeline.work import Finish

# (mark, the step that ends there), in a frame's order; a frame's steps start at "released".
STEPS = [("invoked", "invoke"), ("classified", "finish"), ("taken", "next frame"),
         ("fitting", "decode"), ("written", "input write"), ("released", "wake others")]
WARMUP_S = 3.0


class Marks:
    """perf_counter() marks taken on the inference thread only."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []
        self.recording = False
        self.finished_beside = 0  # frames the finisher finished

    def mark(self, name: str) -> None:
        if self.recording and threading.current_thread().name == "edgecam-inference":
            self.marks.append((name, time.perf_counter()))

    def around(self, owner: Any, attribute: str, before: str | None, after: str | None) -> None:
        """Replaces owner.attribute by a wrapper that marks before and after the call."""
        original: Callable[..., Any] = getattr(owner, attribute)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before:
                self.mark(before)
            value = original(*args, **kwargs)
            if after:
                self.mark(after)
            return value

        setattr(owner, attribute, wrapper)

    def steps(self) -> dict[str, list[float]]:
        """Each step's durations (ms), from consecutive marks in a frame's order only."""
        step_ending_at = dict(STEPS)
        marks = list(step_ending_at)
        following = dict(zip(marks, marks[1:] + marks[:1], strict=True))
        durations: dict[str, list[float]] = {step: [] for _, step in STEPS}
        for (first, t0), (second, t1) in itertools.pairwise(self.marks):
            if following[first] == second:
                durations[step_ending_at[second]].append((t1 - t0) * 1000)
        return durations


def instrument(marks: Marks) -> None:
    interpreter_class = classifier_module.interpreter_class

    def timed_interpreter_class() -> tuple[type, str]:
        cls, name = interpreter_class()

        class Timed(cls):
            def invoke(self) -> None:
                super().invoke()
                marks.mark("invoked")

        return Timed, name

    classifier_module.interpreter_class = timed_interpreter_class
    marks.around(Inference, "_classify", None, "classified")
    finish_result = Finish.result  # a Finish is only made for a frame finished beside

    def counted(*args: Any) -> Any:
        if marks.recording:
            marks.finished_beside += 1
        return finish_result(*args)

    Finish.result = counted  # type: ignore[method-assign]
    marks.around(FrameSlot, "take", None, "taken")
    marks.around(Preprocessor, "write", "fitting", "written")
    marks.around(Inference, "_release", None, "released")


def read_lines(path: Path, stop: threading.Event) -> None:
    """A socket client reading every line, as bench/pipeline.py's does."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.05)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(path))
        client.settimeout(0.5)
        while not stop.is_set():
            try:
                if not client.recv(65536):
                    return
            except TimeoutError:
                continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.critical_path", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured (default: 15)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default: 1)")
    args = parser.parse_args(argv)
    print_header("The inference thread's critical path", __file__, argv)
    marks = Marks()
    instrument(marks)
    from edgecam.cli import main as edgecam_main

    with tempfile.TemporaryDirectory(prefix="edgecam-bench-") as folder:
        sock = Path(folder) / "results.sock"
        config = daemon_config(DEFAULT_MODEL, DEFAULT_LABELS, DEFAULT_IMAGES, args.threads, 0.0, sock)
        config_path = Path(folder) / "edgecam.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        stop = threading.Event()
        threading.Thread(target=read_lines, args=(sock, stop), daemon=True).start()

        def record() -> None:
            marks.recording = True
            threading.Timer(args.seconds, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()

        threading.Timer(WARMUP_S, record).start()
        code = edgecam_main(["run", "-c", str(config_path)])
        stop.set()
    if code:
        return code
    report(marks.steps(), marks.finished_beside)
    return 0


def report(durations: dict[str, list[float]], finished_beside: int) -> None:
    invoke = statistics.median(durations["invoke"])
    rest = {step: statistics.median(values) for step, values in durations.items()
            if step != "invoke" and values}
    gap = sum(rest.values())
    print(f"\nframes: {len(durations['invoke'])}, of which finished by the finisher: "
          f"{finished_beside}\n")
    print("| step | median ms a frame | of the gap |")
    print("|---|---:|---:|")
    print(f"| invoke | {invoke:.3f} | |")
    for step, ms in rest.items():
        print(f"| {step} | {ms:.3f} | {ms / gap:.0%} |")
    print(f"| **the gap (everything but invoke)** | **{gap:.3f}** | |")
    print(f"\nthe rate's ceiling, invoke / (invoke + gap): {invoke / (invoke + gap):.3f} "
          "(issue 10's goal for bench/pipeline.py's `pipeline`: >= 0.97)")


if __name__ == "__main__":
    sys.exit(main())
