"""Every output edgecam has, and how a config's outputs section becomes running outputs.

Adding an output is one module (a subclass of outputs.base.Output) plus its
config section and one line in KINDS. Building is transactional, so that a
reload is refused as a whole by construction: `plan` builds and starts every
new output first and, if any fails, closes what it built and raises, leaving
the running ones untouched; `commit` then swaps the set in. Every output is
told the config's zone names (`Output.set_zones`): a new one before it starts,
a kept one when the plan is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from edgecam.config import OutputsConfig
from edgecam.outputs.base import Output, OutputContext
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.outputs.journal import JournalOutput
from edgecam.outputs.metrics import MetricsOutput
from edgecam.outputs.mqtt import MqttOutput
from edgecam.outputs.socket import SocketOutput
from edgecam.outputs.stdout import PrintOutput


@dataclass(frozen=True)
class Kind:
    name: str
    wanted: Callable[[OutputsConfig, OutputContext], bool]
    build: Callable[[OutputsConfig, OutputContext], Output]


KINDS = (
    Kind("journal", lambda c, x: c.journal.enabled, lambda c, x: JournalOutput(x.journal_sender(), x.camera)),
    Kind("socket", lambda c, x: c.socket.enabled,
         lambda c, x: SocketOutput(c.socket.path, c.socket.mode, x.stats)),
    Kind("metrics", lambda c, x: c.metrics.enabled, lambda c, x: MetricsOutput(c.metrics.listen, x.stats)),
    Kind("mqtt", lambda c, x: c.mqtt.enabled, lambda c, x: MqttOutput(c.mqtt, x.stats)),
    Kind("stdout", lambda c, x: x.print_results, lambda c, x: PrintOutput()),
)


@dataclass
class OutputPlan:
    """The outputs a config asks for: running ones kept, new ones built (and started, but
    for the exclusive ones, which start at commit)."""

    config: OutputsConfig
    zones: tuple[str, ...]
    kept: list[Output]
    built: list[Output]

    @property
    def outputs(self) -> list[Output]:
        order = {kind.name: i for i, kind in enumerate(KINDS)}
        return sorted([*self.kept, *self.built], key=lambda o: order.get(o.name, len(order)))


def plan(config: OutputsConfig, current: Sequence[Output], context: OutputContext,
         zones: tuple[str, ...] = ()) -> OutputPlan:
    """Builds what `config` (and `zones`, the config's zone names) needs beside `current`;
    EdgecamError (nothing left behind) if any fails."""
    running = {output.name: output for output in current}
    kept: list[Output] = []
    built: list[Output] = []
    with ExitStack() as undo:
        for kind in KINDS:
            if not kind.wanted(config, context):
                continue
            old = running.get(kind.name)
            if old is not None and old.reusable(config):
                kept.append(old)
                continue
            output = kind.build(config, context)
            undo.callback(output.close)
            output.set_zones(zones)
            if not output.exclusive:
                output.start()
            built.append(output)
        undo.pop_all()
    return OutputPlan(config, zones, kept, built)


def commit(plan: OutputPlan, dispatcher: Dispatcher) -> None:
    """Swaps the plan's outputs in: kept ones reconfigured (and told the zones), dropped ones
    closed, exclusive ones started last (after the output they replace said goodbye)."""
    for output in plan.kept:
        output.reconfigure(plan.config)
        output.set_zones(plan.zones)
    dispatcher.replace(plan.outputs)
    for output in plan.built:
        if output.exclusive:
            output.start()
