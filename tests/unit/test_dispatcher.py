"""The output dispatcher (edgecam/outputs/dispatcher.py): order, isolation, never blocking emit().

In process with its real thread and fake outputs. Time limits only bound a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes import Collect, result
from harness import wait_for

from edgecam.core.protocols import QUEUE_LENGTH
from edgecam.core.results import Result
from edgecam.core.stats import Stats
from edgecam.outputs.dispatcher import Dispatcher

WAIT_S = 30.0


class Broken(Collect):
    """An output whose every call fails."""

    def emit(self, result: Result) -> None:
        raise OSError("the disk is gone")

    def stats(self, figures: dict[str, Any]) -> None:
        raise OSError("the disk is gone")

    def close(self) -> None:
        super().close()
        raise OSError("the disk is gone")


class Blocked(Collect):
    """An output whose first emit blocks until released (a client that stopped reading)."""

    def __init__(self, name: str = "blocked") -> None:
        super().__init__(name)
        self.entered = threading.Event()
        self.release = threading.Event()

    def emit(self, result: Result) -> None:
        self.entered.set()
        self.release.wait()
        super().emit(result)


def dispatcher_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "edgecam-outputs"}


@pytest.fixture
def dispatch() -> Iterator[Callable[..., tuple[Dispatcher, Stats]]]:
    started: list[tuple[Dispatcher, list]] = []

    def start(outputs: list) -> tuple[Dispatcher, Stats]:
        stats = Stats()
        dispatcher = Dispatcher(outputs, stats)
        dispatcher.start()
        started.append((dispatcher, outputs))
        return dispatcher, stats

    yield start
    for dispatcher, outputs in started:
        for output in outputs:
            if isinstance(output, Blocked):
                output.release.set()
        dispatcher.close(WAIT_S)


def test_every_output_gets_every_result_in_order(dispatch) -> None:
    outputs = [Collect("a"), Collect("b"), Collect("c")]
    dispatcher, stats = dispatch(outputs)
    for seq in range(1, 101):
        dispatcher.emit(result(seq))
    dispatcher.close(WAIT_S)
    assert all(output.seqs == list(range(1, 101)) for output in outputs)
    assert stats.get("output_queue_dropped") == stats.get("output_errors") == 0


def test_close_delivers_what_is_queued_ends_the_thread_and_closes_in_reverse_order(dispatch) -> None:
    closed: list[str] = []
    before = dispatcher_threads()
    outputs = [Collect("first", closed_log=closed), Collect("second", closed_log=closed)]
    dispatcher, _ = dispatch(outputs)
    (thread,) = dispatcher_threads() - before
    assert thread.is_alive()
    for seq in range(5):
        dispatcher.emit(result(seq))
    dispatcher.close(WAIT_S)
    assert not thread.is_alive()
    assert closed == ["second", "first"]
    assert outputs[0].seqs == outputs[1].seqs == [0, 1, 2, 3, 4]


def test_an_output_that_raises_is_isolated_and_counted(dispatch) -> None:
    good_before, broken, good_after = Collect("before"), Broken("broken"), Collect("after")
    dispatcher, stats = dispatch([good_before, broken, good_after])
    for seq in range(10):
        dispatcher.emit(result(seq))
    wait_for(lambda: len(good_after.results) == 10, WAIT_S, "the results after the broken output")
    assert good_before.seqs == good_after.seqs == list(range(10))
    assert stats.get("output_errors") == 10
    broken.stats_interval_s = good_after.stats_interval_s = 1.0
    dispatcher.stats({"frames": {}}, now=100.0)  # the first call sets each output's clock
    dispatcher.stats({"frames": {}}, now=101.0)
    assert good_after.figures == [{"frames": {}}]
    assert stats.get("output_errors") == 11, "a failing stats() is counted too"
    dispatcher.close(WAIT_S)
    assert good_before.closed and good_after.closed, "a failing close() does not stop the others'"
    assert stats.get("output_errors") == 12


def test_a_blocked_output_never_blocks_emit_and_the_oldest_results_are_dropped(dispatch) -> None:
    """emit() only appends to a bounded queue: with the dispatcher stuck in an output, the
    queue keeps the newest QUEUE_LENGTH results and counts every one it drops."""
    blocked, fast = Blocked(), Collect("fast")
    dispatcher, stats = dispatch([blocked, fast])
    dispatcher.emit(result(0))
    assert blocked.entered.wait(WAIT_S), "the dispatcher is now stuck in the blocked output"
    extra = 44
    emitter = threading.Thread(
        target=lambda: [dispatcher.emit(result(seq)) for seq in range(1, QUEUE_LENGTH + extra + 1)],
        name="test-emitter", daemon=True)
    emitter.start()
    emitter.join(WAIT_S)
    assert not emitter.is_alive(), "emit() waited on a blocked output"
    assert stats.get("output_queue_dropped") == extra
    assert stats.figures()["outputs"]["queue_dropped"] == extra
    assert fast.results == [], "one dispatcher thread: the others wait with it, not the pipeline"
    blocked.release.set()
    dispatcher.close(WAIT_S)
    kept = [0, *range(extra + 1, QUEUE_LENGTH + extra + 1)]
    assert blocked.seqs == fast.seqs == kept


def test_close_is_bounded_even_with_an_output_stuck_forever(dispatch) -> None:
    blocked = Blocked()
    dispatcher, _ = dispatch([blocked])
    dispatcher.emit(result(0))
    assert blocked.entered.wait(WAIT_S)
    closer = threading.Thread(target=dispatcher.close, args=(0.2,), name="test-closer", daemon=True)
    closer.start()
    closer.join(WAIT_S)
    assert not closer.is_alive(), "close() waited for a stuck output beyond its timeout"
    assert blocked.closed


def test_stats_go_to_each_output_at_its_own_interval(dispatch) -> None:
    every_10, every_30, never = Collect("ten", 10.0), Collect("thirty", 30.0), Collect("never", 0.0)
    dispatcher, _ = dispatch([every_10, every_30, never])
    for now in range(0, 61, 5):
        dispatcher.stats({"at": now}, now=float(now))
    assert [s["at"] for s in every_10.figures] == [10, 20, 30, 40, 50, 60]
    assert [s["at"] for s in every_30.figures] == [30, 60]
    assert never.figures == []


def test_replace_closes_the_outputs_dropped_and_feeds_the_new_set(dispatch) -> None:
    kept, dropped, added = Collect("kept"), Collect("dropped"), Collect("added")
    dispatcher, _ = dispatch([kept, dropped])
    dispatcher.emit(result(1))
    wait_for(lambda: dropped.seqs == [1] and kept.seqs == [1], WAIT_S, "the first result")
    dispatcher.replace([kept, added])
    assert dropped.closed and not kept.closed
    assert dispatcher.outputs == [kept, added]
    dispatcher.emit(result(2))
    dispatcher.close(WAIT_S)
    assert kept.seqs == [1, 2] and added.seqs == [2] and dropped.seqs == [1]
