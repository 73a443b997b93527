"""Odd and corrupt frames through the real pipeline, in process: each is classified or dropped, and counted.

Capture, slot, inference and the output dispatcher with the real model; the
source is a fake that hands out the frames one at a time (and fails its first
read). The daemon-level faults are in tests/integration/test_faults.py.
"""

from __future__ import annotations

import threading

import numpy as np
from fakes import Collect
from harness import DEFAULT_MODEL, LABELS, wait_for

from edgecam.config import OutputsConfig, PipelineConfig
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.daemon.notify import Notifier, Watchdog
from edgecam.models.classifier import Classifier
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.pipeline.capture import Capture
from edgecam.pipeline.filter import ResultFilter
from edgecam.pipeline.inference import Inference
from edgecam.pipeline.work import InferenceSettings
from edgecam.sources.base import Source


class ListSource(Source):
    """Hands out the given frames one at a time (each waits until inference took the last)."""

    name = "odd frames"
    finite = True

    def __init__(self, frames: list, slot: FrameSlot, fail_first_read: bool = False) -> None:
        self._frames = list(frames)
        self._slot = slot
        self._fail = fail_first_read

    def open(self) -> None:
        pass

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self._fail:
            self._fail = False
            raise OSError("corrupt read")
        while self._slot._frame is not None and not stop.is_set():  # test pacing only
            stop.wait(0.005)
        return self._frames.pop(0) if self._frames else None

    def close(self) -> None:
        pass


def test_odd_frames_are_classified_or_dropped_and_counted() -> None:
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (480, 640, 3), np.uint8)
    good = [photo[:, :, 0], np.dstack([photo, photo[:, :, :1]]), photo[:1, :1], photo[:, :, :1],
            rng.integers(0, 255, (2160, 3840, 3), np.uint8), photo]
    bad = [np.zeros((0, 0, 3), np.uint8), photo.astype(np.float32), np.zeros((4, 4, 5), np.uint8),
           np.zeros((2, 2, 2, 2), np.uint8)]
    frames = [frame for pair in zip(good, bad + [photo] * 2, strict=True) for frame in pair]
    stats = Stats()
    slot = FrameSlot(lambda frame: stats.drop(frame.superseded_reason))
    collect = Collect()
    outputs = Dispatcher([collect], stats)
    outputs.start()
    settings = InferenceSettings(
        Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1),
        PipelineConfig(max_frame_age_ms=60_000), ResultFilter(OutputsConfig(emit="every_frame",
                                                                             min_score=0.0)))
    inference = Inference(settings, slot, stats, outputs.emit, Watchdog(Notifier({})).kick,
                          lambda: False)
    first = ListSource(frames, slot, fail_first_read=True)
    sources = iter([first, ListSource(frames, slot)])
    capture = Capture(lambda: next(sources), slot, stats, stall_timeout_s=30)
    inference.start()
    capture.start()
    try:
        wait_for(capture.ended.is_set, 120, "the odd frames to be read")
        wait_for(lambda: stats.get("classified") + stats.get("dropped_bad_frame")
                 + stats.get("dropped_overwritten") >= len(frames), 120, "every frame accounted for")
    finally:
        capture.stop()
        inference.stop()
        outputs.close()
    assert inference.error is None
    assert stats.get("source_lost") == 1, "the corrupt read is a lost source, then a reconnect"
    assert stats.get("captured") == len(frames)
    assert stats.get("dropped_bad_frame") == len(bad)
    assert stats.get("classified") == len(frames) - len(bad)
    assert len(collect.results) == stats.get("classified")
