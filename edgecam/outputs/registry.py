"""Every output edgecam has, and how a config's outputs section becomes running outputs.

Adding an output is one module (a subclass of outputs.base.Output) plus its
config section and one line in KINDS. Outputs are built from the whole config
(most read only `outputs`; the status page reads `web`, the zones, the model
and the snapshots too). Building is transactional, so that a
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

from edgecam.config import Config
from edgecam.outputs.base import Output, OutputContext
from edgecam.outputs.dispatcher import Dispatcher
from edgecam.outputs.journal import JournalOutput
from edgecam.outputs.metrics import MetricsOutput
from edgecam.outputs.mqtt import MqttOutput
from edgecam.outputs.socket import SocketOutput
from edgecam.outputs.stdout import PrintOutput
from edgecam.outputs.web import WebOutput


@dataclass(frozen=True)
class Kind:
    name: str
    wanted: Callable[[Config, OutputContext], bool]
    build: Callable[[Config, OutputContext], Output]


KINDS = (
    Kind("journal", lambda c, x: c.outputs.journal.enabled,
         lambda c, x: JournalOutput(x.journal_sender(), x.camera)),
    Kind("socket", lambda c, x: c.outputs.socket.enabled,
         lambda c, x: SocketOutput(c.outputs.socket.path, c.outputs.socket.mode, x.stats)),
    Kind("metrics", lambda c, x: c.outputs.metrics.enabled,
         lambda c, x: MetricsOutput(c.outputs.metrics.listen, x.stats,
                                    c.outputs.metrics.allowed_hosts)),
    Kind("mqtt", lambda c, x: c.outputs.mqtt.enabled, lambda c, x: MqttOutput(c.outputs.mqtt, x.stats)),
    Kind("web", lambda c, x: c.web.enabled, lambda c, x: WebOutput(c, x.stats, x.preview)),
    Kind("stdout", lambda c, x: x.print_results, lambda c, x: PrintOutput(text=x.print_text)),
)


@dataclass
class OutputPlan:
    """The outputs a config asks for: running ones kept, new ones built (and started, but
    for the exclusive ones, which start at commit)."""

    config: Config
    zones: tuple[str, ...]
    kept: list[Output]
    built: list[Output]

    @property
    def outputs(self) -> list[Output]:
        order = {kind.name: i for i, kind in enumerate(KINDS)}
        return sorted([*self.kept, *self.built], key=lambda o: order.get(o.name, len(order)))


def plan(config: Config, current: Sequence[Output], context: OutputContext,
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
