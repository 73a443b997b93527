"""Results as a person reads them: `run --print` in a terminal, `tail`, `classify`.

ImageNet's labels contain commas ("hog, pig, grunter, squealer, Sus scrofa"), so labels are
separated by " | ", never by commas. Runners-up scoring under RUNNER_UP_FLOOR are left out:
at 0.00 they are noise (the top label is always shown, whatever its score). Scripts read the
JSON instead (`--json`, or `run --print` into a pipe), which keeps every label.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

#: runners-up scoring less than this are not shown (the JSON keeps them)
RUNNER_UP_FLOOR = 0.01
SEPARATOR = " | "


def shown(labels: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The top label and the runners-up at or above the floor, best first as given."""
    items = list(labels)
    return items[:1] + [item for item in items[1:] if item["score"] >= RUNNER_UP_FLOOR]


def labels_text(labels: Iterable[Mapping[str, Any]]) -> str:
    """`macaw 0.98 | hog, pig, grunter, squealer, Sus scrofa 0.01`."""
    return SEPARATOR.join(f"{item['label']} {item['score']:.2f}" for item in shown(labels))


def result_line(message: Mapping[str, Any]) -> str:
    """One classification message as `12:03:04  door: open 0.93 | closed 0.05  (41 ms)`."""
    clock = time.strftime("%H:%M:%S", time.localtime(message["ts"]))
    zone = f"{message['zone']}: " if "zone" in message else ""
    return f"{clock}  {zone}{labels_text(message['labels'])}  ({message['latency_ms']:.0f} ms)"
