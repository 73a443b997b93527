"""Outputs: where emitted results go, fed by one dispatcher thread so none can stall inference.

The inference thread only appends to a bounded queue (a full queue drops the
oldest result, counted). The `edgecam-outputs` thread hands each result to
every output; one output's failure is counted and logged and never reaches
the others or the pipeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Protocol

from edgecam.pipeline.results import Result
from edgecam.pipeline.stats import Stats

log = logging.getLogger(__name__)

QUEUE_LENGTH = 256
_LOG_EVERY = 100  # after the first failure of an output, log one in this many


class Output(Protocol):
    name: str
    #: seconds between stats messages on this output; 0 = none
    stats_interval_s: float

    def emit(self, result: Result) -> None: ...

    def stats(self, snapshot: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Outputs:
    """Dispatches results and periodic stats to the outputs, off the inference thread."""

    def __init__(self, outputs: list[Output], stats: Stats) -> None:
        self._outputs = list(outputs)
        self._stats = stats
        self._queue: deque[Result] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._failures: dict[str, int] = {}
        self._last_stats: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="edgecam-outputs", daemon=True)

    @property
    def outputs(self) -> list[Output]:
        return list(self._outputs)

    def start(self) -> None:
        self._thread.start()

    def emit(self, result: Result) -> None:
        """Queues a result; never blocks beyond a short lock."""
        with self._cond:
            if len(self._queue) >= QUEUE_LENGTH:
                self._queue.popleft()
                self._stats.count("output_queue_dropped")
            self._queue.append(result)
            self._cond.notify()

    def stats(self, snapshot: dict[str, Any], now: float | None = None) -> None:
        """Sends `snapshot` to each output whose stats interval has passed (service loop)."""
        now = time.monotonic() if now is None else now
        for output in self._outputs:
            interval = output.stats_interval_s
            if interval and now - self._last_stats.setdefault(output.name, now) >= interval:
                self._last_stats[output.name] = now
                self._call(output, "stats", snapshot)

    def replace(self, outputs: list[Output]) -> None:
        """Swaps in a new set (a reload); outputs no longer in it are closed."""
        with self._cond:
            old, self._outputs = self._outputs, list(outputs)
        for output in old:
            if not any(output is kept for kept in outputs):
                self._call(output, "close")

    def close(self, timeout: float = 1.0) -> None:
        """Delivers what is queued, stops the thread, closes outputs in reverse order."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for output in reversed(self._outputs):
            self._call(output, "close")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                result = self._queue.popleft()
                outputs = self._outputs
            for output in outputs:
                self._call(output, "emit", result)

    def _call(self, output: Output, method: str, *args: Any) -> None:
        try:
            getattr(output, method)(*args)
        except Exception as exc:
            self._stats.count("output_errors")
            failures = self._failures[output.name] = self._failures.get(output.name, 0) + 1
            if failures == 1 or failures % _LOG_EVERY == 0:
                log.error("output %s: %s failed (%d so far): %s", output.name, method, failures, exc)
