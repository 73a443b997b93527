"""Files the user names, and files the daemon writes: one clear line when they fail.

Reading: a missing or unreadable file the config, a head or a model names
ends in one line naming the file and `what` it was for, never a traceback.
Writing: models, heads and merged heads are replaced atomically (temp file,
fsync, rename, fsync of the folder) so a power cut leaves the old file or
the new one, never half of either. A file the daemon finds unusable anyway
(cut by a disk fault, poisoned by a remote input) is set aside, renamed
`<name>.corrupt` for a person to look at, so that the next start goes on without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgecam.errors import EdgecamError, MissingFileError, ModelError

log = logging.getLogger(__name__)


def read_user_file(path: str | Path, what: str, *, error: type[EdgecamError] = EdgecamError,
                   hint: str = "") -> bytes:
    """The bytes of `path`, or one line naming it and `what` it is (MissingFileError, `error`).

    `hint` follows the "not found" line: how to make the file (`edgecam learn add …`).
    """
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"{what} not found: {path}{hint}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None


def read_user_text(path: str | Path, what: str, *, error: type[EdgecamError] = EdgecamError,
                   hint: str = "") -> str:
    """As read_user_file, decoded as UTF-8 (a file that is not is one line too)."""
    data = read_user_file(path, what, error=error, hint=hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: the {what} is not UTF-8 text") from None


def file_sha256(path: str | Path) -> str:
    """The sha256 of a model file, in hex; one line (MissingFileError, ModelError) if unreadable."""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except FileNotFoundError:
        raise MissingFileError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None


def atomic_write(path: Path, data: bytes, what: str = "file") -> None:
    """Replaces `path` with `data` all at once; keeps an existing file's mode and owner."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = os.stat(path) if path.exists() else None
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise EdgecamError(f"{path}: cannot write the {what} here: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            _keep_mode(file.fileno(), existing)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        kept = "; the previous file is unchanged" if existing is not None else ""
        raise EdgecamError(f"{path}: cannot write the {what}: {exc.strerror}{kept}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_folder(path.parent)


def set_aside(path: Path, why: str) -> Path | None:
    """Renames an unusable file to `<name>.corrupt` (replacing an older one), with one line;
    the path it went to, or None if it could not be moved (then it is removed if it can be:
    a file left in place would fail every start the same way)."""
    aside = path.with_name(f"{path.name}.corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        log.warning("%s: %s; cannot set it aside (%s): removed it", path, why, exc.strerror)
        return None
    fsync_folder(path.parent)
    log.warning("%s: %s; set aside as %s, going on without it", path, why, aside.name)
    return aside


@contextlib.contextmanager
def locked(path: str | Path, what: str = "file") -> Iterator[None]:
    """Serializes read-modify-write of a file the daemon reads (a head) between commands.

    An advisory lock on the file's folder (the file itself is replaced by rename, so it
    cannot carry the lock, and a lock file would be litter). Readers (the daemon) need
    none: they always see a whole old or a whole new file.
    """
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise EdgecamError(f"{path}: cannot write the {what} here: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Makes a rename in `folder` survive a power cut (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _keep_mode(fd: int, existing: os.stat_result | None) -> None:
    if existing is None:
        os.fchmod(fd, 0o666 & ~_umask())
        return
    os.fchmod(fd, existing.st_mode & 0o777)
    if os.geteuid() == 0:
        os.fchown(fd, existing.st_uid, existing.st_gid)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
