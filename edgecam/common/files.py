"""Files the user names, and files the daemon writes: one clear line when they fail.

Reading: a file the config, a head or a model names is opened without
blocking (O_NONBLOCK: a FIFO named as a labels file must not hang the start),
must be a regular file (not a FIFO, a device such as /dev/zero, a socket or a
folder) and at most its kind's cap (a sparse 4 GB "labels file" must not be
read into memory); else one line naming the file and `what` it was for,
never a traceback. `user_file_problem` is the same check without opening the
file, for `edgecam check-config`.
Writing: models, heads and merged heads are replaced atomically (temp file,
fsync, rename, fsync of the folder) so a power cut leaves the old file or
the new one, never half of either. A file the daemon finds unusable anyway
(cut by a disk fault, poisoned by a remote input) is set aside, renamed
`<name>.corrupt` for a person to look at, so that the next start goes on without it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgecam.errors import EdgecamError, MissingFileError, ModelError

log = logging.getLogger(__name__)

MB = 1_000_000
# What each kind of file the user names may weigh (docs/CONFIGURATION.md, "Files it reads"): many times
# the largest real one, far below what a Pi's memory holds.
MAX_CONFIG_BYTES = 1 * MB  # a config file (config/edgecam.yaml is 6 kB)
MAX_LABELS_BYTES = 1 * MB  # ImageNet's 1001 labels are 11 kB; 21,843 classes' are 0.4 MB
MAX_HEAD_BYTES = 64 * MB  # 1,000 classes of 1,280 numbers are 25 MB
MAX_SECRET_BYTES = 65_536  # a token or password file (one line; room for comments)
MAX_PEM_BYTES = 1 * MB  # a CA bundle (Debian's ca-certificates.crt is 0.2 MB), a certificate, a key
MAX_MODEL_BYTES = 2_000 * MB  # a model (ONNX's protobuf cannot be larger)
MAX_IMAGE_BYTES = 100 * MB  # a photo of a camera.source folder
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symlink"}


def kind_problem(mode: int, size: int, max_bytes: int) -> str | None:
    """Why a file of this mode and size is not one to read (not regular, too big); None if it is."""
    if not stat.S_ISREG(mode):
        return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'a special file')})"
    if size > max_bytes:
        return f"{_size(size)}, more than the {_size(max_bytes)} such a file may be"
    return None


def user_file_problem(path: str | Path, max_bytes: int) -> str | None:
    """What is wrong with reading `path` (stat only: never blocks); None when it is fine or may
    not be looked at (the daemon, reading it, says so). A missing file is `no such file`."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "no such file"
    except OSError as exc:
        return f"cannot look at it: {exc.strerror}" if exc.errno == errno.ENAMETOOLONG else None
    return kind_problem(info.st_mode, info.st_size, max_bytes)


def read_user_file(path: str | Path, what: str, *, error: type[EdgecamError] = EdgecamError,
                   hint: str = "", max_bytes: int = MAX_HEAD_BYTES) -> bytes:
    """The bytes of `path`, or one line naming it and `what` it is (MissingFileError, `error`):
    it must be a regular file of at most `max_bytes` (checked on the open file, which is opened
    without blocking, so a FIFO or /dev/zero is refused at once).

    `hint` follows the "not found" line: how to make the file (`edgecam learn add …`).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise MissingFileError(f"{what} not found: {path}{hint}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        problem = kind_problem(info.st_mode, info.st_size, max_bytes)
        if problem is not None:
            raise error(f"{path}: cannot be the {what}: {problem}")
        data = _read_at_most(fd, max_bytes + 1)  # it may have grown since fstat
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{path}: cannot be the {what}: more than the {_size(max_bytes)} it may be")
    return data


def read_user_text(path: str | Path, what: str, *, error: type[EdgecamError] = EdgecamError,
                   hint: str = "", max_bytes: int = MAX_HEAD_BYTES) -> str:
    """As read_user_file, decoded as UTF-8 (a file that is not is one line too)."""
    data = read_user_file(path, what, error=error, hint=hint, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: the {what} is not UTF-8 text") from None


def file_sha256(path: str | Path) -> str:
    """The sha256 of a model file, in hex; one line (MissingFileError, ModelError) if unreadable,
    not a regular file or larger than MAX_MODEL_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise MissingFileError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            problem = kind_problem(info.st_mode, info.st_size, MAX_MODEL_BYTES)
            if problem is not None:
                raise ModelError(f"{path}: cannot be a model: {problem}")
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _size(size: int) -> str:
    return f"{size / MB:g} MB" if size >= MB else f"{size} bytes"


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
    log.warning("%s: %s; set aside as %s", path, why, aside)
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
