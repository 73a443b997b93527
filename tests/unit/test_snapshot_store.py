"""Snapshots on disk (edgecam/snapshots/store.py): names, retention by count and by size, restarts, listing.

Real files in tmp_path; the JPEG bytes are stand-ins of a chosen size (the
store never decodes them).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from edgecam.core.results import Classification, Label, Result
from edgecam.errors import EdgecamError
from edgecam.snapshots.store import SnapshotStore, label_slug, list_snapshots, sidecar, snapshot_stem

T0 = 1795838020.25  # 2026-11-28 03:53:40.250 UTC


def make_result(seq: int, label: str = "Egyptian cat", zone: str | None = None, ts: float | None = None,
                index: int = 286, score: float = 0.87) -> Result:
    return Result(seq, T0 + seq if ts is None else ts, 10.0, 5.0,
                  Classification((Label(index, label, score),), 5.0), zone)


def save(store: SnapshotStore, result: Result, size: int = 1000) -> Path:
    """Saves a snapshot of `result` whose JPEG and sidecar take `size` bytes together."""
    path = store.path(result)
    data = sidecar(dataclasses.replace(result, snapshot_path=str(path)).message(), result.zone,
                   (0.0, 0.0, 1.0, 1.0), (640, 480))
    store.save(path, b"J" * (size - len(data)), data)
    return path


def on_disk(folder: Path) -> tuple[int, int]:
    """(snapshots, bytes of their files) as a user would count them."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert all(p.suffix in (".jpg", ".json") for p in files), files
    return len({p.with_suffix("") for p in files}), sum(p.stat().st_size for p in files)


def test_names_sort_by_time_and_say_what_they_show() -> None:
    assert snapshot_stem(make_result(1042)) == "20261128T041102.250Z-1042-egyptian-cat"
    assert label_slug("tabby, tabby cat", 281) == "tabby-tabby-cat"
    assert label_slug("  Jack-o'-lantern ", 607) == "jack-o-lantern"
    assert label_slug("猫", 5) == "5" and label_slug("unknown", -1) == "unknown"
    assert len(label_slug("x" * 100, 1)) == 40
    stems = [snapshot_stem(make_result(seq, ts=T0 + seq * 0.001)) for seq in range(1, 30)]
    assert stems == sorted(stems) and len(set(stems)) == len(stems)


def test_each_zone_has_its_folder_and_the_whole_frame_its_own(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, 10, 10**6)
    assert store.path(make_result(1)).parent == tmp_path / "frame"
    assert store.path(make_result(1, zone="door")).parent == tmp_path / "door"


def test_the_oldest_go_first_when_the_count_is_reached(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, 5, 10**6)
    store.scan()
    paths = [save(store, make_result(seq, zone=("door", "yard")[seq % 2])) for seq in range(1, 13)]
    assert on_disk(tmp_path) == (5, 5000)
    assert sorted(p for p in tmp_path.rglob("*.jpg")) == sorted(paths[-5:])  # across both zones
    assert (store.count, store.bytes) == (5, 5000)


def test_the_oldest_go_first_when_the_size_is_reached(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, 100, 10_000)
    store.scan()
    for seq in range(1, 40):
        save(store, make_result(seq), size=1500 + 100 * (seq % 7))
        count, size = on_disk(tmp_path)
        assert size <= 10_000, seq
    assert count >= 5 and store.bytes == size


def test_a_snapshot_larger_than_the_limit_is_refused_and_nothing_removed(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, 10, 5000)
    store.scan()
    save(store, make_result(1))
    with pytest.raises(EdgecamError, match=r"larger than snapshots\.max_mb"):
        save(store, make_result(2), size=6000)
    assert on_disk(tmp_path) == (1, 1000)


def test_what_an_earlier_run_left_counts_and_lowered_limits_apply_at_once(tmp_path: Path) -> None:
    first = SnapshotStore(tmp_path, 10, 10**6)
    first.scan()
    for seq in range(1, 9):
        save(first, make_result(seq))
    again = SnapshotStore(tmp_path, 10, 10**6)  # a restart
    again.scan()
    assert (again.count, again.bytes) == (8, 8000)
    second = [make_result(seq, ts=T0 + 100 + seq) for seq in range(1, 6)]  # seqs start again
    for result in second:
        save(again, result)
    assert on_disk(tmp_path) == (10, 10_000)
    kept = {p.stem for p in tmp_path.rglob("*.jpg")}
    assert kept == {snapshot_stem(r) for r in [make_result(seq) for seq in range(4, 9)] + second}
    lowered = SnapshotStore(tmp_path, 4, 3500)  # a reload with lower limits
    lowered.scan()
    assert on_disk(tmp_path) == (3, 3000) == (lowered.count, lowered.bytes)


def test_other_files_are_never_counted_or_removed(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "frame").mkdir()
    (tmp_path / "frame" / "holiday.jpg").write_bytes(b"x" * 5000)
    (tmp_path / "Not A Zone").mkdir()
    (tmp_path / "Not A Zone" / "20261128T045102.250Z-1-cat.jpg").write_bytes(b"x" * 5000)
    store = SnapshotStore(tmp_path, 2, 10**6)
    store.scan()
    assert store.count == 0
    for seq in range(1, 5):
        save(store, make_result(seq))
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "frame" / "holiday.jpg").exists()
    assert (tmp_path / "Not A Zone" / "20261128T045102.250Z-1-cat.jpg").exists()
    assert len(list((tmp_path / "frame").glob("2026*.jpg"))) == 2


def test_temp_files_a_crash_left_are_removed_at_the_scan(tmp_path: Path) -> None:
    folder = tmp_path / "frame"
    folder.mkdir()
    leftover = folder / ".20261128T045102.250Z-1-cat.jpg.k3j4h5.tmp"
    leftover.write_bytes(b"half a jpeg")
    SnapshotStore(tmp_path, 10, 10**6).scan()
    assert not leftover.exists()


def test_a_failed_sidecar_leaves_no_jpeg_behind(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, 10, 10**6)
    store.scan()
    path = store.path(make_result(1))
    path.parent.mkdir()
    path.with_suffix(".json").mkdir()  # the sidecar cannot replace a folder
    with pytest.raises(EdgecamError, match="sidecar"):
        store.save(path, b"jpeg", b"{}")
    assert not path.exists() and store.count == 0


def test_a_folder_that_cannot_be_written_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "snapshots").write_text("a file where the folder should be")
    store = SnapshotStore(tmp_path / "snapshots", 10, 10**6)
    with pytest.raises((OSError, EdgecamError)):
        store.scan()
    with pytest.raises((OSError, EdgecamError)):
        save(store, make_result(1))


def test_listing_is_newest_first_with_what_each_sidecar_says(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, 100, 10**6)
    store.scan()
    save(store, make_result(1, "macaw", "yard", index=89, score=0.99))
    save(store, make_result(2, zone="door"))
    save(store, make_result(3, "military uniform", index=653, score=0.67))
    listed, problems = list_snapshots(tmp_path)
    assert problems == []
    assert [(s.zone, s.label, s.index, s.score) for s in listed] == [
        (None, "military uniform", 653, 0.67), ("door", "Egyptian cat", 286, 0.87),
        ("yard", "macaw", 89, 0.99)]
    assert [s.ts for s in listed] == [T0 + 3, T0 + 2, T0 + 1]
    sidecar_data = json.loads(listed[0].jpeg.with_suffix(".json").read_text())
    assert sidecar_data["message"]["snapshot"] == str(listed[0].jpeg)
    assert sidecar_data["frame"] == {"width": 640, "height": 480}


def test_listing_names_the_sidecars_it_cannot_read(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, 100, 10**6)
    store.scan()
    broken = save(store, make_result(1)).with_suffix(".json")
    broken.write_text("{not json")
    orphan = save(store, make_result(2))
    os.unlink(orphan)
    save(store, make_result(3))
    listed, problems = list_snapshots(tmp_path)
    assert [s.jpeg.name for s in listed] == [store.path(make_result(3)).name]
    assert len(problems) == 2
    assert any("JPEG is missing" in p for p in problems) and any("cannot read" in p for p in problems)
    assert list_snapshots(tmp_path / "none yet") == ([], [])
