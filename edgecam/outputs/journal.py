"""The journal output: one structured entry per emitted result, one stats line a minute.

Through systemd-python where installed (apt python3-systemd on Raspberry Pi
OS), so `journalctl EDGECAM_LABEL=…` filters; else one readable line on
stderr, which systemd still puts in the journal, without the fields.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from edgecam.config import Config
from edgecam.core.results import Result
from edgecam.core.stats import status_line
from edgecam.outputs.base import Output, Sender

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 60.0


def systemd_sender() -> Sender | None:
    """systemd.journal.send, or None where systemd-python is not installed."""
    try:
        from systemd import journal
    except ImportError:
        return None
    return journal.send


class JournalOutput(Output):
    name = "journal"
    stats_interval_s = STATS_INTERVAL_S

    def __init__(self, sender: Sender | None, camera: str = "") -> None:
        self._send = sender
        # `journalctl EDGECAM_CAMERA=garage`: one camera's entries, whichever unit wrote them.
        self._camera = {"EDGECAM_CAMERA": camera} if camera else {}

    def emit(self, result: Result) -> None:
        if self._send is None:
            print(f"edgecam: {result.text()} [index {result.top.index}, seq {result.seq}]",
                  file=sys.stderr, flush=True)
            return
        self._send(**result.journal_fields(), **self._camera)

    def stats(self, figures: dict[str, Any]) -> None:
        text = f"stats: {status_line(figures, None)}"
        if self._send is None:
            print(f"edgecam: {text}", file=sys.stderr, flush=True)
            return
        frames = figures["frames"]
        self._send(MESSAGE=text, PRIORITY="6", SYSLOG_IDENTIFIER="edgecam",
                   EDGECAM_FRAMES_CAPTURED=str(frames["captured"]),
                   EDGECAM_FRAMES_CLASSIFIED=str(frames["classified"]),
                   EDGECAM_FRAMES_DROPPED=str(frames["dropped"]), **self._camera)

    def reusable(self, config: Config) -> bool:
        return True  # it has no settings

    def close(self) -> None:
        """Nothing to release: each entry is one datagram."""
