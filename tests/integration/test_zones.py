"""Zones on a real live stream: a picture whose left and right halves change independently.

The scenes are made from the test photos, one photo on each half (each half
a square, so a zone's crop is exactly one photo), and served live over TCP
by ffmpeg as in test_stream.py; the daemon reads it with PyAV. Two zones,
one per half, must each report their own half's labels in order, each with
its own on_change: a change on one side never makes the other side emit.
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

CAT, HOPPER, PARROT = "cat.bmp", "grace_hopper.bmp", "parrot.jpg"
# (left, right) per scene: the left changes at scene 3, the right at scenes 2 and 4.
SCENES = [(CAT, PARROT), (CAT, HOPPER), (PARROT, HOPPER), (PARROT, CAT)]
SCENE_S = 3
FPS = 10
HALF = 240
ZONES = [{"name": "left", "crop": [0.0, 0.0, 0.5, 1.0]},
         {"name": "right", "crop": [0.5, 0.0, 0.5, 1.0]}]


def side_by_side(left: str, right: str, out: Path) -> Path:
    halves = [cv2.resize(cv2.imread(str(IMAGES / name)), (HALF, HALF), interpolation=cv2.INTER_AREA)
              for name in (left, right)]
    cv2.imwrite(str(out), np.hstack(halves))
    return out


@pytest.fixture(scope="module")
def halves_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zones")
    frames = [side_by_side(left, right, folder / f"scene{i}.png")
              for i, (left, right) in enumerate(SCENES)]
    return build_scenes(folder / "halves.ts", frames, SCENE_S, FPS, size=(2 * HALF, HALF))


@pytest.fixture
def server(halves_video: Path, tmp_path: Path) -> Iterator[StreamServer]:
    stream = StreamServer(halves_video, free_port(), tmp_path / "ffmpeg.log")
    stream.start()
    yield stream
    stream.close()


def collapse(labels: list[str]) -> list[str]:
    return [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]


def expected(side: int) -> list[str]:
    """One side's labels over the looped stream, each change once."""
    return collapse([EXPECTED_TOP1[scene[side]] for scene in SCENES] * 3)


def test_each_zone_reports_its_own_half_in_order(tmp_path: Path, daemons, server: StreamServer) -> None:
    config = base_config(tmp_path, camera={"source": server.url, "fps": FPS, "width": 2 * HALF,
                                           "height": HALF},
                         outputs={"emit": "on_change", "heartbeat_s": 0})
    config["zones"] = ZONES
    daemon = daemons(config)
    client = daemon.client()
    seen: dict[str, list[str]] = {"left": [], "right": []}
    messages: list[dict[str, Any]] = []

    def two_loops() -> bool:
        message = client.message()
        messages.append(message)
        if message["type"] == "classification":
            seen[message["zone"]].append(message["labels"][0]["label"])
        return len(seen["left"]) >= 4 and len(seen["right"]) >= 6

    wait_for(two_loops, 120, "both zones through the scenes twice", interval=0)
    for side, name in enumerate(("left", "right")):
        labels = seen[name]
        assert labels == collapse(labels), f"{name}: on_change repeats nothing: {labels}"
        cycle = expected(side)
        start = cycle.index(labels[0])
        assert labels == cycle[start:start + len(labels)], f"{name}: {labels} against {cycle}"
    stats = wait_for(lambda: next((m for m in [client.message()] if m["type"] == "stats"), None),
                     30, "a stats message", interval=0)
    assert set(stats["zones"]) == {"left", "right"}
    for name in ("left", "right"):
        assert stats["zones"][name]["classified"] >= stats["zones"][name]["emitted"] >= len(seen[name])
    assert "Traceback" not in daemon.log()
