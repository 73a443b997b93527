"""Motion gating on a real live stream: still scenes with sensor noise, served as raw MJPEG.

The photos, a few seconds each, 720p with temporal sensor noise (ffmpeg's `noise`, std about 3),
encoded as MJPEG and served live over TCP by ffmpeg; the daemon reads it with PyAV, motion
gating on. It must see every scene change (the labels follow the cycle), count the frames it
kept from the model as `still`, and its heartbeat must carry on through a still scene, marked
`still`. A second stream has two halves that change at different times: each zone is
classified when its own half changes. Only functions are checked here, never CPU or speed
(bench/motion.py measures those); time limits only bound a hang.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from harness import EXPECTED_TOP1, IMAGES, base_config, wait_for
from streams import FFMPEG, StreamServer, build_scenes, free_port

pytestmark = pytest.mark.skipif(not os.access(FFMPEG, os.X_OK), reason="needs ffmpeg")

SCENES = ["cat.bmp", "parrot.jpg", "grace_hopper.bmp"]
SCENE_S = 4
FPS = 10
NOISE = "noise=alls=5:allf=t"  # std 2.9 on the luma
MJPEG = ("-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p")
MOTION = {"enabled": True, "threshold": 0.02, "max_still_s": 600}


@pytest.fixture(scope="module")
def noisy_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("motion")
    return build_scenes(folder / "still.mkv", [IMAGES / name for name in SCENES], SCENE_S, FPS, MJPEG,
                        size=(1280, 720), filters=NOISE)


@pytest.fixture
def server(noisy_video: Path, tmp_path: Path) -> Iterator[StreamServer]:
    stream = StreamServer(noisy_video, free_port(), tmp_path / "ffmpeg.log", muxer="mjpeg")
    stream.start()
    yield stream
    stream.close()


def collapse(labels: list[str]) -> list[str]:
    return [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]


def test_still_scenes_are_not_classified_and_no_change_is_missed(tmp_path: Path, daemons,
                                                                   server: StreamServer) -> None:
    config = base_config(tmp_path, camera={"source": server.url, "fps": FPS, "width": 1280, "height": 720},
                         pipeline={"motion": MOTION},
                         outputs={"emit": "on_change", "heartbeat_s": 1.5, "min_score": 0.0})
    daemon = daemons(config)
    client = daemon.client()
    changes: list[str] = []
    still: list[dict[str, Any]] = []

    def five_changes() -> bool:
        message = client.message()
        if message["type"] == "classification":
            label = message["labels"][0]["label"]
            if message.get("still"):
                still.append(message)
                assert changes and label == changes[-1], "a still heartbeat repeats the current label"
            elif not changes or label != changes[-1]:
                changes.append(label)
        return len(changes) >= 6

    wait_for(five_changes, 120, "five scene changes", interval=0)
    cycle = [EXPECTED_TOP1[name] for name in SCENES] * 3
    start = cycle.index(changes[0])
    assert changes == cycle[start:start + len(changes)], f"every change seen, in order: {changes}"
    assert still, "the heartbeat goes on through a still scene, marked still"
    assert all(m["inference_ms"] == 0 for m in still)
    stats = wait_for(lambda: next((m for m in [client.message()] if m["type"] == "stats"), None),
                     30, "a stats message", interval=0)
    frames = stats["frames"]
    assert frames["dropped_by_reason"]["still"] > frames["classified"], frames
    assert frames["dropped"] == sum(frames["dropped_by_reason"].values())
    assert "Traceback" not in daemon.log()


HALF = 240
# (left, right) per scene: the right changes at scenes 1 and 3, the left at scene 2 (and both at the loop).
HALVES = [("cat.bmp", "parrot.jpg"), ("cat.bmp", "grace_hopper.bmp"), ("parrot.jpg", "grace_hopper.bmp"),
          ("parrot.jpg", "cat.bmp")]


@pytest.fixture
def halves_server(tmp_path: Path) -> Iterator[StreamServer]:
    frames = []
    for i, pair in enumerate(HALVES):
        halves = [cv2.resize(cv2.imread(str(IMAGES / name)), (HALF, HALF), interpolation=cv2.INTER_AREA)
                  for name in pair]
        cv2.imwrite(str(tmp_path / f"scene{i}.png"), np.hstack(halves))
        frames.append(tmp_path / f"scene{i}.png")
    video = build_scenes(tmp_path / "halves.mkv", frames, 3, FPS, MJPEG, size=(2 * HALF, HALF), filters=NOISE)
    stream = StreamServer(video, free_port(), tmp_path / "ffmpeg.log", muxer="mjpeg")
    stream.start()
    yield stream
    stream.close()


def test_each_zone_is_classified_when_its_own_half_changes(tmp_path: Path, daemons,
                                                          halves_server: StreamServer) -> None:
    config = base_config(tmp_path, camera={"source": halves_server.url, "fps": FPS, "width": 2 * HALF,
                                           "height": HALF},
                         pipeline={"motion": MOTION}, outputs={"emit": "every_frame", "min_score": 0.0})
    config["zones"] = [{"name": "left", "crop": [0.0, 0.0, 0.5, 1.0]},
                       {"name": "right", "crop": [0.5, 0.0, 0.5, 1.0]}]
    daemon = daemons(config)
    client = daemon.client()
    seen: dict[str, list[str]] = {"left": [], "right": []}
    order: list[str] = []

    def two_loops() -> bool:
        message = client.message()
        if message["type"] == "classification":
            seen[message["zone"]].append(message["labels"][0]["label"])
            order.append(message["zone"])
        return len(collapse(seen["left"])) >= 4 and len(collapse(seen["right"])) >= 6

    wait_for(two_loops, 120, "both zones through the scenes twice", interval=0)
    for side, name in enumerate(("left", "right")):
        cycle = collapse([EXPECTED_TOP1[scene[side]] for scene in HALVES] * 3)
        labels = collapse(seen[name])
        start = cycle.index(labels[0])
        assert labels == cycle[start:start + len(labels)], f"{name}: {labels} against {cycle}"
    # Every frame classified would be one result per zone per frame: the left half changes at 2
    # of 4 scene changes, the right at 3, so the right is classified more often.
    assert len(seen["left"]) < len(seen["right"]), order
    stats = wait_for(lambda: next((m for m in [client.message()] if m["type"] == "stats"), None),
                     30, "a stats message", interval=0)
    assert stats["zones"]["left"]["still"] > stats["zones"]["left"]["classified"], stats["zones"]
    assert stats["zones"]["right"]["still"] > stats["zones"]["right"]["classified"], stats["zones"]
    assert "Traceback" not in daemon.log()
