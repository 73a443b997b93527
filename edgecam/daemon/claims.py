"""What one camera instance holds that no other may: its socket, ports, snapshot folder, Pi camera.

Two instances (edgecam@a, edgecam@b) whose configs name the same socket path would take the
socket from each other (the second finds no daemon answering on it during a restart of the
first, unlinks it and binds its own); the same metrics or web port fails with an EADDRINUSE
that names nobody; the same snapshot folder would have each one's retention delete the other's files; and
the same Pi camera is refused by libcamera as "busy", which the daemon takes for a camera that
is away and waits for. So each daemon holds an flock on one small file per such resource, in
the runtime folder every instance shares (the units' RuntimeDirectory=, /run/edgecam), with its
own name written in it. The second to want one is refused with one line naming the first. A
lock goes with its process (kill -9 included): a file left behind is never a stale claim.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgecam.common.files import set_aside
from edgecam.config import Camera, Config, picamera_number, split_listen
from edgecam.config.fields import RUNTIME_DIR
from edgecam.errors import EX_UNAVAILABLE, EdgecamError


class ClaimError(EdgecamError):
    """Another running instance holds what this config needs (the message names it). 69, as a
    socket another daemon answers on: the unit does not restart it (RestartPreventExitStatus=)."""

    exit_code = EX_UNAVAILABLE


@dataclass(frozen=True)
class Resource:
    key: str  # the config key that names it, for the message
    what: str  # the resource itself: equal across instances exactly when they collide


def resources(config: Config) -> dict[str, Resource]:
    """What `config` makes this instance use alone, by identity."""
    found = []
    outputs = config.outputs
    if outputs.socket.enabled:
        found.append(Resource("outputs.socket.path", os.path.realpath(outputs.socket.path)))
    if outputs.metrics.enabled:
        port = split_listen(outputs.metrics.listen)[1]
        found.append(Resource("outputs.metrics.listen", f"TCP port {port}"))
    if config.web.enabled:
        port = split_listen(config.web.listen)[1]
        found.append(Resource("web.listen", f"TCP port {port}"))
    if config.snapshots.enabled:
        found.append(Resource("snapshots.dir", os.path.realpath(config.snapshots.dir)))
    number = picamera_number(config.camera.source)
    if number is not None:
        found.append(Resource("camera.source", f"picamera2 camera {number}"))
    return {resource.what: resource for resource in found}


def claims_folder() -> Path:
    """Where every instance's claims meet: $RUNTIME_DIRECTORY (systemd's, /run/edgecam) when
    the unit runs it, else /run/edgecam when it may be written, else a folder of this user's."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / "claims"
    shared = RUNTIME_DIR
    if os.access(shared, os.W_OK) or (not shared.exists() and os.access(shared.parent, os.W_OK)):
        return shared / "claims"
    return Path(tempfile.gettempdir()) / f"edgecam-{os.getuid()}" / "claims"


class Claims:
    """The resources this daemon holds; `hold` takes what a config adds, `keep_only` lets go."""

    def __init__(self, camera: Camera, config_path: str | None, folder: Path | None = None) -> None:
        self._camera = camera
        self._config_path = str(config_path or camera.config_path)
        self._folder = folder or claims_folder()
        self._held: dict[str, int] = {}  # Resource.what -> the locked file's descriptor

    def hold(self, config: Config) -> None:
        """Takes every resource `config` needs that is not held yet; ClaimError naming the
        instance that holds one, and then nothing new is held."""
        taken: dict[str, int] = {}
        try:
            for what, resource in resources(config).items():
                if what not in self._held:
                    taken[what] = self._take(resource)
        except BaseException:
            for fd in taken.values():
                os.close(fd)
            raise
        self._held.update(taken)

    def keep_only(self, config: Config) -> None:
        """Lets go of what `config` does not need (after a reload, or one refused)."""
        wanted = resources(config)
        for what in [what for what in self._held if what not in wanted]:
            os.close(self._held.pop(what))

    def close(self) -> None:
        for fd in self._held.values():
            os.close(fd)
        self._held = {}

    def _take(self, resource: Resource) -> int:
        self._folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(resource.what.encode()).hexdigest()[:24]
        fd = _open_claim(self._folder / f"{name}.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ClaimError(f"{self._config_path}: {resource.key}: {resource.what} is already used by "
                             f"{holder}") from None
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps({"camera": self._camera.name, "config": self._config_path,
                             "pid": os.getpid(), "what": resource.what}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        return fd


def _open_claim(path: Path) -> int:
    """The claim file, opened to be locked and written: a regular file, never through a symlink
    (a link planted in the folder would have the daemon truncate what it points at). Anything
    else there (a link, a FIFO) is set aside once and the file made anew; what a crash left in
    a regular one (half a record, garbage) is rewritten once the lock is taken."""
    for attempt in (1, 2):
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o660)
        except OSError as exc:
            if exc.errno != errno.ELOOP or attempt == 2:
                raise
            set_aside(path, "a claim file that is a symlink")
            continue
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)
        if attempt == 1:
            set_aside(path, "a claim file that is not a regular file")
    raise EdgecamError(f"{path}: cannot make this claim file a regular file")


_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _holder(fd: int) -> str:
    """`camera a (/etc/edgecam/a.yaml, pid 812)`, from the holder's record (which a crash or a
    hand may have left cut or garbage: then the holder is not named)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError, RecursionError):
        record = {}
    if not isinstance(record, dict) or not record:
        return "another running edgecam"
    name, config, pid = record.get("camera", ""), record.get("config"), record.get("pid")
    try:
        camera = Camera.named(name) if isinstance(name, str) else None
    except EdgecamError:
        camera = None
    if camera is None:
        return "another running edgecam"
    if not isinstance(config, str) or type(pid) is not int:
        return f"{camera.describe()} (another running edgecam)"
    return f"{camera.describe()} ({config[:200]}, pid {pid})"
