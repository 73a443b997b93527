"""Learning (edgecam/models/fewshot/learn.py): into a head file, and from the camera (a fake source).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from heads import model_config
from learn_views import TRAIN, views

import edgecam.models.fewshot.learn
from edgecam.config import Config
from edgecam.errors import SourceError
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head
from edgecam.sources.base import Source

# --- into a head file ------------------------------------------------------------------------------


def test_learning_into_a_file_creates_then_extends_the_head(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "heads" / "default.head"
    config = model_config(path)
    done = edgecam.models.fewshot.learn.learn(config, path, "  cat ", views("cat", TRAIN[:2]), embedder)
    assert (done.created, done.label, done.index, done.added, done.count) == (True, "cat", 0, 2, 2)
    done = edgecam.models.fewshot.learn.learn(config, path, "parrot", views("parrot", TRAIN), embedder)
    assert (done.created, done.index, done.labels) == (False, 1, ["cat", "parrot"])
    done = edgecam.models.fewshot.learn.learn(config, path, "cat", views("cat", TRAIN[2:]), embedder)
    assert (done.index, done.count) == (0, 3)
    assert [(c.label, c.count) for c in Head.load(path).classes] == [("cat", 3), ("parrot", 3)]


# --- from the camera --------------------------------------------------------------------------------


class _FakeSource(Source):
    """Numbered frames at once; `fail_after` frames, then the camera is lost."""

    name = "fake"

    def __init__(self, fail_after: int | None = None) -> None:
        self.reads = 0
        self.opened = self.closed = False
        self._fail_after = fail_after

    def open(self) -> None:
        self.opened = True

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self._fail_after is not None and self.reads >= self._fail_after:
            return None
        stop.wait(0.002)  # a camera at 500 fps
        self.reads += 1
        frame = np.zeros((4, 4, 3), np.uint8)
        frame[0, 0, :2] = divmod(self.reads, 256)
        return frame

    def close(self) -> None:
        self.closed = True


def test_frames_from_the_camera_are_spread_and_the_camera_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecam.sources

    source = _FakeSource()
    monkeypatch.setattr(edgecam.sources, "make_source", lambda camera, size: source)
    said: list[str] = []
    frames = edgecam.models.fewshot.learn.capture_frames(Config().camera, (224, 224), 3, countdown_s=0.05,
                                          spread_s=0.05, say=said.append)
    assert len(frames) == 3 and source.opened and source.closed
    assert said[:2] == ["3 frame(s) from picamera2 over 0.05 s, starting in 0.05 s", "1…"]
    assert said[-3:] == ["frame 1/3", "frame 2/3", "frame 3/3"]
    numbers = [int(frame[0, 0, 0]) * 256 + int(frame[0, 0, 1]) for frame in frames]
    assert numbers == sorted(set(numbers))  # different frames, in order, not one frame thrice
    assert numbers[0] > 1  # frames read during the countdown were not kept


def test_a_lost_camera_is_one_line_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecam.sources

    source = _FakeSource(fail_after=2)
    monkeypatch.setattr(edgecam.sources, "make_source", lambda camera, size: source)
    with pytest.raises(SourceError, match=r"fake: no more frames after 2 of 5 \(nothing was learned\)"):
        edgecam.models.fewshot.learn.capture_frames(Config().camera, (224, 224), 5, countdown_s=0, spread_s=0,
                                     say=lambda text: None)
    assert source.closed
