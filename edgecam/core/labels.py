"""Reads a labels file and lines it up with a model's outputs.

Classifiers come with 1001 outputs (index 0 = `background`) or 1000, and
labels files with or without the `background` line; some label files number
their lines (`0  background`, Coral style). Lining them up here means every
result's `index` is the model's output index and its label is right.

On the ground floor because the config reads labels files too: each label its
rules name must be one of its model's (config.labels).
"""

from __future__ import annotations

import re
from pathlib import Path

from edgecam.common.files import MAX_LABELS_BYTES, read_user_text
from edgecam.errors import ModelError

_NUMBERED = re.compile(r"^\s*(\d+)[\s:]+(.*\S)\s*$")
BACKGROUND = "background"
#: more labels than any classifier has outputs (ImageNet-21k: 21,843): a numbered line past this
#: (`999999999999 x`, 14 bytes) would otherwise make a list of a trillion labels
MAX_LABELS = 100_000


def read_labels(path: str | Path) -> list[str]:
    """The labels of a file, one a line (blank lines skipped); numbered lines are placed by number."""
    text = read_user_text(path, "labels file", error=ModelError, max_bytes=MAX_LABELS_BYTES)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ModelError(f"{path}: the labels file is empty")
    if len(lines) > MAX_LABELS:
        raise ModelError(f"{path}: {len(lines)} labels, more than the {MAX_LABELS} a labels file "
                         "may have")
    numbered = [_NUMBERED.match(line) for line in lines]
    if all(numbered) and len(lines) > 1:
        # Compared as text first: int() of thousands of digits is slow, or a ValueError.
        last = max((m.group(1).lstrip("0") for m in numbered if m), key=lambda n: (len(n), n))
        if len(last) > len(str(MAX_LABELS)) or int(last or 0) >= MAX_LABELS:
            raise ModelError(f"{path}: a line numbered {last[:20]}{'…' if len(last) > 20 else ''}, "
                             f"past the {MAX_LABELS} labels a labels file may have")
        by_index = {int(m.group(1)): m.group(2) for m in numbered if m}
        return [by_index.get(i, str(i)) for i in range(max(by_index) + 1)]
    return lines


def align_labels(labels: list[str], outputs: int, path: str | Path) -> list[str]:
    """One label per model output, adding or removing a leading `background`."""
    if len(labels) == outputs:
        return labels
    if len(labels) == outputs + 1 and labels[0].lower() == BACKGROUND:
        return labels[1:]
    if len(labels) + 1 == outputs:
        return [BACKGROUND, *labels]
    raise ModelError(
        f"{path}: {len(labels)} labels but the model has {outputs} outputs")
