"""Labels the config names (outputs.labels_allow, labels_deny, thresholds), checked against the model's.

A label misspelt in an allow list would silently emit nothing, and one in a
deny list or a threshold would silently do nothing, so each must be one of the
model's labels (a zone's rules: the zone's model's): the lines of its labels
file, or the classes of its head where a head is set. Where that file cannot
be read the check is skipped: loading the model reports it, in its own words.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from edgecam.errors import EdgecamError

if TYPE_CHECKING:
    from edgecam.config.schema import Config, ModelConfig

_ZONE_KEY = re.compile(r"zones\[(\d+)\]\.")


@dataclass(frozen=True)
class LabelRef:
    """A label the config names, and where (its YAML node, for the line)."""

    node: yaml.Node
    keypath: str
    label: str


def unknown_labels(config: Config, refs: list[LabelRef]) -> list[tuple[LabelRef, str]]:
    """Each named label that is not its model's (a zone's rules: the zone's), with the problem."""
    found = []
    labels: dict[ModelConfig, list[str] | None] = {}
    for ref in refs:
        model = _model_of(config, ref.keypath)
        if model not in labels:
            labels[model] = _model_labels(model)
        known = labels[model]
        if known is None or ref.label in known:
            continue
        where = "the head's classes" if model.head else model.labels
        # ImageNet's labels list synonyms ("tabby, tabby cat"): a user writes one of them.
        close = [name for name in known if ref.label in (part.strip() for part in name.split(","))]
        close = close or difflib.get_close_matches(ref.label, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        found.append((ref, f"{ref.label!r} is not a label of {where}{hint}"))
    return found


def _model_of(config: Config, keypath: str) -> ModelConfig:
    """The model whose labels a rule at `keypath` names (`zones[2].labels_allow`: zone 2's)."""
    match = _ZONE_KEY.match(keypath)
    return config.zone_model(config.zones[int(match.group(1))]) if match else config.model


def _model_labels(model: ModelConfig) -> list[str] | None:
    try:
        if model.head:
            from edgecam.core.headcheck import read_head_file

            return [label for label, _count, _sum in read_head_file(model.head).classes]
        from edgecam.core.labels import read_labels

        return read_labels(model.labels)
    except EdgecamError:
        return None
