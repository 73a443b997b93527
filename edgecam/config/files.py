"""The files a config names, checked as `edgecam check-config` and the start check them.

The daemon reads each of them (config.schema's `check=`): a FIFO, a device
such as /dev/zero or a sparse 4 GB file named as a labels file would hang the
start or fill the memory there, so check-config refuses what is not a regular
file within its kind's cap (common.files) by a stat, which never blocks. The
daemon, reading them, checks again on the open file (common.files.read_user_file).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from edgecam.common.files import (
    MAX_HEAD_BYTES,
    MAX_LABELS_BYTES,
    MAX_MODEL_BYTES,
    MAX_PEM_BYTES,
    MAX_SECRET_BYTES,
    kind_problem,
    read_user_text,
    user_file_problem,
)
from edgecam.config.fields import MAX_STRING, parse_source, source_is_path
from edgecam.errors import ConfigError, EdgecamError, MissingFileError


def read_token(path: str) -> str:
    """The first line of a token file, stripped; ValueError saying why there is none (not a
    regular file, or more than MAX_SECRET_BYTES: common.files)."""
    try:
        text = read_user_text(path, "token file", max_bytes=MAX_SECRET_BYTES)
    except MissingFileError:
        raise ValueError(f"{path}: no such file") from None
    except EdgecamError as exc:
        raise ValueError(str(exc)) from None
    token = text.partition("\n")[0].strip()
    if not token:
        raise ValueError(f"{path}: its first line, the token, is empty")
    return token


def _user_file(max_bytes: int, *, required: bool) -> Callable[[str], None]:
    """A check of a file the daemon will read: a regular file within `max_bytes` (and there, if
    `required`; else one that is missing may be installed later, as fetch-model does)."""
    def check(value: str) -> None:
        problem = user_file_problem(value, max_bytes) if value else None
        if problem is not None and (required or problem != "no such file"):
            raise ValueError(f"{value}: {problem}")
    return check


pem_file = _user_file(MAX_PEM_BYTES, required=True)  # a TLS file
secret_file = _user_file(MAX_SECRET_BYTES, required=True)  # a token or password file
labels_file = _user_file(MAX_LABELS_BYTES, required=False)
head_file = _user_file(MAX_HEAD_BYTES, required=False)
model_file = _user_file(MAX_MODEL_BYTES, required=False)


def source_file(value: str) -> None:
    """A camera.source path that exists must be a file, a folder or a device (/dev/video0), not
    a FIFO or a socket, whose open would wait for a writer; one not there yet may be a USB
    camera still to be plugged in."""
    if not source_is_path(value):
        return
    try:
        mode = os.stat(value).st_mode
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise ValueError(f"{value[:200]}…: {exc.strerror}") from None
        return  # missing (or not ours to look at): opening the source says so, in one line
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISBLK(mode):
        raise ValueError(f"{value}: {kind_problem(mode, 0, 0)}: a camera source is a file, a "
                         "folder of photos or a camera device")


def source_override(value: str) -> str:
    """`edgecam run --source SRC`, checked as camera.source is (ConfigError naming --source)."""
    try:
        if len(value) > MAX_STRING:
            raise ValueError(f"{len(value):,} characters long (at most {MAX_STRING:,})")
        source = parse_source(value)
        source_file(source)
    except ValueError as exc:
        raise ConfigError([f"--source: {exc}"]) from None
    return source
