"""Snapshots on disk: their names, the retention limits, the sidecar format and the listing.

A snapshot is two files in `<dir>/<zone>/` (`frame` without zones): `<stem>.jpg`,
the full frame, and `<stem>.json`, its sidecar (the result message, the zone's
crop, the frame's size). The stem `<UTC capture time>-<seq>-<label>`, e.g.
`20261202T003043.123Z-1042-egyptian-cat`, sorts by time, says what it shows
and is unique: a frame's sequence number within a run, its millisecond across
runs. Only files named so, in folders named as zones are, are ever counted or
removed: whatever else the folder holds is left alone.

Retention makes room *before* each write: the oldest snapshots, across zones,
are removed until the new one fits within max_files and max_bytes, so the
limits hold at every moment (removing after the write would leave one too
many in between). What is on disk is read once by `scan`, so what an earlier
run left counts, then kept up to date by `save`: the writer thread is the only
one writing here. A snapshot removed by hand is forgotten when retention
reaches it (until then its bytes still count: retention errs on the side of less).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecam.common.files import atomic_write
from edgecam.core.results import Result
from edgecam.errors import EdgecamError

WHOLE_FRAME = "frame"  # the folder of the snapshots taken without zones
SIDECAR_FORMAT = "edgecam-snapshot"
SIDECAR_VERSION = 1
_STEM = re.compile(r"(\d{8}T\d{6}\.\d{3}Z)-(\d+)-([a-z0-9-]+)")
_FOLDER = re.compile(r"[a-z0-9_-]{1,32}")  # a zone's name (config.fields.parse_zone_name), or WHOLE_FRAME
_FILE = re.compile(rf"({_STEM.pattern})\.(jpg|json)")
_LEFTOVER = re.compile(rf"\.({_STEM.pattern})\.(jpg|json)\..+\.tmp")  # atomic_write's, after a crash
_SLUG_LENGTH = 40
MAX_SIDECAR_BYTES = 64 * 1024  # the writer's are under 1 kB (100 labels of 100 characters: 15 kB)
MAX_JPEG_BYTES = 64 * 1024 * 1024  # an 8192 x 8192 frame at quality 100 is about 40 MB
_MAX_TS = 1e11  # the year 5138: time.localtime overflows further on


def snapshot_stem(result: Result) -> str:
    """`<UTC capture time, ms>-<seq>-<label slug>`: sortable, unique, readable."""
    seconds, millis = divmod(round(result.ts * 1000), 1000)  # the message's ts, to the ms
    when = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{when}.{millis:03d}Z-{result.seq}-{label_slug(result.top.label, result.top.index)}"


def label_slug(label: str, index: int) -> str:
    """The label in lower-case letters, digits and dashes ("tabby, tabby cat": tabby-tabby-cat);
    the class index when nothing of it is left (a label in another script)."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:_SLUG_LENGTH].strip("-")
    return slug or str(index)


def sidecar(message: dict[str, Any], zone: str | None, crop: tuple[float, float, float, float],
            frame_size: tuple[int, int]) -> bytes:
    """The sidecar of a snapshot: what was emitted, and where the zone is in the full frame
    (so `edgecam learn add --zone` can cut the zone out of the JPEG as the daemon did)."""
    width, height = frame_size
    return json.dumps({"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "message": message,
                       "zone": zone, "crop": list(crop), "frame": {"width": width, "height": height}}
                      ).encode() + b"\n"


@dataclass(frozen=True, order=True)
class _Entry:
    key: tuple[str, int, str]  # (capture time, seq, folder): oldest first
    stem: Path = field(compare=False)  # the files' path without .jpg / .json
    size: int = field(compare=False)  # bytes of both files


class SnapshotStore:
    def __init__(self, folder: Path, max_files: int, max_bytes: int) -> None:
        self.folder = folder
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._entries: list[_Entry] | None = None  # None until a scan succeeds
        self.bytes = 0

    @property
    def count(self) -> int:
        return len(self._entries or ())

    def path(self, result: Result) -> Path:
        """Where the JPEG of `result`'s frame goes (its sidecar beside it, `.json`)."""
        return self.folder / (result.zone or WHOLE_FRAME) / f"{snapshot_stem(result)}.jpg"

    def scan(self) -> None:
        """Reads what is on disk, removes temp files a crash left, and trims to the limits (which
        a reload or a restart may have lowered). OSError or EdgecamError if the folder cannot be
        read or trimmed; a folder that does not exist yet holds nothing."""
        keys: dict[Path, tuple[str, int, str]] = {}
        sizes: dict[Path, int] = {}
        for zone, entry in _files(self.folder):
            if _LEFTOVER.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                continue
            match = _FILE.fullmatch(entry.name)
            if match is None:
                continue
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            stem = Path(entry.path).with_suffix("")
            keys[stem] = (match[2], int(match[3]), zone)
            sizes[stem] = sizes.get(stem, 0) + size
        self._entries = sorted(_Entry(keys[stem], stem, size) for stem, size in sizes.items())
        self.bytes = sum(entry.size for entry in self._entries)
        self._make_room(0, 0)

    def save(self, jpeg_path: Path, jpeg: bytes, sidecar_data: bytes) -> None:
        """Writes a snapshot (atomically, each file whole or absent) once there is room for it.

        EdgecamError or OSError if it cannot be saved; nothing of it is left behind then.
        """
        if self._entries is None:
            self.scan()  # the scan at start failed: try again
        assert self._entries is not None
        size = len(jpeg) + len(sidecar_data)
        if size > self.max_bytes:
            raise EdgecamError(f"a snapshot of {size / 1e6:.2f} MB is larger than snapshots.max_mb "
                               f"({self.max_bytes / 1e6:g})")
        self._make_room(1, size)
        atomic_write(jpeg_path, jpeg, "snapshot")
        try:
            atomic_write(jpeg_path.with_suffix(".json"), sidecar_data, "snapshot's sidecar")
        except BaseException:
            with contextlib.suppress(OSError):
                jpeg_path.unlink()
            raise
        match = _STEM.fullmatch(jpeg_path.stem)
        assert match is not None, jpeg_path
        bisect.insort(self._entries, _Entry((match[1], int(match[2]), jpeg_path.parent.name),
                                            jpeg_path.with_suffix(""), size))
        self.bytes += size

    def _make_room(self, files: int, size: int) -> None:
        """Removes the oldest snapshots until `files` more of `size` bytes fit within the limits."""
        entries = self._entries
        assert entries is not None
        while entries and (len(entries) + files > self.max_files or self.bytes + size > self.max_bytes):
            oldest = entries[0]
            for suffix in (".jpg", ".json"):
                try:
                    os.unlink(f"{oldest.stem}{suffix}")  # (with_suffix would cut at the ms' dot)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise EdgecamError(f"{oldest.stem}{suffix}: cannot remove this old snapshot to "
                                       f"make room: {exc.strerror}") from None
            del entries[0]
            self.bytes -= oldest.size


@dataclass(frozen=True)
class Listed:
    """A snapshot as `edgecam snapshots` shows it: its JPEG and what its sidecar says."""

    jpeg: Path
    ts: float
    zone: str | None
    label: str
    index: int
    score: float


def list_snapshots(folder: Path) -> tuple[list[Listed], list[str]]:
    """Every snapshot under `folder`, newest first, and one line for each that is refused.

    Only regular files count (a symlink named as a snapshot is refused: it would serve what it
    points at), and only a sidecar that checks out (`_read`): the folder may hold what a power
    cut left, or what another user of its group put there.
    OSError if the folder cannot be read; one that does not exist holds none.
    """
    names: dict[tuple[str, int, str], dict[str, os.DirEntry[str]]] = {}
    for zone, entry in _files(folder):
        match = _FILE.fullmatch(entry.name)
        if match is not None:
            names.setdefault((match[2], int(match[3]), zone), {})[match[5]] = entry
    listed, problems = [], []
    for _key, files in sorted(names.items(), reverse=True):
        if "json" not in files:
            continue  # its sidecar is being written, or it was removed by hand: not a snapshot yet
        sidecar_path = Path(files["json"].path)
        if "jpg" not in files:
            problems.append(f"{sidecar_path}: its JPEG is missing")
            continue
        jpeg = files["jpg"]
        try:
            if not jpeg.is_file(follow_symlinks=False) or jpeg.stat(follow_symlinks=False).st_size == 0:
                problems.append(f"{jpeg.path}: not a snapshot (empty, or not a regular file)")
                continue
            listed.append(_read(Path(jpeg.path), sidecar_path))
        except FileNotFoundError:
            continue  # removed meanwhile (retention)
        except (OSError, ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            problems.append(f"{sidecar_path}: cannot read this sidecar: {reason}")
    return listed, problems


def read_snapshot(jpeg: Path) -> bytes | None:
    """A snapshot's JPEG as the page serves it: a regular file of at most MAX_JPEG_BYTES, its
    zone's folder and itself no symlink (O_NOFOLLOW); None if it is not that, or is gone."""
    try:
        folder = os.open(jpeg.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            data = _read_regular(jpeg.name, folder, MAX_JPEG_BYTES)
        finally:
            os.close(folder)
    except (OSError, ValueError):
        return None
    return data


def _read(jpeg: Path, sidecar_path: Path) -> Listed:
    """The sidecar's figures, each checked (ValueError, KeyError, TypeError, OSError if not):
    finite numbers within range, the types the writer gives them (a `1e999` ts must not reach
    time.localtime or a JSON answer)."""
    text = _read_regular(str(sidecar_path), None, MAX_SIDECAR_BYTES).decode("utf-8")
    data = json.loads(text, parse_constant=_no_constant)
    message = data["message"]
    top = message["labels"][0]
    zone = data["zone"]
    ts, score, index, label = message["ts"], top["score"], top["index"], top["label"]
    if zone is not None and not isinstance(zone, str):
        raise TypeError(f"zone {zone!r} is not a name")
    if type(ts) not in (int, float) or not 0 <= ts < _MAX_TS:
        raise ValueError(f"ts {ts!r} is not a time")
    if type(score) not in (int, float) or not 0 <= score <= 1:
        raise ValueError(f"score {score!r} is not between 0 and 1")
    if type(index) is not int or not isinstance(label, str):
        raise TypeError("the top label's index or name is of the wrong type")
    return Listed(jpeg, float(ts), zone, label, index, float(score))


def _read_regular(name: str, folder: int | None, limit: int) -> bytes:
    """The bytes of a regular file, not a symlink, of at most `limit`; OSError, ValueError if not."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise ValueError(f"not a regular file of at most {limit} bytes")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"more than {limit} bytes")
    return data


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _files(folder: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(zone folder, file) for every file one level down in folders named like zones."""
    try:
        zones = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for zone in sorted(zones, key=lambda entry: entry.name):
        if not _FOLDER.fullmatch(zone.name) or not zone.is_dir(follow_symlinks=False):
            continue
        try:
            files = list(os.scandir(zone.path))
        except FileNotFoundError:
            continue
        for entry in files:
            yield zone.name, entry
