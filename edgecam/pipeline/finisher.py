"""The finisher: a classified frame's last steps, run beside the next invoke() when the model
is the bottleneck.

When invoke() returns with the next frame already waiting, every step the inference thread
takes before the next invoke() delays that frame and every one after it: ranking the output
into labels (dequantize, top-k), the result, the filter, the socket's send(). On a 7 ms invoke
those took 0.22 of the 0.27 ms between two invokes (bench/critical_path.py): 3 % of the rate.
So such a frame's finish is handed to this thread at the inference thread's next release,
right before the next invoke(): the GIL is free while the model runs, and this thread uses it
then, on the other core.

A camera slower than the model never leaves a frame waiting: its frames are finished on the
inference thread as before and this thread sleeps (a wake-up per frame is CPU that a 20 fps
camera would pay for nothing). Work runs in the order it was handed over, one piece at a time;
while any is left, the inference thread hands over everything it would finish or send itself,
so results keep their order and no output is ever called from two threads at once.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

from edgecam.common.worker import Worker
from edgecam.pipeline.work import Work

log = logging.getLogger(__name__)


class Finisher:
    """Runs each piece of `Work` handed over with `do` (the inference's), in order."""

    def __init__(self, do: Callable[[Work], None], on_error: Callable[[BaseException], None]) -> None:
        self._do = do
        self._cond = threading.Condition()
        self._work: deque[Work] = deque()
        #: work handed over and not all done: set by hand_over() on the inference thread, cleared
        #: here; so when that thread reads False (no lock needed) this one stays idle until it
        #: hands over more
        self.busy = False
        self._on_error = on_error
        self._worker = Worker("edgecam-finish", self._run)

    def start(self) -> None:
        self._worker.start()

    def hand_over(self, work: Iterable[Work]) -> None:
        """Queues `work` behind what is left, to run in order on this thread."""
        with self._cond:
            self._work.extend(work)
            self.busy = True
            self._cond.notify()

    def stop(self, timeout: float) -> None:
        """Runs what is left (the last results still reach the outputs), then stops."""
        self._worker.stopping.set()
        with self._cond:
            self._cond.notify()
        self._worker.stop(timeout)

    def _run(self, stop: threading.Event) -> None:
        while True:
            with self._cond:
                while not self._work:
                    self.busy = False
                    if stop.is_set():
                        return
                    self._cond.wait()  # stop() notifies too: no poll, no wake-up while idle
                work = self._work.popleft()
            try:
                self._do(work)
            except Exception as exc:
                log.exception("finishing a frame failed")
                self._on_error(exc)
                return
            # Not kept while idle: it holds its frame, whose picture may hold a stream's decoder
            # (and that decoder's threads) long after a reconnect replaced it.
            del work
