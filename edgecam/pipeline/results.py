"""What one classified frame produces, and how it reads on each output.

One place defines the socket message, the journal fields and the readable
line, so `edgecam tail`, `journalctl` and `--print` always agree.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from edgecam.models.base import Classification, Label


@dataclass(frozen=True)
class Result:
    seq: int
    ts: float  # capture time, seconds since the epoch
    latency_ms: float  # capture to result
    inference_ms: float  # start of inference (preprocessing included) to result
    classification: Classification
    zone: str | None = None  # the zone of the picture it is about; None: the whole frame
    snapshot: str | None = None  # the JPEG of its frame (a label change, with snapshots on)
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
        if self.snapshot is not None:
            message["snapshot"] = self.snapshot
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
                **({"EDGECAM_SNAPSHOT": self.snapshot} if self.snapshot else {}),
                **({"EDGECAM_STILL": "1"} if self.still else {})}


def stats_message(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"type": "stats", "ts": round(time.time(), 3), **snapshot}


# One encoder for every line (json.dumps with `separators` would build a new one each call).
_ENCODER = json.JSONEncoder(separators=(", ", ": "))


def json_line(message: dict[str, Any]) -> bytes:
    return (_ENCODER.encode(message) + "\n").encode()
