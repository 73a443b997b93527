"""The results socket: its folder (needed to run), the folder's group, and whether a daemon serves it.

The daemon binds `outputs.socket.path`, creating its folder if it must; under
systemd the folder is /run/edgecam, made at each start by the unit's
`RuntimeDirectory=edgecam` (owner and group edgecam, mode 0750), so only the
group's members can enter it and read results. "Can use the folder" is
judged for the user running the doctor with access(2), which is what the
kernel will apply to them: root passes any permission bits, so for root
only a folder that is missing and cannot be made, or is not a folder at all,
fails. A user who cannot write the folder passes when it belongs to the
service's user, which is the one that binds there.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecam.config import SocketConfig
from edgecam.config.fields import RUNTIME_DIR
from edgecam.doctor.check import Check, failed, passed
from edgecam.doctor.files import group_name, nearest_existing, owner_name, ownership
from edgecam.doctor.users import SERVICE_GROUP, group_exists, user_name
from edgecam.outputs.socket import STATS_INTERVAL_S

SERVICE_USER = "edgecam"
_CONNECT_S = 1.0
_MOVE_FIX = "set outputs.socket.path to a file in a folder (the default: /run/edgecam/results.sock)"


@dataclass(frozen=True)
class RunningDaemon:
    """A daemon answering on the socket, and its latest stats message (None if none came in time)."""

    stats: dict[str, Any] | None

    def note(self, what: str = "the camera") -> str:
        """`what` is held by the daemon, with what its stats say of it."""
        held = f"the daemon is running and holds {what}"
        rates = (self.stats or {}).get("rates")
        if not isinstance(rates, dict) or rates.get("input_fps") is None:
            return f"{held} (no stats from it within {STATS_INTERVAL_S + 1:g} s)"
        inference = (self.stats or {}).get("inference_ms")
        p50 = inference.get("p50") if isinstance(inference, dict) else None
        took = f", {p50:.1f} ms per inference (median)" if isinstance(p50, int | float) else ""
        return (f"{held}: its stats say {rates['input_fps']:.1f} fps captured, "
                f"{rates.get('classified_fps') or 0:.1f} classified{took}")


def running_daemon(path: str, wait_s: float = STATS_INTERVAL_S + 1) -> RunningDaemon | None:
    """The daemon serving `path`, if one accepts a connection; waits up to `wait_s` for its stats."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    conn.settimeout(_CONNECT_S)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    with conn:
        deadline = time.monotonic() + wait_s
        pending = b""
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            try:
                chunk = conn.recv(65536)
            except OSError:  # the timeout included
                break
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("type") == "stats":
                    return RunningDaemon(message)
    return RunningDaemon(None)


def check_socket_folder(config: SocketConfig) -> Check:
    name = "socket folder"
    if not config.enabled:
        return passed(name, "no socket (outputs.socket.enabled: false)")
    path = Path(config.path)
    folder, user = path.parent, user_name()
    try:
        info = folder.stat()
    except FileNotFoundError:
        return _missing_folder(folder, user)
    except NotADirectoryError:
        return failed(name, f"{nearest_existing(folder)} is a file, not a folder", _MOVE_FIX)
    except PermissionError:
        return failed(name, f"{user} cannot reach {folder}: a folder above it is closed to them",
                      f"let {user} through the folders above it (chmod o+x), or move outputs.socket.path")
    if not stat.S_ISDIR(info.st_mode):
        return failed(name, f"{folder} is a file, not a folder", _MOVE_FIX)
    where = f"{folder} ({ownership(info)})"
    if not os.access(folder, os.R_OK | os.X_OK):
        return failed(name, f"{user} cannot read {where}", _let_in_fix(folder, group_name(info), user))
    if path.exists() and not stat.S_ISSOCK(path.lstat().st_mode):
        return failed(name, f"{path} exists and is not a socket",
                      "remove it, or set outputs.socket.path to another file")
    if os.access(folder, os.W_OK | os.X_OK):
        return passed(name, f"{where}: {user} can serve the socket there")
    if owner_name(info) == SERVICE_USER:
        return passed(name, f"{where}: the service's user serves the socket there, {user} can read it")
    return failed(name, f"{user} cannot create the socket in {where}",
                  f"run the daemon as its owner, or hand it to the service: sudo chown "
                  f"{SERVICE_USER}:{SERVICE_GROUP} {folder}")


def _missing_folder(folder: Path, user: str) -> Check:
    name = "socket folder"
    if folder == RUNTIME_DIR:
        return passed(name, f"{folder} does not exist yet: systemd creates it when edgecam.service "
                            "starts (RuntimeDirectory=edgecam)")
    parent = nearest_existing(folder)
    if not parent.is_dir():
        return failed(name, f"{parent} is a file, not a folder", _MOVE_FIX)
    if os.access(parent, os.W_OK | os.X_OK):
        return passed(name, f"{folder} does not exist yet: the daemon creates it ({user} can write "
                            f"{parent})")
    return failed(name, f"{folder} does not exist and {user} cannot create it in {parent}",
                  f"create it: sudo install -d -m 0750 -o {SERVICE_USER} -g {SERVICE_GROUP} {folder}")


def _let_in_fix(folder: Path, group: str, user: str) -> str:
    if group == SERVICE_GROUP:
        return f"sudo usermod -aG {SERVICE_GROUP} {user}, then log in again"
    return (f"give the folder to the group that reads results: sudo chgrp {SERVICE_GROUP} {folder} && "
            f"sudo chmod 0750 {folder}, and sudo usermod -aG {SERVICE_GROUP} {user}")


def check_socket_group(config: SocketConfig) -> Check:
    name = "socket group"
    if not config.enabled:
        return passed(name, "no socket (outputs.socket.enabled: false)")
    folder = Path(config.path).parent
    if not group_exists(SERVICE_GROUP):
        return failed(name, f"there is no {SERVICE_GROUP} group to share results with",
                      "sudo make install creates the edgecam user and group")
    try:
        info = folder.stat()
    except OSError:
        if folder == RUNTIME_DIR:
            return passed(name, f"systemd creates {folder} for group {SERVICE_GROUP} "
                                "(RuntimeDirectoryMode=0750)")
        return failed(name, f"{folder} does not exist yet: it will belong to whoever starts the daemon",
                      f"create it for the group: sudo install -d -m 0750 -o {SERVICE_USER} "
                      f"-g {SERVICE_GROUP} {folder}")
    group, mode = group_name(info), stat.S_IMODE(info.st_mode)
    if group != SERVICE_GROUP:
        return failed(name, f"{folder} belongs to group {group}, not {SERVICE_GROUP}: the group's "
                            "members cannot read results", f"sudo chgrp {SERVICE_GROUP} {folder} && "
                                                           f"sudo chmod 0750 {folder}")
    if mode & (stat.S_IRGRP | stat.S_IXGRP) != stat.S_IRGRP | stat.S_IXGRP:
        return failed(name, f"{folder} is group {SERVICE_GROUP}'s but its mode {mode:04o} keeps the "
                            "group out", f"sudo chmod g+rx {folder}")
    return passed(name, f"{folder} belongs to group {SERVICE_GROUP} ({mode:04o}): its members read "
                        "results (edgecam tail)")
