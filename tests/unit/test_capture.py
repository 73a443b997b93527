"""The capture thread (edgecam/pipeline/capture.py) with fake sources: ends, losses, errors, stalls.

Real threads; each fake source counts what it delivered, so the counts are exact.
Time limits only bound a hang; nothing here measures speed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from harness import wait_for

from edgecam.core.frames import Dropped
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.errors import SourceError
from edgecam.pipeline.capture import Capture
from edgecam.sources.base import Source

WAIT_S = 30.0
STALL_S = 0.3


class FakeSource(Source):
    """Delivers `frames` numbered images, then `then`: "end" (None), "hang" (until stop) or
    "block" (a read that ignores stop until `release` is set)."""

    name = "fake"

    def __init__(self, frames: int = 3, then: str = "end", *, finite: bool = False,
                 on_demand: bool = False, behind_ms: list[float | None] | None = None,
                 drop_every: int = 0) -> None:
        self.frames = frames
        self.then = then
        self.finite = finite
        self.on_demand = on_demand
        self._behind = list(behind_ms or [])
        self._drop_every = drop_every
        self.reads = 0
        self.delivered = 0
        self.opened = 0
        self.closed = threading.Event()
        self.release = threading.Event()

    def open(self) -> None:
        self.opened += 1

    def read(self, stop: threading.Event) -> np.ndarray | Dropped | None:
        self.reads += 1
        if self.delivered < self.frames:
            self.delivered += 1
            if self._behind:
                self.behind_ms = self._behind.pop(0)
            if self._drop_every and self.delivered % self._drop_every == 0:
                return Dropped("skipped_to_keyframe")
            return np.full((4, 4, 3), self.delivered, np.uint8)
        if self.then == "hang":
            stop.wait()
        elif self.then == "block":
            self.release.wait()
        return None

    def close(self) -> None:
        self.closed.set()


class FailingOpen(Source):
    name = "failing"

    def __init__(self) -> None:
        self.opened = 0

    def open(self) -> None:
        self.opened += 1
        raise SourceError("failing: no such camera")

    def read(self, stop: threading.Event) -> None:
        raise AssertionError("a source that did not open is never read")

    def close(self) -> None:
        pass


class RaisingRead(FakeSource):
    """Delivers its frames, then its read raises (a driver error)."""

    def read(self, stop: threading.Event) -> np.ndarray | Dropped | None:
        if self.delivered >= self.frames:
            raise RuntimeError("driver exploded")
        return super().read(stop)


class Rig:
    """A slot, stats and a Capture over the given sources (one per open), and a consumer that takes."""

    def __init__(self, sources: list[Source], stall_timeout_s: float = 30.0) -> None:
        self.sources = sources
        self.made = 0
        self.stats = Stats()
        self.slot = FrameSlot(lambda frame: self.stats.drop(frame.superseded_reason))
        self.taken: list[int] = []
        self.capture = Capture(self._make, self.slot, self.stats, stall_timeout_s=stall_timeout_s)

    def _make(self) -> Source:
        if self.made >= len(self.sources):
            raise AssertionError("asked for more sources than the test planned")
        source = self.sources[self.made]
        self.made += 1
        return source

    def take_all(self) -> None:
        while (frame := self.slot.take(0)) is not None:
            self.taken.append(frame.seq)

    def wait(self, predicate: Callable[[], object], what: str) -> None:
        wait_for(predicate, WAIT_S, what)

    def delivered(self) -> int:
        return sum(getattr(source, "delivered", 0) for source in self.sources)


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(sources: list[Source], **kw) -> Rig:
        made = Rig(sources, **kw)
        rigs.append(made)
        made.capture.start()
        return made

    yield make
    for made in rigs:
        made.capture.stop(WAIT_S)
        for source in made.sources:
            if isinstance(source, FakeSource):
                source.release.set()


def test_a_finite_source_that_ends_sets_ended_and_is_not_reopened(rig) -> None:
    source = FakeSource(5, finite=True)
    run = rig([source])
    run.wait(run.capture.ended.is_set, "the end of the file")
    assert run.made == 1 and source.opened == 1
    assert source.closed.is_set()
    assert run.stats.get("captured") == source.delivered == 5
    assert run.stats.get("source_lost") == run.stats.get("reconnects") == 0
    run.take_all()
    # every captured frame is either in the slot (taken now) or was overwritten, numbered in order
    assert len(run.taken) + run.stats.get("dropped_overwritten") == 5
    assert run.taken == [5]


def test_a_source_that_is_lost_is_counted_and_reopened(rig) -> None:
    """A live source whose read returns None is lost, not ended: it is reopened (counted)."""
    lost = [FakeSource(2), FakeSource(3)]
    last = FakeSource(1, finite=True)
    run = rig([*lost, last])
    run.wait(run.capture.ended.is_set, "the last source to end")
    assert run.made == 3
    assert all(source.opened == 1 and source.closed.is_set() for source in (*lost, last))
    assert run.stats.get("source_lost") == 2
    assert run.stats.get("reconnects") == 2
    assert run.stats.get("captured") == run.delivered() == 6
    assert run.stats.get("stalls") == run.stats.get("source_errors") == 0


def test_a_read_that_raises_is_a_lost_source_and_capture_goes_on(rig) -> None:
    broken = RaisingRead(2)
    last = FakeSource(1, finite=True)
    run = rig([broken, last])
    run.wait(run.capture.ended.is_set, "the next source to end")
    assert broken.closed.is_set()
    assert run.stats.get("source_lost") == 1 and run.stats.get("reconnects") == 1
    assert run.stats.get("captured") == 3


def test_a_source_that_cannot_open_counts_source_errors_and_is_retried(rig) -> None:
    failing = [FailingOpen(), FailingOpen()]
    last = FakeSource(2, finite=True)
    run = rig([*failing, last])
    run.wait(run.capture.ended.is_set, "the source that opens to end")
    assert [source.opened for source in failing] == [1, 1]
    assert run.stats.get("source_errors") == 2
    assert run.stats.get("reconnects") == 2
    assert run.stats.get("source_lost") == 0, "a source that never opened was never lost"
    assert run.stats.get("captured") == 2


def test_a_source_that_stops_delivering_is_a_stall_and_is_reopened(rig) -> None:
    """No frame for stall_timeout_s: the reader is stopped (its read honours stop), the source
    closed and a new one opened."""
    silent = FakeSource(2, then="hang")
    last = FakeSource(1, finite=True)
    run = rig([silent, last], stall_timeout_s=STALL_S)
    run.wait(run.capture.ended.is_set, "the next source after the stall")
    assert run.stats.get("stalls") == 1
    assert silent.closed.is_set()
    assert run.stats.get("abandoned_reads") == 0, "a read that honours stop is not abandoned"
    assert run.stats.get("source_lost") == 0
    assert run.stats.get("reconnects") == 1
    assert run.stats.get("captured") == 3


def test_a_read_that_never_returns_is_abandoned_and_the_next_source_takes_over(rig) -> None:
    stuck = FakeSource(1, then="block")
    last = FakeSource(2, finite=True)
    run = rig([stuck, last], stall_timeout_s=STALL_S)
    run.wait(run.capture.ended.is_set, "the next source after the abandoned read")
    assert run.stats.get("stalls") == 1
    assert run.stats.get("abandoned_reads") == 1
    assert run.stats.get("captured") == 3
    assert not stuck.closed.is_set(), "the blocked read still owns its source"
    stuck.release.set()
    wait_for(stuck.closed.is_set, WAIT_S, "the abandoned source to close once its read returns")
    assert run.stats.get("captured") == 3, "nothing the abandoned read returns later is captured"


def test_an_on_demand_source_is_read_only_once_its_frame_was_taken(rig) -> None:
    """Files at realtime: false: the next frame is read only once inference took the last; the
    wait for inference is neither a stall nor a drop."""
    source = FakeSource(4, finite=True, on_demand=True)
    run = rig([source], stall_timeout_s=STALL_S)
    wait_for(lambda: source.reads == 1, WAIT_S, "the first read")
    threading.Event().wait(4 * STALL_S)  # nobody takes: a continuous source would read on
    assert source.reads == 1
    assert run.stats.get("stalls") == 0
    for seq in (1, 2, 3, 4):
        frame = run.slot.take(WAIT_S)
        assert frame is not None and frame.seq == seq
        assert int(frame.decode()[0, 0, 0]) == seq
    run.wait(run.capture.ended.is_set, "the end")
    assert run.stats.get("captured") == 4
    assert run.stats.get("dropped_overwritten") == 0, "no frame read just to be dropped"


def test_a_continuous_source_reads_on_and_overwrites_what_was_not_taken(rig) -> None:
    source = FakeSource(50, finite=True)
    run = rig([source])
    run.wait(run.capture.ended.is_set, "the end")
    run.take_all()
    assert source.reads == 51  # 50 frames, then the end
    assert run.stats.get("captured") == 50
    assert run.stats.get("dropped_overwritten") == 49 and run.taken == [50]


def test_frames_dropped_by_the_source_are_captured_and_counted_not_put(rig) -> None:
    source = FakeSource(6, finite=True, on_demand=True, drop_every=3)
    run = rig([source])
    for _ in range(4):
        frame = run.slot.take(WAIT_S)
        assert frame is not None
        run.taken.append(frame.seq)
    run.wait(run.capture.ended.is_set, "the end")
    assert run.stats.get("captured") == 6
    assert run.stats.get("dropped_skipped_to_keyframe") == 2
    assert run.taken == [1, 2, 4, 5], "sequence numbers count every captured frame"


def test_how_far_behind_live_the_source_is_becomes_the_behind_ms_gauge(rig) -> None:
    source = FakeSource(2, on_demand=True, finite=True, behind_ms=[1234.56, None])
    run = rig([source])  # on demand: the reader waits for each frame to be taken
    run.wait(lambda: run.stats.get("captured") == 1, "the first frame")
    assert run.stats.figures()["source"]["behind_ms"] == 1234.6
    assert run.slot.take(WAIT_S) is not None
    run.wait(lambda: run.stats.get("captured") == 2, "the second frame")
    assert run.stats.figures()["source"]["behind_ms"] is None, "a source that cannot tell clears it"
    assert run.slot.take(WAIT_S) is not None
    run.wait(run.capture.ended.is_set, "the end")


def test_stop_ends_the_capture_thread_and_closes_the_source(rig) -> None:
    source = FakeSource(1, then="hang")
    run = rig([source])
    wait_for(lambda: source.reads == 2, WAIT_S, "the source to wait for its next frame")
    assert not source.closed.is_set()
    run.capture.stop(WAIT_S)
    wait_for(source.closed.is_set, WAIT_S, "the source to be closed")
    assert source.reads == 2
    assert not run.capture.ended.is_set()
    assert run.stats.get("stalls") == run.stats.get("source_lost") == 0
