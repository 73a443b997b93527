"""Fakes that follow edgecam's interfaces, for the in-process tests (tests/unit and some integration).

`Collect` is an output (edgecam.outputs.base.Output) that keeps what it is given;
`FakeClassifier` an ImageClassifier that records the images it is asked to
classify; `FakeNotifier` what edgecam.daemon.notify.Watchdog and StartTimeout
need of a Notifier, recording the `KEY=value` fields that would go to systemd
(sd_notify(3), systemd 252's man page: READY=1, STATUS=, WATCHDOG=1,
EXTEND_TIMEOUT_USEC=). These follow edgecam's own interfaces, not a library's:
the fakes of picamera2 and its devices are tests/fake_picamera2*.py. `read_all` reads a source
to its end, as the capture thread would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgecam.core.frames import Decoded, Frame
from edgecam.core.results import Classification, Label, Result
from edgecam.models.base import Infers
from edgecam.outputs.base import Output
from edgecam.sources.base import Source


class Collect(Output):
    """An output that keeps every result (and the stats figures) it gets, and whether it was closed."""

    def __init__(self, name: str = "collect", stats_interval_s: float = 0.0,
                 closed_log: list[str] | None = None) -> None:
        self.name = name
        self.stats_interval_s = stats_interval_s
        self.results: list[Result] = []
        self.figures: list[dict[str, Any]] = []
        self.closed = False
        self._closed_log = closed_log

    def emit(self, result: Result) -> None:
        self.results.append(result)

    def stats(self, figures: dict[str, Any]) -> None:
        self.figures.append(figures)

    def close(self) -> None:
        self.closed = True
        if self._closed_log is not None:
            self._closed_log.append(self.name)

    @property
    def seqs(self) -> list[int]:
        return [result.seq for result in self.results]


class FakeClassifier(Infers):
    """An ImageClassifier that says `label` for every image and records each image and when."""

    def __init__(self, label: str = "thing", score: float = 0.9, input_size: tuple[int, int] = (8, 8)
                 ) -> None:
        self.input_size = input_size
        self.labels = [label, "other"]
        self.loaded_files: dict[str, Any] = {}
        self._label = label
        self._score = score
        self.images: list[np.ndarray] = []
        self._lock = threading.Lock()

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> Callable[[], Classification]:
        if before_invoke is not None:
            before_invoke()
        with self._lock:
            self.images.append(image)
        classification = Classification((Label(0, self._label, self._score),
                                          Label(1, "other", 1 - self._score)), inference_ms=0.1)
        return lambda: classification

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.images)


class FakeNotifier:
    """Stands in for Notifier: `watchdog_s` as if WATCHDOG_USEC were set; `sent` lists the fields."""

    def __init__(self, watchdog_s: float | None = 1e-6) -> None:
        self.watchdog_s = watchdog_s
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send(self, *fields: str) -> None:
        with self._lock:
            self.sent.extend(fields)

    def count(self, field: str) -> int:
        with self._lock:
            return self.sent.count(field)


def image(value: int = 0, shape: tuple[int, ...] = (8, 8, 3)) -> np.ndarray:
    """A small BGR image filled with `value`."""
    return np.full(shape, value, np.uint8)


def frame(seq: int, age_s: float = 0.0, picture: Any = None) -> Frame:
    """A captured frame `age_s` seconds old (monotonic and wall clock alike)."""
    at = time.monotonic() - age_s, time.time() - age_s
    return Frame.capture(seq, picture if picture is not None else Decoded(image(seq % 256)), at)


def result(seq: int, label: str = "thing") -> Result:
    """A result as the inference thread hands it to the outputs."""
    return Result(seq, 1795838020.0 + seq, 10.0, 5.0, Classification((Label(0, label, 0.9),), 5.0))


def read_all(source: Source, limit: int = 1000) -> list:
    """Opens `source`, reads until it ends (or `limit` items), closes it; what it delivered."""
    stop = threading.Event()
    delivered = []
    source.open()
    try:
        while len(delivered) < limit and (item := source.read(stop)) is not None:
            delivered.append(item)
    finally:
        source.close()
    return delivered
