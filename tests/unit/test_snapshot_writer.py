"""The snapshot writer (edgecam/snapshots/writer.py) with a real store, dispatcher and files.

What inference would hand it (results, label changes with their frame) is
emitted from the test thread, faster than frames can be encoded and written:
every result still reaches the outputs, in order, each `snapshot` naming
files that were there when it arrived, and every change not saved counted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from fakes import Collect, result
from harness import wait_for

from edgecam.config import SnapshotsConfig
from edgecam.core.results import Result
from edgecam.core.stats import Stats
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.snapshots.writer import Shot, SnapshotWriter

WAIT_S = 30.0
FRAME = np.random.default_rng(13).integers(0, 256, (480, 640, 3), np.uint8)  # noise: a slow JPEG


class Checked(Collect):
    """Collects results and checks, as each arrives, that its snapshot's files are there."""

    def __init__(self) -> None:
        super().__init__()
        self.missing: list[str] = []

    def emit(self, result: Result) -> None:
        if result.snapshot_path is not None:
            jpeg = Path(result.snapshot_path)
            sidecar = jpeg.with_suffix(".json")
            if not (jpeg.is_file() and sidecar.is_file()
                    and json.loads(sidecar.read_text())["message"] == result.message()):
                self.missing.append(result.snapshot_path)
        super().emit(result)


@pytest.fixture
def rig(tmp_path: Path):
    stats = Stats()
    checked = Checked()
    dispatcher = Dispatcher([checked], stats)
    dispatcher.start()
    writers: list[SnapshotWriter] = []

    def start(**config) -> SnapshotWriter:
        writer = SnapshotWriter(SnapshotsConfig(enabled=True, dir=str(tmp_path / "snaps"), **config),
                                dispatcher.emit, stats)
        writer.start()
        writers.append(writer)
        return writer

    yield start, stats, checked
    for writer in writers:
        writer.close()
    dispatcher.close()


def test_a_burst_of_changes_keeps_order_and_counts_every_frame_not_saved(rig) -> None:
    start, stats, checked = rig
    writer = start()
    shots = 0
    for seq in range(1, 61):
        heartbeat = seq % 3 == 0
        writer.emit(result(seq), None if heartbeat else Shot(FRAME))
        shots += not heartbeat
    writer.close()
    wait_for(lambda: len(checked.results) == 60, WAIT_S, "every result")
    assert checked.seqs == list(range(1, 61))
    assert checked.missing == []
    saved, dropped = stats.get("snapshots_saved"), stats.get("snapshots_dropped")
    assert stats.get("snapshots_failed") == 0
    assert saved + dropped == shots and saved >= 1 and dropped >= 1
    assert sum(r.snapshot_path is not None for r in checked.results) == saved
    assert all(r.snapshot_path is None for r in checked.results if r.seq % 3 == 0)


def test_a_folder_that_cannot_be_written_is_warned_once_counted_and_retried(
        rig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    start, stats, checked = rig
    blocker = tmp_path / "snaps"
    blocker.write_text("a file where the folder should be")
    caplog.set_level(logging.INFO, "edgecam.snapshots")
    writer = start()
    for seq in range(1, 6):
        writer.emit(result(seq), Shot(FRAME))
        wait_for(lambda n=seq: len(checked.results) == n, WAIT_S, f"result {seq}")
    assert [r.snapshot_path for r in checked.results] == [None] * 5
    assert stats.get("snapshots_failed") == 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "snapshots: not saved" in warnings[0].getMessage()
    blocker.unlink()
    writer.emit(result(6), Shot(FRAME))
    wait_for(lambda: len(checked.results) == 6, WAIT_S, "result 6")
    assert checked.results[-1].snapshot_path is not None and stats.get("snapshots_saved") == 1
    assert any("saving again" in r.getMessage() for r in caplog.records)
    assert checked.missing == []


def test_closing_hands_on_what_waits_and_then_sends_straight_through(rig, tmp_path: Path) -> None:
    start, stats, checked = rig
    writer = start(max_files=2)
    for seq in range(1, 4):
        writer.emit(result(seq), Shot(FRAME, (0.5, 0.0, 0.5, 1.0)))
    writer.close()
    writer.emit(result(4), Shot(FRAME))  # a reload swapped it out, inference had not seen it yet
    wait_for(lambda: len(checked.results) == 4, WAIT_S, "every result")
    assert [r.snapshot_path is not None for r in checked.results] == [True, True, True, False]
    assert stats.get("snapshots_dropped") == 1 and checked.missing == []
    kept = sorted((tmp_path / "snaps" / "frame").glob("*.json"))
    assert len(kept) == 2
    sidecar = json.loads(kept[-1].read_text())
    assert sidecar["crop"] == [0.5, 0.0, 0.5, 1.0] and sidecar["frame"] == {"width": 640, "height": 480}
