"""The real daemon on a real live stream: ffmpeg serving the test photos as scenes over TCP.

The daemon reads tcp://127.0.0.1:PORT with PyAV while
ffmpeg (`-re -stream_loop -1 ... -f mpegts tcp://...?listen=1`) serves a video
of the photos, one scene after another. The tests then kill and freeze that
ffmpeg and check that the daemon reports it, stays up and recovers.

ffmpeg's TCP listener serves one connection: once the daemon drops it (a lost
or stalled source), a new ffmpeg on the same port is what the daemon reconnects
to, as a restarted camera would be.

Time limits here only bound a hang; no assertion measures speed.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import EXPECTED_TOP1, IMAGES, Client, base_config
from streams import FFMPEG, StreamServer, build_scenes, free_port, h264

pytestmark = pytest.mark.skipif(not os.access(FFMPEG, os.X_OK), reason="needs ffmpeg")

SCENES = ("cat.bmp", "grace_hopper.bmp", "parrot.jpg")
CYCLE = [EXPECTED_TOP1[name] for name in SCENES]  # Egyptian cat → military uniform → macaw → …
SCENE_S = 3
FPS = 10
STALL_TIMEOUT_S = 2.0
# Bounds on a hang, never measures: generous on purpose.
WAIT_S = 30.0
STATS_WAIT_S = 30.0


@pytest.fixture(scope="module")
def scenes_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stream") / "scenes.ts"
    return build_scenes(out, [IMAGES / name for name in SCENES], SCENE_S, FPS)


@pytest.fixture(scope="module")
def h264_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same scenes as an IP camera sends them: H.264, a keyframe a second, no B-frames."""
    out = tmp_path_factory.mktemp("stream") / "scenes-h264.ts"
    return build_scenes(out, [IMAGES / name for name in SCENES], SCENE_S, FPS, h264(FPS))


@pytest.fixture
def stream_server(scenes_video: Path, tmp_path: Path) -> Iterator[Callable[..., StreamServer]]:
    """Starts ffmpeg servers; each one is continued (if stopped), killed and reaped at teardown."""
    servers: list[StreamServer] = []

    def start(video: Path = scenes_video) -> StreamServer:
        server = StreamServer(video, free_port(), tmp_path / f"ffmpeg-{len(servers)}.log")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


class Session:
    """One socket client of a running daemon: keeps every message, and waits on them or the log."""

    def __init__(self, daemon: Any, server: StreamServer) -> None:
        self.daemon = daemon
        self.server = server
        self.client: Client = daemon.client()
        self.client.sock.settimeout(0.2)
        self.results: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []

    def pump(self, seconds: float = 0.2) -> None:
        """Reads what arrives in the next `seconds` (messages may keep coming: it returns anyway)."""
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                message = self.client.message()
                (self.results if message["type"] == "classification" else self.stats).append(message)
        except TimeoutError:
            pass

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        """Reads messages until `predicate()` is truthy; fails if the daemon exits or on a hang."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            value = predicate()
            if value:
                return value
            assert self.daemon.proc.poll() is None, (
                f"the daemon exited with {self.daemon.proc.returncode} waiting for {what}\n"
                f"{self.context()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                     f"{self.context()}")

    def log_since(self, offset: int) -> str:
        return self.daemon.log()[offset:]

    def results_after(self, wall: float) -> list[dict[str, Any]]:
        """Results for frames captured after `wall` (time.time())."""
        return [m for m in self.results if m["ts"] > wall]

    def context(self) -> str:
        labels = [(m["seq"], m["labels"][0]["label"]) for m in self.results[-20:]]
        sources = [m["source"] for m in self.stats[-3:]]
        return (f"last results: {labels}\nlast stats.source: {sources}\n"
                f"--- daemon log:\n{self.daemon.log()}\n--- ffmpeg log:\n{self.server.log()}")


def top_labels(results: list[dict[str, Any]]) -> list[str]:
    return [m["labels"][0]["label"] for m in results]


def collapse(labels: list[str]) -> list[str]:
    """Consecutive repeats (heartbeats) folded into one."""
    return [label for i, label in enumerate(labels) if i == 0 or label != labels[i - 1]]


def follows_cycle(labels: list[str]) -> bool:
    """Whether every step goes to the next scene of the cycle (starting anywhere in it)."""
    return all(a in CYCLE and b == CYCLE[(CYCLE.index(a) + 1) % len(CYCLE)]
               for a, b in itertools.pairwise(labels)) and all(x in CYCLE for x in labels)


def counted(session: Session, event: str, baseline: dict[str, int]) -> dict[str, Any] | None:
    """The newest stats message if its `source.<event>` counter went up from `baseline`."""
    if session.stats and session.stats[-1]["source"][event] > baseline[event]:
        return session.stats[-1]
    return None


def start_daemon(tmp_path: Path, daemons: Callable[..., Any], server: StreamServer,
                 emit: str) -> Session:
    config = base_config(tmp_path, camera={"source": server.url, "stall_timeout_s": STALL_TIMEOUT_S},
                         outputs={"emit": emit})
    return Session(daemons(config), server)


def flowing(session: Session) -> dict[str, Any]:
    """Waits until results flow and a first stats message (the counters' baseline) has come."""
    session.until(lambda: session.results and session.stats, "results and a first stats message",
                  STATS_WAIT_S)
    assert set(top_labels(session.results)) <= set(CYCLE), session.context()
    return session.stats[-1]["source"]


def test_scenes_are_reported_in_order(tmp_path: Path, daemons, stream_server) -> None:
    """emit: on_change on a live stream: one result per scene change, in the video's order."""
    server = stream_server()
    session = start_daemon(tmp_path, daemons, server, "on_change")
    # Four changes: every scene, and the loop from the last scene back to the first.
    session.until(lambda: len(collapse(top_labels(session.results))) >= len(CYCLE) + 2,
                  "four scene changes", WAIT_S + 4 * SCENE_S)
    labels = collapse(top_labels(session.results))
    assert follows_cycle(labels), f"{labels}\n{session.context()}"
    assert set(labels) == set(CYCLE)
    seqs = [m["seq"] for m in session.results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_an_h264_stream_is_read_live_and_every_frame_is_accounted_for(
        tmp_path: Path, daemons, stream_server, h264_video: Path) -> None:
    """H.264 through PyAV: scenes in order, `behind_ms` reported, and the counters add up:
    every frame captured was classified or dropped for a named reason (± the few in flight)."""
    server = stream_server(h264_video)
    session = start_daemon(tmp_path, daemons, server, "on_change")
    session.until(lambda: len(collapse(top_labels(session.results))) >= len(CYCLE) + 1,
                  "three scene changes", WAIT_S + 3 * SCENE_S)
    assert follows_cycle(collapse(top_labels(session.results))), session.context()
    session.until(lambda: len(session.stats) >= 2, "two stats messages", STATS_WAIT_S)
    stats = session.stats[-1]
    frames = stats["frames"]
    # Issue 10's reasons, the AI Camera's (frames its sensor skipped: none here), motion gating's.
    assert set(frames["dropped_by_reason"]) == {"overwritten", "undecoded", "skipped_to_keyframe",
                                                "stale", "bad_frame", "sensor_skipped", "still"}
    assert frames["dropped_by_reason"]["sensor_skipped"] == 0
    assert frames["dropped_by_reason"]["still"] == 0  # motion gating is off by default
    assert frames["dropped"] == sum(frames["dropped_by_reason"].values())
    assert 0 <= frames["captured"] - frames["classified"] - frames["dropped"] <= 3, frames
    assert isinstance(stats["source"]["behind_ms"], float), stats["source"]
    assert "via PyAV" in session.daemon.log()


def test_killed_server_is_reported_and_a_restarted_one_is_read_again(
        tmp_path: Path, daemons, stream_server) -> None:
    """SIGKILL ffmpeg: the daemon counts a lost source, keeps retrying, and reads the new server."""
    server = stream_server()
    session = start_daemon(tmp_path, daemons, server, "every_frame")
    pid = session.daemon.pid
    baseline = flowing(session)
    log_offset = len(session.daemon.log())

    server.kill()
    session.until(lambda: "lost" in session.log_since(log_offset), "the daemon to log the loss")
    # It keeps trying (and failing: nothing listens) without exiting.
    session.until(lambda: "cannot open" in session.log_since(log_offset), "a failed reconnect")
    assert session.daemon.proc.poll() is None

    server.start()  # the same port: the camera is back
    restarted_at = time.time()
    recovered = session.until(lambda: session.results_after(restarted_at), "results from the new server")
    assert set(top_labels(recovered)) <= set(CYCLE), session.context()
    assert session.daemon.proc.poll() is None and session.daemon.pid == pid

    stats = session.until(lambda: counted(session, "source_lost", baseline),
                          "a stats message counting the lost source", STATS_WAIT_S)
    source = stats["source"]
    assert source["reconnects"] > baseline["reconnects"], session.context()
    assert source["source_errors"] > baseline["source_errors"], session.context()  # the refused opens
    seqs = [m["seq"] for m in session.results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_frozen_server_is_a_stall_and_the_daemon_recovers(
        tmp_path: Path, daemons, stream_server) -> None:
    """SIGSTOP ffmpeg (the connection stays open, nothing arrives): a stall is detected, then recovery."""
    server = stream_server()
    session = start_daemon(tmp_path, daemons, server, "every_frame")
    pid = session.daemon.pid
    baseline = flowing(session)
    log_offset = len(session.daemon.log())

    server.pause()
    paused = time.monotonic()
    session.until(lambda: "stalled" in session.log_since(log_offset), "the daemon to log a stall")
    detected_s = time.monotonic() - paused
    print(f"stall detected {detected_s:.1f} s after SIGSTOP (stall_timeout_s {STALL_TIMEOUT_S})")
    assert session.daemon.proc.poll() is None

    # The daemon dropped the frozen connection; the one-client listener cannot take another.
    server.resume()
    server.kill()
    server.start()
    restarted_at = time.time()
    recovered = session.until(lambda: session.results_after(restarted_at), "results from the new server")
    assert set(top_labels(recovered)) <= set(CYCLE), session.context()
    assert session.daemon.proc.poll() is None and session.daemon.pid == pid

    stats = session.until(lambda: counted(session, "stalls", baseline),
                          "a stats message counting the stall", STATS_WAIT_S)
    assert stats["source"]["stalls"] > baseline["stalls"]


def test_a_camera_that_answers_after_start_is_waited_for(tmp_path: Path, daemons,
                                                         scenes_video: Path) -> None:
    """An IP camera still booting when the service starts: said once, then read when it answers."""
    server = StreamServer(scenes_video, free_port(), tmp_path / "ffmpeg-late.log")
    try:
        config = base_config(tmp_path, camera={"source": server.url, "fps": FPS,
                                               "stall_timeout_s": STALL_TIMEOUT_S})
        daemon = daemons(config)
        client = daemon.client()
        stats = client.messages("stats", 1)[0]  # 5 s after start: several retries behind it
        assert stats["source"]["source_errors"] >= 2 and stats["frames"]["classified"] == 0
        server.start()
        assert set(m["labels"][0]["label"] for m in client.results(5)) <= set(CYCLE)
        log = daemon.log()
        assert log.count("waiting for the camera") == 1, log
        assert "delivering frames again" in log
    finally:
        server.close()
