"""File signatures: how a reload tells that a model, labels or head file was replaced in place.

`edgecam fetch-model`, `edgecam learn` and a plain `cp` all change a file under an
unchanged config; the signature (inode, device, size, modification time) changes
with them, so SIGHUP re-reads exactly the files that changed.
"""

from __future__ import annotations

import os
from pathlib import Path

Signature = tuple[int, int, int, int]


def file_signature(path: str | Path) -> Signature | None:
    """What changes when a file is rewritten (atomically or not); None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def signatures(*paths: str) -> dict[str, Signature | None]:
    return {path: file_signature(path) for path in paths}


def changed(loaded: dict[str, Signature | None]) -> bool:
    """Whether any of the files recorded at load time is now different (or gone)."""
    return any(file_signature(path) != signature for path, signature in loaded.items())
