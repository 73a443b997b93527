"""The interface every output implements, with no-op defaults, and what outputs are built with.

An output receives emitted results and periodic stats from the dispatcher
thread (outputs.dispatcher) and must never block it for long. Its life:
built (settings checked, nothing running yet: a bad file fails here), told the
zones, started (sockets bound, threads started), reconfigured in place on a
reload when it can serve the new settings, closed. outputs.registry builds and
replaces them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgecam.config import Config
from edgecam.core.latest import LatestFrame
from edgecam.core.results import Result
from edgecam.core.stats import Stats

Sender = Callable[..., None]


class Output:
    #: what logs, errors and the registry call it
    name: ClassVar[str] = "output"
    #: started only after the output it replaces was closed (a broker allows one connection per
    #: client id); a reload then cannot keep the old one if the new one fails to start
    exclusive: ClassVar[bool] = False
    #: seconds between stats messages on this output; 0 = none
    stats_interval_s: float = 0.0
    #: emit() never blocks and takes microseconds (it only queues for the output's own thread):
    #: the dispatcher then calls it on the inference thread, which saves waking the dispatcher
    immediate: ClassVar[bool] = False

    def start(self) -> None:
        """Binds, connects or starts threads; one clear line (EdgecamError) if it cannot."""

    def emit(self, result: Result) -> None:
        """Takes one emitted result (the dispatcher thread); must not block for long."""

    def stats(self, figures: dict[str, Any]) -> None:
        """Takes the stats' figures (Stats.figures), every `stats_interval_s`."""

    def reusable(self, config: Config) -> bool:
        """Whether this running output can serve `config` (after `reconfigure`): no side effects."""
        return False

    def reconfigure(self, config: Config) -> None:
        """Applies what `reusable` allowed to differ, in place (a reload that was accepted)."""

    def set_zones(self, zones: tuple[str, ...]) -> None:
        """The config's zone names, which results' `zone` is one of (none: the whole frame's
        results, `zone` None). Told before start and at each reload that keeps this output: an
        output whose topics or entities follow the zones (MQTT) announces and retires them."""

    def close(self) -> None:
        """Stops and releases everything; safe to call more than once."""


@dataclass(frozen=True)
class OutputContext:
    """What the daemon hands every output it builds (side effects injectable for tests)."""

    stats: Stats
    journal_sender: Callable[[], Sender | None]
    print_results: bool = False
    camera: str = ""  # the instance's name (--camera), on every journal entry; "" without one
    #: the newest classified frame, for the status page's preview (the inference thread fills it
    #: while web.enabled)
    preview: LatestFrame = field(default_factory=LatestFrame)
    #: with print_results: one readable line per result (a terminal) instead of a JSON line
    print_text: bool = False
