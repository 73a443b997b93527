"""Logging set-up: the journal when systemd runs us, plain stderr otherwise.

Under systemd (JOURNAL_STREAM names our stderr) log records go to the
journal with their priority: through systemd-python where installed, else as
stderr lines with a `<N>` priority prefix, which journald understands.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class _PriorityFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def _stderr_is_journal() -> bool:
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == f"{device}:{inode}"


def setup_logging(level: str = "info") -> None:
    handler: logging.Handler
    if _stderr_is_journal():
        try:
            from systemd.journal import JournalHandler
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_PriorityFormatter("%(message)s"))
        else:
            handler = JournalHandler(SYSLOG_IDENTIFIER="edgecam")
            handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("edgecam: %(levelname)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
