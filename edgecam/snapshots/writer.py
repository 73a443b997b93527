"""The snapshot writer: each label change's frame saved off the inference thread, then its result sent.

With snapshots on, the inference thread hands every emitted result here
(`emit`), with a `Shot` (the full frame, the zone's crop) when it is a label
change. A result with a shot waits in a queue for the `edgecam-snapshots`
thread, which encodes the frame (cv2.imencode at `quality`), writes the JPEG
and its sidecar (store.SnapshotStore: atomic, retention first), sets the result's
`snapshot_path` and only then hands it to the outputs (a Sink: the
dispatcher's emit), whose messages then carry `"snapshot": path`: a
message never names a file that is not there. A result without a shot goes
straight to the outputs, unless results wait here: then it queues behind
them, so the outputs get results in the order they were made (MQTT's
retained label must end on the newest, not on a change that waited for the disk).

Nothing but this thread waits for the disk. With FRAMES_WAITING shots held,
a new change's shot is dropped (`snapshots_dropped`) and its result queues
without one; beyond QUEUE_LENGTH results (a disk that hangs) the oldest goes,
as the dispatcher's would (`output_queue_dropped`). A write that fails (a
full or read-only disk, no permission) sends the result without `snapshot`,
counts `snapshots_failed`, is warned about once until a write succeeds again,
and is tried again at the next change.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecam.common.worker import Worker
from edgecam.config import SnapshotsConfig
from edgecam.core.frames import WHOLE, Crop
from edgecam.core.protocols import QUEUE_LENGTH, Sink
from edgecam.core.results import Result
from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError
from edgecam.snapshots.store import SnapshotStore, sidecar

log = logging.getLogger(__name__)

#: shots held at most, queued or being written: a 640x480 frame is 0.9 MB, a 1080p one 6 MB
FRAMES_WAITING = 4
#: a few writes to a slow SD card (each file is fsync'ed) before a stop gives up on them
STOP_S = 2.0
_POLL_S = 0.5


@dataclass(frozen=True)
class Shot:
    """What a snapshot is made of: the full frame (never written to) and the zone's crop in it."""

    image: np.ndarray
    crop: Crop = WHOLE


class SnapshotWriter:
    def __init__(self, config: SnapshotsConfig, outputs: Sink, stats: Stats) -> None:
        self.store = SnapshotStore(Path(config.dir), config.max_files, round(config.max_mb * 1e6))
        self._quality = config.quality
        self._outputs = outputs
        self._stats = stats
        self._cond = threading.Condition()
        self._items: deque[tuple[Result, Shot | None]] = deque()
        self._frames = 0  # shots queued or being written
        self._busy = False  # the thread holds a result it has not handed on yet
        self._closed = False
        self._failing = False  # the last write failed (warned about when it began)
        self._worker = Worker("edgecam-snapshots", self._run)

    def start(self) -> None:
        self._worker.start()

    def emit(self, result: Result, shot: Shot | None) -> None:
        """On the inference thread, in place of the outputs' sink: waits only for a short lock."""
        with self._cond:
            if shot is not None and (self._closed or self._frames >= FRAMES_WAITING):
                self._stats.count("snapshots_dropped")
                shot = None
            direct = shot is None and (self._closed or not (self._items or self._busy))
            if not direct:
                if len(self._items) >= QUEUE_LENGTH:
                    self._lose(self._items.popleft())
                self._items.append((result, shot))
                self._frames += shot is not None
                self._cond.notify_all()
        if direct:
            self._outputs(result)

    def close(self, timeout: float = STOP_S) -> None:
        """Lets the thread hand on what waits (up to `timeout`), then stops it.

        Results still waiting after that (the disk hangs) go out without their snapshots
        (counted as dropped); from then on `emit` sends every result straight to the outputs.
        """
        with self._cond:
            self._cond.wait_for(lambda: not (self._items or self._busy), timeout)
            self._closed = True
            left = list(self._items)
            self._items.clear()
            for _result, shot in left:
                if shot is not None:
                    self._frames -= 1
                    self._stats.count("snapshots_dropped")
        self._worker.stop(timeout)
        for result, _shot in left:
            self._outputs(result)

    def _lose(self, item: tuple[Result, Shot | None]) -> None:
        self._stats.count("output_queue_dropped")
        if item[1] is not None:
            self._frames -= 1
            self._stats.count("snapshots_dropped")

    def _run(self, stop: threading.Event) -> None:
        self._scan()
        while not stop.is_set():
            with self._cond:
                if not self._items:
                    self._cond.wait(_POLL_S)
                if not self._items:
                    continue
                result, shot = self._items.popleft()
                self._busy = True
            if shot is not None:
                result = self._save(result, shot)  # never raises: a failure is counted and warned
            self._outputs(result)
            with self._cond:
                self._busy = False
                self._frames -= shot is not None
                self._cond.notify_all()

    def _scan(self) -> None:
        """What earlier runs left counts towards the limits (and is trimmed to them)."""
        store = self.store
        try:
            store.scan()
        except (OSError, EdgecamError) as exc:
            self._failed(exc)
            return
        log.info("snapshots: %d in %s (%.1f MB); kept: at most %d, %g MB", store.count, store.folder,
                 store.bytes / 1e6, store.max_files, store.max_bytes / 1e6)

    def _save(self, result: Result, shot: Shot) -> Result:
        """`result` naming its snapshot once saved; `result` itself if it could not be."""
        path = self.store.path(result)
        saved = dataclasses.replace(result, snapshot_path=str(path))
        image = shot.image
        try:
            ok, jpeg = cv2.imencode(".jpg", image, (cv2.IMWRITE_JPEG_QUALITY, self._quality))
            if not ok:
                raise EdgecamError(f"cannot encode a {image.shape} frame as a JPEG")
            size = (image.shape[1], image.shape[0])
            self.store.save(path, jpeg.tobytes(), sidecar(saved.message(), result.zone, shot.crop, size))
        except Exception as exc:  # a full or read-only disk, no permission; a bug too: never lose the result
            self._stats.count("snapshots_failed")
            self._failed(exc)
            return result
        self._stats.count("snapshots_saved")
        if self._failing:
            self._failing = False
            log.info("snapshots: saving again in %s", self.store.folder)
        return saved

    def _failed(self, exc: Exception) -> None:
        if self._failing:
            return
        self._failing = True
        reason = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else exc
        log.warning("snapshots: not saved: %s; results go out without a snapshot until a write works "
                    "again (tried at each label change)", reason,
                    exc_info=not isinstance(exc, OSError | EdgecamError))
