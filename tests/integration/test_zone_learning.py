"""Learning a zone on the Pi: `edgecam learn add --zone` from a live stream and from a snapshot.

The stream is two halves served live by ffmpeg (tests/streams.py): the left
half, zone `left`, shows state A (the cat) for some seconds, then state B (the
parrot), then C (Grace Hopper), each state also under another light and
framing for a while (a view never learned: tests/learn_views.py); the right
half, zone `right` on the ImageNet model, changes on its own schedule. A and B
are learned for zone `left` with `learn add --from-camera 3 --zone left`, each
from three frames of its first seconds (every connection to the server starts
the video from its beginning). The daemon, reading a new connection to the
stream (every frame it classifies is held out), must then report A, B and
`unknown` (C) in turn on the left, and the right zone the ImageNet labels of
its half. C is then learned from a snapshot (a whole frame as a JPEG) with
`learn add ... --zone left`, and a SIGHUP makes the left report it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from conftest import run_edgecam
from harness import EXPECTED_TOP1, Client, base_config, wait_for, write_config
from heads import EXTRACTOR
from learn_views import PHOTOS, TEST, photo
from streams import FFMPEG, StreamServer, build_scenes, free_port

from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head

pytestmark = pytest.mark.skipif(not os.access(FFMPEG, os.X_OK), reason="needs ffmpeg")

HALF = 240  # each half a square: zone left's crop is exactly the left picture
FPS = 10
SCENE_S = 2
A, B, C = "state A", "state B", "state C"
DIM, BRIGHT = TEST[3], TEST[1]  # dim-bottom-left, bottom-right-bright: never learned
# (left, right) per scene: left is A for 6 s (the last 2 s dim), B for 6 s (the last 2 s bright),
# then C for 2 s; right is Grace Hopper, then the parrot, then Grace Hopper again.
SCENES = [(("cat", None), "hopper"), (("cat", None), "hopper"), (("cat", DIM), "parrot"),
          (("parrot", None), "parrot"), (("parrot", None), "parrot"), (("parrot", BRIGHT), "hopper"),
          (("hopper", None), "hopper")]
LEFT_CYCLE = [A, B, "unknown"]
RIGHT_CYCLE = [EXPECTED_TOP1[PHOTOS[name]] for name in ("hopper", "parrot")]
# When learning starts after connecting (--countdown), and over how long its 3 frames are
# spread (--spread): A's frames at 0.5-1.5 s of its undimmed 0-4 s, B's at 7-8 s of its 6-10 s,
# a second or more from each change, for the time the reader takes to open the stream and any lag.
LEARN_A = ("0.5", "1")
LEARN_B = (str(3 * SCENE_S + 1), "1")
SNAPSHOT_S = 6 * SCENE_S + 1.0  # a frame in the middle of C
ZONES = [{"name": "left", "crop": [0.0, 0.0, 0.5, 1.0]},
         {"name": "right", "crop": [0.5, 0.0, 0.5, 1.0]}]


def square(name: str, view: Any = None) -> np.ndarray:
    image = photo(name) if view is None else view.apply(photo(name))
    return cv2.resize(image, (HALF, HALF), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zone-learning")
    frames = []
    for i, ((left, view), right) in enumerate(SCENES):
        path = folder / f"scene{i}.png"
        assert cv2.imwrite(str(path), np.hstack([square(left, view), square(right)]))
        frames.append(path)
    return build_scenes(folder / "halves.ts", frames, SCENE_S, FPS, size=(2 * HALF, HALF))


@pytest.fixture
def server(video: Path, tmp_path: Path) -> Iterator[StreamServer]:
    stream = StreamServer(video, free_port(), tmp_path / "ffmpeg.log")
    yield stream
    stream.close()


def snapshot(video: Path, at_s: float, out: Path) -> Path:
    """The whole frame `at_s` into the stream, as a JPEG: what a snapshot of the camera is."""
    with av.open(str(video)) as container:
        frames = container.decode(video=0)
        first = next(frames)
        assert first.time is not None  # MPEG-TS starts at an offset: times count from it
        frame = next(f for f in frames if f.time is not None and f.time - first.time >= at_s)
        assert cv2.imwrite(str(out), frame.to_ndarray(format="bgr24"))
    return out


def learn_from_stream(server: StreamServer, label: str, config: Path, countdown: str,
                      spread: str) -> None:
    """`learn add LABEL --from-camera 3 --zone left` on a new connection (the video from its start)."""
    server.close()
    server.start()
    result = run_edgecam("learn", "add", label, "--from-camera", "3", "--zone", "left",
                         "--countdown", countdown, "--spread", spread, "-c", config)
    assert result.returncode == 0, result.stderr
    assert "frame 3/3" in result.stderr and f"learned 3 example(s) of '{label}'" in result.stdout


def collapse(labels: list[str]) -> list[str]:
    return [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]


def assert_cycles(labels: list[str], cycle: list[str], what: str) -> None:
    """`labels` are `cycle` in turn, from wherever they start, each change once."""
    assert labels and labels[0] in cycle, f"{what}: {labels}"
    start = cycle.index(labels[0])
    assert labels == (cycle * (len(labels) // len(cycle) + 2))[start:start + len(labels)], \
        f"{what}: {labels} against the cycle {cycle}"


def read_zones(client: Client, seen: dict[str, list[str]], until: Callable[[], bool],
               what: str) -> None:
    """Reads results, each zone's top labels into `seen`, until `until()`."""
    def done() -> bool:
        message = client.message()
        if message["type"] == "classification":
            seen[message["zone"]].append(message["labels"][0]["label"])
        return until()
    wait_for(done, 120, what, interval=0)


def test_a_zone_learned_from_a_few_stream_frames_and_a_snapshot(
        tmp_path: Path, daemons, server: StreamServer, video: Path, embedder: Embedder) -> None:
    head = tmp_path / "left.head"
    config = base_config(tmp_path, camera={"source": server.url, "fps": FPS, "width": 2 * HALF,
                                           "height": HALF},
                         outputs={"emit": "on_change", "heartbeat_s": 0})
    config["zones"] = [{**ZONES[0], "model": {"path": str(EXTRACTOR), "head": str(head)}}, ZONES[1]]
    learning = write_config(tmp_path / "learn.yaml", config)

    learn_from_stream(server, A, learning, *LEARN_A)
    learn_from_stream(server, B, learning, *LEARN_B)
    learned = Head.load(head)
    assert [(c.label, c.count) for c in learned.classes] == [(A, 3), (B, 3)]
    # each state learned from its own frames: each prototype is that state's picture
    prototypes = learned.prototypes()
    for index, name in enumerate(("cat", "parrot")):
        similarity = prototypes @ embedder.embed(square(name))
        assert similarity[index] > 0.9 > similarity[1 - index], (name, similarity)

    server.close()
    server.start()
    daemon = daemons(config)
    client = daemon.client()
    seen: dict[str, list[str]] = {"left": [], "right": []}
    read_zones(client, seen, lambda: len(seen["left"]) >= 4, "the left zone through A, B, C and A")
    assert_cycles(seen["left"], LEFT_CYCLE, "left, learned A and B")

    # C from a snapshot: the whole frame, cut by the zone's rectangle before it is embedded
    still = snapshot(video, SNAPSHOT_S, tmp_path / "snapshot.jpg")
    result = run_edgecam("learn", "add", C, still, "--zone", "left", "-c", learning)
    assert result.returncode == 0, result.stderr
    assert f"learned 1 example(s) of '{C}'" in result.stdout and "set zones" not in result.stdout
    whole = cv2.imread(str(still))
    assert whole.shape[:2] == (HALF, 2 * HALF)
    third = Head.load(head).classes[2]
    np.testing.assert_allclose(third.sum, embedder.embed(whole[:, :HALF]), atol=1e-6)

    before = len(seen["left"])
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: zone left: model (files on disk)" in daemon.log(), 30, "the reload")
    read_zones(client, seen, lambda: C in seen["left"][before:], "the left zone to report C")
    reported = len(seen["left"])
    read_zones(client, seen, lambda: len(seen["left"]) >= reported + 3, "the left zone through C again")
    assert_cycles(seen["left"][reported - 1:], [C, A, B], "left, learned A, B and C")

    # the right zone: its half's ImageNet labels throughout, never a re-emission by the reload
    assert_cycles(seen["right"], RIGHT_CYCLE, "right")
    assert len(seen["right"]) >= 4
    assert "Traceback" not in daemon.log()


def test_zone_mistakes_are_one_line_and_the_default_zone_head(tmp_path: Path, embedder: Embedder) -> None:
    config = base_config(tmp_path, model={"path": str(EXTRACTOR)})
    config["zones"] = ZONES
    path = write_config(tmp_path / "zones.yaml", config)
    image = tmp_path / "snapshot.png"
    assert cv2.imwrite(str(image), np.hstack([square("cat"), square("parrot")]))

    result = run_edgecam("learn", "add", A, image, "--zone", "door", "-c", path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == ("edgecam: --zone door: no such zone in the config "
                                              "(its zones: left, right)")
    bare = write_config(tmp_path / "bare.yaml", base_config(tmp_path))
    result = run_edgecam("learn", "list", "--zone", "door", "-c", bare)
    assert result.stderr.splitlines()[-1] == ("edgecam: --zone door: the config has no zones: "
                                              "define door under zones: first")
    # without zones[].model.head the zone's head is heads/<zone>.head, which the daemon reads
    # only once the config names it: `learn add` says so
    result = run_edgecam("learn", "list", "--zone", "right", "-c", path)
    assert result.returncode == 66
    assert "/var/lib/edgecam/heads/right.head" in result.stderr.splitlines()[-1]
    elsewhere = tmp_path / "right.head"
    result = run_edgecam("learn", "add", A, image, "--zone", "right", "--head", elsewhere, "-c", path)
    assert result.returncode == 0, result.stderr
    assert (f"to classify zone 'right' with these classes, set zones[1].model.head: {elsewhere} in "
            "the config, then reload") in result.stdout
    np.testing.assert_allclose(Head.load(elsewhere).classes[0].sum,
                               embedder.embed(square("parrot")), atol=1e-6)
    result = run_edgecam("learn", "remove", A, "--zone", "right", "--head", elsewhere, "-c", path)
    assert result.returncode == 0 and "0 class(es) left" in result.stdout
