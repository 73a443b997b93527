"""Results for a person (outputs/human.py): labels apart, runners-up under the floor hidden, and
`run --print` choosing text in a terminal and JSON in a pipe or with --json."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import time

from conftest import REPO

from edgecam.outputs.human import RUNNER_UP_FLOOR, labels_text, result_line, shown
from edgecam.outputs.stdout import PrintOutput

PIG = "hog, pig, grunter, squealer, Sus scrofa"
LABELS = [{"label": "macaw", "index": 89, "score": 0.98},
          {"label": PIG, "index": 342, "score": 0.012},
          {"label": "lorikeet", "index": 91, "score": 0.004}]


def message(**extra: object) -> dict:
    return {"type": "classification", "seq": 7, "ts": time.time(), "latency_ms": 41.4,
            "inference_ms": 30.0, "labels": LABELS, **extra}


def test_labels_with_commas_are_separated_unambiguously_and_the_floor_hides_noise() -> None:
    assert labels_text(LABELS) == f"macaw 0.98 | {PIG} 0.01"
    assert RUNNER_UP_FLOOR == 0.01


def test_the_top_label_is_shown_whatever_its_score() -> None:
    low = [{"label": "macaw", "index": 89, "score": 0.002}, {"label": "kite", "index": 21, "score": 0.001}]
    assert [item["label"] for item in shown(low)] == ["macaw"]


def test_a_result_line_has_the_time_the_zone_the_labels_and_the_latency() -> None:
    line = result_line(message(zone="door"))
    clock, rest = line.split("  ", 1)
    assert time.strptime(clock, "%H:%M:%S")
    assert rest == f"door: macaw 0.98 | {PIG} 0.01  (41 ms)"
    assert result_line(message()).endswith(f"  macaw 0.98 | {PIG} 0.01  (41 ms)")


class _Result:
    def message(self) -> dict:
        return message()


def test_print_output_writes_text_or_the_json_contract() -> None:
    text, raw = io.StringIO(), io.StringIO()
    PrintOutput(text, text=True).emit(_Result())  # type: ignore[arg-type]
    PrintOutput(raw).emit(_Result())  # type: ignore[arg-type]
    assert "macaw 0.98" in text.getvalue() and text.getvalue().count("\n") == 1
    assert json.loads(raw.getvalue())["labels"] == LABELS


def _classify_in_a_terminal(*args: str) -> str:
    """`edgecam classify` with a pseudo-terminal as stdout, as a person runs it."""
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    images = REPO.parent / "shared" / "images"
    models = REPO.parent / "shared" / "models"
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "classify", str(images / "parrot.jpg"),
                             "--model", str(models / "mobilenet_v2_1.0_224_quant.tflite"),
                             "--labels", str(models / "imagenet_labels.txt"), "--top-k", "5", *args],
                            stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    out = b""
    while chunk := _read(leader):
        out += chunk
    proc.wait(timeout=120)
    os.close(leader)
    return out.decode()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the other end closed
        return b""


def test_classify_hides_runners_up_under_the_floor() -> None:
    lines = _classify_in_a_terminal().splitlines()
    assert lines[0].endswith("parrot.jpg") and "macaw" in lines[1], lines
    scores = [float(line.split()[0]) for line in lines[2:]]
    assert all(score >= RUNNER_UP_FLOOR for score in scores), lines
