"""The seams the stages talk through: plain callables, so that a stage knows no other.

A stage that hands results on is given a `Sink` (the dispatcher's emit, the snapshot
writer in front of it, a test's list.append), never the object behind it; a stage that
shows it is alive is given a `Progress` (the systemd watchdog's kick). Whoever assembles
the stages (pipeline.pipeline) wires them.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecam.core.results import Result

#: where a stage hands each result on; it must not block (a slow consumer queues, bounded)
Sink = Callable[[Result], None]
#: called whenever a stage made progress (or waits on a source that is being handled)
Progress = Callable[[], None]
#: results held at most between the inference thread and a slow consumer (the dispatcher's
#: queue, the snapshot writer's): beyond it the oldest goes, counted as output_queue_dropped
QUEUE_LENGTH = 256
