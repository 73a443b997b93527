"""The capture thread: keeps a source delivering frames into the slot, whatever it does.

A reader thread per opened source calls `read()` in a loop and puts what it
delivers, stamped as a Frame, into the latest-wins slot. A decoded image is
fitted to the model's input size (FrameFitter) here; a picture whose decoding
was deferred (a compressed JPEG, an H.264 picture not yet converted) is fitted
by whoever decodes it, so superseded frames are never decoded. Capture never
waits for inference, except for sources read on demand (video files and images
at `realtime: false`), whose next frame is read only once the last was taken.
The capture thread supervises it: a source that ends, fails or delivers
nothing for the stall timeout is torn down and reopened with capped
exponential backoff (a source that cannot be opened is said once, as what the
daemon is waiting for, however often it is retried); between frames it sleeps
until a stall would be due (or half a second, to show the watchdog it lives),
woken at once when a reader ends. A read that never returns (OpenCV on a dead
RTSP/TCP stream) is abandoned: its thread is left to finish on its own and
closes its source when it does, while a fresh source takes over. Every stall,
loss, reconnect and abandoned read is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edgecam.common.worker import Worker
from edgecam.core.frames import IDENTITY, Dropped, Fitter, Frame
from edgecam.core.slot import FrameSlot
from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError
from edgecam.sources.base import Source

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
_POLL_S = 0.1
_ALIVE_S = 0.5  # the supervisor shows life at least this often (pipeline's _IDLE_ALIVE_S is 2 s)
_JOIN_S = 1.0
_STALL_FRAMES = 3  # a slow source gets at least this many frame intervals before it counts as stalled


class Capture:
    """Runs `make_source()` sources until stopped; `ended` is set when a file source finishes."""

    def __init__(self, make_source: Callable[[], Source], slot: FrameSlot, stats: Stats,
                 stall_timeout_s: float, fit: Fitter = IDENTITY) -> None:
        self._make_source = make_source
        self._fit = fit
        self._slot = slot
        self._stats = stats
        self._stall_timeout_s = stall_timeout_s
        self._first_source: Source | None = None
        self._worker = Worker("edgecam-capture", self._run)
        self._stop = self._worker.stopping
        # Wakes the supervisor: a reader ended, or stop(). It otherwise sleeps until a stall would
        # be due, or _ALIVE_S: no timer ticks per frame.
        self._woken = threading.Event()
        self.ended = threading.Event()
        self._seq = 0
        self._last_frame = time.monotonic()
        #: monotonic time the capture thread last showed it is not stuck (for the watchdog)
        self.alive_at = time.monotonic()
        #: why no frame can come (the last failed open), until a source delivers again
        self.waiting: str | None = None

    def start(self, first_source: Source | None = None) -> None:
        """Runs `first_source` (opened already, the start's) first if given, then make_source()'s."""
        self._first_source = first_source
        self._worker.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._woken.set()
        self._worker.stop(timeout)

    @property
    def flowing(self) -> bool:
        """Whether frames are arriving (within the stall timeout)."""
        return time.monotonic() - self._last_frame < self._stall_timeout_s

    def _run(self, stop: threading.Event) -> None:
        delay = BACKOFF_FIRST_S
        source = self._first_source
        while not self._stop.is_set():
            self.alive_at = time.monotonic()
            if source is None:
                source = self._open()
            if source is not None:
                delivered = self._run_source(source)
                source = None
                if self.ended.is_set() or self._stop.is_set():
                    break
                if delivered:
                    delay = BACKOFF_FIRST_S
            self._stats.count("reconnects")
            if self.waiting is None:  # retries that fail alike were said once, by _open
                log.info("reopening the source in %.1f s", delay)
            self._wait_alive(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _open(self) -> Source | None:
        try:
            source = self._make_source()
            source.open()
        except EdgecamError as exc:
            self._stats.count("source_errors")
            reason = str(exc)
            if reason != self.waiting:
                log.warning("waiting for the camera: %s; retrying until it answers", reason)
                self.waiting = reason
            return None
        return source

    def _run_source(self, source: Source) -> bool:
        """Reads `source` in a reader thread until it ends, stalls or we stop; True if it delivered."""
        reader_stop = threading.Event()
        state = _ReaderState()
        reader = threading.Thread(target=self._read_loop, args=(source, reader_stop, state),
                                  name="edgecam-reader", daemon=True)
        stall_s = max(self._stall_timeout_s, _STALL_FRAMES * source.frame_interval_s)
        self._last_frame = time.monotonic()
        reader.start()
        while True:
            self._woken.wait(min(_ALIVE_S, max(0.0, self._last_frame + stall_s - time.monotonic())))
            self._woken.clear()  # before the checks: a reader ending meanwhile wakes it again
            if self._stop.is_set():
                break
            self.alive_at = time.monotonic()
            if state.finished:
                if state.ended and source.finite:
                    log.info("source %s ended", source.name)
                    self.ended.set()
                else:
                    self._stats.count("source_lost")
                    log.warning("source %s: lost (%s)", source.name, state.reason or "no more frames")
                break
            silent = time.monotonic() - self._last_frame
            if silent > stall_s:
                self._stats.count("stalls")
                log.warning("source %s: stalled, no frame for %.1f s", source.name, silent)
                break
        reader_stop.set()
        reader.join(_JOIN_S)
        if reader.is_alive():
            self._stats.count("abandoned_reads")
            log.warning("source %s: read still blocked; abandoned (it closes when it returns)",
                        source.name)
        return state.delivered

    def _read_loop(self, source: Source, stop: threading.Event, state: _ReaderState) -> None:
        try:
            while not stop.is_set():
                delivered = source.read_picture(stop, self._fit)
                if stop.is_set():
                    break
                if delivered is None:
                    state.ended = True
                    break
                at = time.monotonic(), time.time()
                self._seq += 1
                self._last_frame = at[0]
                state.delivered = True
                self._stats.count("captured")
                if self.waiting is not None:
                    log.info("source %s: delivering frames again", source.name)
                    self.waiting = None
                self._report_behind(source)
                if isinstance(delivered, Dropped):
                    self._stats.drop(delivered.reason)
                    continue
                self._slot.put(Frame.capture(self._seq, delivered, at, self._fit))
                while source.on_demand and not self._slot.wait_taken(_POLL_S):
                    if stop.is_set():
                        break
                    self._last_frame = time.monotonic()  # waiting on inference is not a stall
        except Exception as exc:  # a driver error must not kill capture: it is a lost source
            state.reason = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                source.close()
            except Exception as exc:
                log.warning("source %s: close failed: %s", source.name, exc)
            state.finished = True
            self._woken.set()

    def _report_behind(self, source: Source) -> None:
        behind = source.behind_ms
        if behind is None:
            self._stats.clear_gauge("behind_ms")
        else:
            self._stats.set_gauge("behind_ms", behind)

    def _wait_alive(self, seconds: float) -> None:
        """Waits, still showing the watchdog that this thread is alive."""
        deadline = time.monotonic() + seconds
        while not self._stop.wait(min(_POLL_S * 5, max(0.0, deadline - time.monotonic()))):
            self.alive_at = time.monotonic()
            if time.monotonic() >= deadline:
                break


class _ReaderState:
    """What a reader thread reports back to the supervisor."""

    def __init__(self) -> None:
        self.delivered = False
        self.ended = False
        self.reason = ""
        self.finished = False  # its loop is over and its source closed
