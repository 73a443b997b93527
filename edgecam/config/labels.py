"""Labels the config names (outputs.labels_allow, labels_deny, thresholds), checked against the model's.

A label misspelt in an allow list would silently emit nothing, and one in a
deny list or a threshold would silently do nothing, so each must be one of the
model's labels: the lines of model.labels, or the classes of model.head where
a head is set. Where that file cannot be read the check is skipped: loading
the model reports it, in its own words.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from edgecam.errors import EdgecamError

if TYPE_CHECKING:
    from edgecam.config.schema import Config, ModelConfig


@dataclass(frozen=True)
class LabelRef:
    """A label the config names, and where (its YAML node, for the line)."""

    node: yaml.Node
    keypath: str
    label: str


def unknown_labels(config: Config, refs: list[LabelRef]) -> list[tuple[LabelRef, str]]:
    """Each named label that is not the model's, with the problem to report."""
    if not refs:
        return []
    known = _model_labels(config.model)
    if known is None:
        return []
    where = "the head's classes" if config.model.head else config.model.labels
    found = []
    names = set(known)
    for ref in refs:
        if ref.label in names:
            continue
        # ImageNet's labels list synonyms ("tabby, tabby cat"): a user writes one of them.
        close = [name for name in known if ref.label in (part.strip() for part in name.split(","))]
        close = close or difflib.get_close_matches(ref.label, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        found.append((ref, f"{ref.label!r} is not a label of {where}{hint}"))
    return found


def _model_labels(model: ModelConfig) -> list[str] | None:
    try:
        if model.head:
            from edgecam.models.fewshot.head import Head

            return list(Head.load(model.head).labels)
        from edgecam.models.labels import read_labels

        return read_labels(model.labels)
    except EdgecamError:
        return None
