"""A labels file names its labels' count with its line numbers: bounded, so a few bytes cannot
make a list of a trillion labels (MemoryError on 3f5f771)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecam.core.labels import MAX_LABELS, read_labels
from edgecam.errors import ModelError


@pytest.mark.parametrize(("text", "problem"), [
    ("0 a\n999999999999 x\n", "a line numbered 999999999999, past the 100000 labels"),
    ("0 a\n" + "9" * 5000 + " x\n", "a line numbered 99999999999999999999…, past the 100000"),
    ("0 a\n100000 x\n", "a line numbered 100000, past"),
    ("a\n" * (MAX_LABELS + 1), f"{MAX_LABELS + 1} labels, more than the {MAX_LABELS}"),
])
def test_a_labels_file_past_the_bound_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(ModelError) as error:
        read_labels(path)
    assert problem in str(error.value) and "\n" not in str(error.value)


def test_labels_up_to_the_bound_are_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(f"0 background\n{MAX_LABELS - 1} last\n")
    labels = read_labels(path)
    assert len(labels) == MAX_LABELS and labels[0] == "background" and labels[-1] == "last"
