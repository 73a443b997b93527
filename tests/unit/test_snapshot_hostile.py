"""The snapshot folder under attack and after a power cut (issue 24): only regular files the
daemon wrote are listed or served; a sidecar that does not check out is refused in one line.

The folder is the daemon's, but its group may write it (and a power cut may
leave anything in it): a symlink named as a snapshot must never be served,
and a sidecar with `1e999`, NaN or the wrong types must never reach
time.localtime or a JSON answer.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from test_snapshot_store import T0, make_result, save

from edgecam.snapshots.store import SnapshotStore, list_snapshots, read_snapshot


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    store = SnapshotStore(tmp_path / "snaps", 100, 10**7)
    store.scan()
    return store


def plant_link(store: SnapshotStore, seq: int, target: Path) -> Path:
    """A symlink named as a snapshot, pointing at `target`, with a sidecar that checks out."""
    real = save(store, make_result(seq))
    link = real.with_name(real.name.replace("egyptian-cat", "evil"))
    link.symlink_to(target)
    os.replace(real.with_suffix(".json"), link.with_suffix(".json"))
    real.unlink()
    return link


def test_a_symlinked_snapshot_is_neither_listed_nor_read(store: SnapshotStore, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:secret\n")
    good = save(store, make_result(1))
    link = plant_link(store, 2, secret)
    listed, problems = list_snapshots(store.folder)
    assert [s.jpeg for s in listed] == [good]
    assert problems == [f"{link}: not a snapshot (empty, or not a regular file)"]
    assert read_snapshot(link) is None
    assert read_snapshot(good) == good.read_bytes()


def test_a_symlinked_zone_folder_is_not_followed(store: SnapshotStore, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = save(store, make_result(1, zone="door"))
    os.replace(path.parent, elsewhere / "door")
    (store.folder / "door").symlink_to(elsewhere / "door")
    assert list_snapshots(store.folder) == ([], [])
    assert read_snapshot(path) is None  # the zone folder is opened O_NOFOLLOW too


def test_a_fifo_or_an_empty_jpeg_is_refused(store: SnapshotStore) -> None:
    fifo = save(store, make_result(1))
    fifo.unlink()
    os.mkfifo(fifo)
    empty = save(store, make_result(2))
    empty.write_bytes(b"")
    listed, problems = list_snapshots(store.folder)
    assert listed == [] and len(problems) == 2
    assert read_snapshot(fifo) is None  # refused at once, without waiting for a writer


@pytest.mark.parametrize(("field", "raw", "why"), [
    ("ts", "1e999", "ts inf is not a time"),
    ("ts", "NaN", "NaN is not a number"),
    ("ts", "-Infinity", "-Infinity is not a number"),
    ("ts", "1e300", "ts 1e+300 is not a time"),
    ("ts", '"soon"', "ts 'soon' is not a time"),
    ("score", "1e999", "score inf is not between 0 and 1"),
    ("score", "true", "score True is not between 0 and 1"),
    ("index", "1.5", "wrong type"),
    ("label", "7", "wrong type"),
])
def test_a_sidecar_whose_figures_do_not_check_out_is_refused(store: SnapshotStore, field: str, raw: str,
                                                             why: str) -> None:
    path = save(store, make_result(1)).with_suffix(".json")
    document = json.loads(path.read_text())
    message = document["message"]
    (message if field == "ts" else message["labels"][0])[field] = "@@"
    path.write_text(json.dumps(document).replace('"@@"', raw))  # what json.dumps would not write
    listed, problems = list_snapshots(store.folder)
    assert listed == []
    assert len(problems) == 1 and problems[0].startswith(f"{path}: cannot read this sidecar: ")
    assert why in problems[0], problems[0]


@pytest.mark.parametrize("content", [b"", b'{"message": {"ts"', b"\0" * 512, b"\xff\xfe garbage",
                                     b"[" * 100_000, b"[1, 2]", b'{"zone": 5, "message": {}}',
                                     b" " * (64 * 1024 + 1)])
def test_a_cut_emptied_garbage_or_oversized_sidecar_is_refused_the_rest_listed(
        store: SnapshotStore, content: bytes) -> None:
    bad = save(store, make_result(1)).with_suffix(".json")
    good = save(store, make_result(2))
    bad.write_bytes(content)
    listed, problems = list_snapshots(store.folder)
    assert [s.jpeg for s in listed] == [good]
    assert len(problems) == 1 and "\n" not in problems[0], problems


def test_what_is_listed_is_finite_and_serializes_as_strict_json(store: SnapshotStore) -> None:
    for seq in range(1, 4):
        save(store, make_result(seq))
    listed, _ = list_snapshots(store.folder)
    assert all(math.isfinite(s.ts) and math.isfinite(s.score) for s in listed)
    json.dumps([[s.ts, s.score, s.index, s.label, s.zone] for s in listed], allow_nan=False)
    assert listed[0].ts == T0 + 3
