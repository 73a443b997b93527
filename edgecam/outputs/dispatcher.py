"""The dispatcher: emitted results to every output, off the inference thread.

The inference thread only appends to a bounded queue (a full queue drops the
oldest result, counted as output_queue_dropped). The `edgecam-outputs`
thread hands each result to every output; one output's failure is counted
and logged (the first, then one in 100) and never reaches the others or the
pipeline. Stats go out from the service loop, each output at its interval.
An `immediate` output (the socket: its emit() only queues for its own thread)
is handed each result on the inference thread directly; the dispatcher is not
woken at all when no other output is on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edgecam.common.queues import DropOldestQueue
from edgecam.common.throttle import LogThrottle
from edgecam.common.worker import Worker
from edgecam.core.protocols import QUEUE_LENGTH
from edgecam.core.results import Result
from edgecam.core.stats import Stats
from edgecam.outputs.base import Output

log = logging.getLogger(__name__)

_LOG_EVERY = 100  # after the first failure of an output, log one in this many
_POLL_S = 0.5


class Dispatcher:
    def __init__(self, outputs: list[Output], stats: Stats) -> None:
        self._outputs = list(outputs)
        self._routes = _routes(self._outputs)
        self._stats = stats
        self._queue: DropOldestQueue[Result] = DropOldestQueue(
            QUEUE_LENGTH, lambda _result: stats.count("output_queue_dropped"))
        self._failures: dict[str, LogThrottle] = {}
        self._last_stats: dict[str, float] = {}
        self._worker = Worker("edgecam-outputs", self._run)

    @property
    def outputs(self) -> list[Output]:
        return list(self._outputs)

    def start(self) -> None:
        self._worker.start()

    def emit(self, result: Result) -> None:
        """Hands a result to the immediate outputs and queues it for the others; never blocks
        beyond a short lock."""
        immediate, queued = self._routes  # one read: replace() swaps the pair whole
        for output in immediate:
            self._call(output, "emit", result)
        if queued:
            self._queue.put(result)

    def stats(self, figures: dict[str, Any] | Callable[[], dict[str, Any]],
              now: float | None = None) -> None:
        """Sends the stats' figures to each output whose interval has passed (service loop).

        `figures` may be the function that reads them (Stats.figures): it is then called
        only when an output is due, not on every tick of the service loop.
        """
        now = time.monotonic() if now is None else now
        taken: dict[str, Any] | None = None
        for output in self._outputs:
            interval = output.stats_interval_s
            if interval and now - self._last_stats.setdefault(output.name, now) >= interval:
                self._last_stats[output.name] = now
                if taken is None:
                    taken = figures() if callable(figures) else figures
                self._call(output, "stats", taken)

    def replace(self, outputs: list[Output]) -> None:
        """Swaps in a new set (a reload); outputs no longer in it are closed."""
        old, self._outputs = self._outputs, list(outputs)
        self._routes = _routes(self._outputs)
        for output in old:
            if not any(output is kept for kept in outputs):
                self._call(output, "close")

    def close(self, timeout: float = 1.0) -> None:
        """Stops the thread, delivers what is still queued, closes outputs in reverse order.

        If the thread does not stop in time (an output is stuck), what is queued is dropped,
        counted, rather than handed to the stuck output from here.
        """
        stopped = self._worker.stop(timeout)
        left = self._queue.drain()
        if not stopped and left:
            self._stats.count("output_queue_dropped", len(left))
            left = []
        for result in left:
            self._deliver(result)
        for output in reversed(self._outputs):
            self._call(output, "close")

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            result = self._queue.get(_POLL_S)
            if result is not None:
                self._deliver(result)

    def _deliver(self, result: Result) -> None:
        for output in self._routes[1]:
            self._call(output, "emit", result)

    def _call(self, output: Output, method: str, *args: Any) -> None:
        try:
            getattr(output, method)(*args)
        except Exception as exc:
            self._stats.count("output_errors")
            throttle = self._failures.setdefault(output.name, LogThrottle(_LOG_EVERY))
            if throttle():
                log.error("output %s: %s failed (%d so far): %s", output.name, method, throttle.count,
                          exc)


def _routes(outputs: list[Output]) -> tuple[tuple[Output, ...], tuple[Output, ...]]:
    """(the outputs emitted to on the caller's thread, those fed by the dispatcher thread)."""
    return (tuple(o for o in outputs if o.immediate), tuple(o for o in outputs if not o.immediate))
