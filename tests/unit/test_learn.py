"""Learning (edgecam/models/fewshot/learn.py): into a head file, what a zone learns from, and from the
camera (a fake source).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from heads import model_config
from learn_views import TRAIN, views

import edgecam.models.fewshot.learn
from edgecam.cli.learn_camera import capture_frames
from edgecam.config import Config, parse_config
from edgecam.errors import EdgecamError, SourceError
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head
from edgecam.models.fewshot.learn import find_target
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


# --- the whole frame or a zone ---------------------------------------------------------------------

_ZONES = """
model: {path: /models/extractor.tflite, head: /heads/whole.head}
zones:
  - {name: door, crop: [0.5, 0.25, 0.5, 0.75], model: {path: /models/door.tflite, head: door.head}}
  - {name: feeder, crop: [0.0, 0.0, 0.5, 1.0]}
"""


def test_a_zone_has_its_own_head_and_extractor_never_the_whole_frames_head() -> None:
    config = parse_config(_ZONES, "zones.yaml", Path("/etc/edgecam"))
    whole = find_target(config, None)
    assert (whole.head_path, whole.model.path, whole.key) == (
        Path("/heads/whole.head"), "/models/extractor.tflite", "model")
    door = find_target(config, "door")
    assert (door.head_path, door.model.path, door.key) == (
        Path("/etc/edgecam/door.head"), "/models/door.tflite", "zones[0].model")
    feeder = find_target(config, "feeder")  # no head of its own: the default per zone
    assert (feeder.head_path, feeder.model.path, feeder.key) == (
        Path("/var/lib/edgecam/heads/feeder.head"), "/models/extractor.tflite", "zones[1].model")
    overridden = find_target(config, "door", "/tmp/other.head", "/tmp/other.tflite")
    assert (overridden.head_path, overridden.model.path) == (Path("/tmp/other.head"), "/tmp/other.tflite")
    with pytest.raises(EdgecamError, match=r"^--zone gate: no such zone in the config \(its zones: "
                                           r"door, feeder\)$"):
        find_target(config, "gate")
    with pytest.raises(EdgecamError, match="the config has no zones: define gate under zones: first"):
        find_target(Config(), "gate")


def test_a_zone_learns_from_its_rectangle_of_the_whole_frame() -> None:
    frame = np.arange(480 * 640 * 3, dtype=np.uint32).astype(np.uint8).reshape(480, 640, 3)
    config = parse_config(_ZONES, "zones.yaml")
    [door] = find_target(config, "door").view([frame])
    np.testing.assert_array_equal(door, frame[120:480, 320:640])
    [whole] = find_target(config, None).view([frame])
    assert whole is frame


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
    frames = capture_frames(Config().camera, (224, 224), 3, countdown_s=0.05,
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
        capture_frames(Config().camera, (224, 224), 5, countdown_s=0, spread_s=0,
                       say=lambda text: None)
    assert source.closed
