"""What one classified frame produces, and how it reads on each output.

A model back-end ranks its output into `Label`s and a `Classification`; the
pipeline wraps that into a `Result`, which every output, the snapshot writer,
the status page and the fleet read. They live here, on the ground floor, so
that none of those needs models/ to speak of a result.

One place defines the socket message, the journal fields and the readable
line, so `edgecam tail`, `journalctl` and `--print` always agree.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Label:
    """One scored label; `index` is the model's output index (-1: `unknown`)."""

    index: int
    label: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Classification:
    """The top-k labels of one image, best first, and how long inference took."""

    labels: tuple[Label, ...]
    inference_ms: float

    @property
    def top(self) -> Label:
        return self.labels[0]


@dataclass(frozen=True)
class Result:
    seq: int
    ts: float  # capture time, seconds since the epoch
    latency_ms: float  # capture to result
    inference_ms: float  # start of inference (preprocessing included) to result
    classification: Classification
    zone: str | None = None  # the zone of the picture it is about; None: the whole frame
    #: the snapshot (JPEG file) saved of its frame (a label change, with snapshots on); the
    #: messages still call it `snapshot` (the socket/MQTT/journal contract)
    snapshot_path: str | None = None
    #: a heartbeat repeating the last result: the frame was still (motion gating), not classified
    still: bool = False

    @property
    def top(self) -> Label:
        return self.classification.top

    def message(self) -> dict[str, Any]:
        """The socket / --print message (DESIGN.md contract; `zone` only with zones, `snapshot`
        only when one was saved, `still` only on a heartbeat of a still scene)."""
        message = {"type": "classification", "seq": self.seq, "ts": round(self.ts, 3),
                   "latency_ms": round(self.latency_ms, 1),
                   "inference_ms": round(self.inference_ms, 1),
                   "labels": [label.as_dict() for label in self.classification.labels]}
        if self.zone is not None:
            message["zone"] = self.zone
        if self.snapshot_path is not None:
            message["snapshot"] = self.snapshot_path
        if self.still:
            message["still"] = True
        return message

    def text(self) -> str:
        zone = f"{self.zone}: " if self.zone is not None else ""
        if self.still:
            return f"{zone}{self.top.label} {self.top.score:.2f} (still)"
        return f"{zone}{self.top.label} {self.top.score:.2f} ({self.latency_ms:.0f} ms)"

    def journal_fields(self) -> dict[str, str]:
        top = self.top
        return {"MESSAGE": self.text(), "PRIORITY": "6", "SYSLOG_IDENTIFIER": "edgecam",
                "EDGECAM_LABEL": top.label, "EDGECAM_INDEX": str(top.index),
                "EDGECAM_SCORE": f"{top.score:.4f}", "EDGECAM_LATENCY_MS": f"{self.latency_ms:.1f}",
                "EDGECAM_SEQ": str(self.seq), **({"EDGECAM_ZONE": self.zone} if self.zone else {}),
                **({"EDGECAM_SNAPSHOT": self.snapshot_path} if self.snapshot_path else {}),
                **({"EDGECAM_STILL": "1"} if self.still else {})}


def stats_message(figures: dict[str, Any]) -> dict[str, Any]:
    """The socket's stats message: Stats.figures() with its type and time."""
    return {"type": "stats", "ts": round(time.time(), 3), **figures}


# One encoder for every line (json.dumps with `separators` would build a new one each call).
_ENCODER = json.JSONEncoder(separators=(", ", ": "))


def json_line(message: dict[str, Any]) -> bytes:
    return (_ENCODER.encode(message) + "\n").encode()
