"""Who runs the doctor, and their membership of the `edgecam` and `video` groups.

The service runs as user `edgecam` with `video` added by its unit, so it needs
nothing from the person setting it up; that person needs `edgecam` to read the
results socket (`edgecam tail`, in a folder only the group may enter) and
`video` to open the camera themselves (`edgecam learn --from-camera`, this
doctor). Membership is judged on this process's groups, which is what the
kernel checks: a user added with usermod keeps the old groups until they log
in again, and is told so.
"""

from __future__ import annotations

import grp
import os
import pwd

from edgecam.doctor.check import Check, failed, passed

SERVICE_GROUP = "edgecam"
#: the groups a user setting up the camera needs, and what for
NEEDED = {SERVICE_GROUP: "to read the results socket", "video": "to open the camera"}


def user_name() -> str:
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def in_group(name: str) -> bool:
    """Whether this process has group `name` now (False if there is no such group)."""
    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        return False
    return gid == os.getgid() or gid in os.getgroups()


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def check_groups() -> Check:
    user = user_name()
    if os.getuid() == 0:
        return passed("groups", "root needs no groups")
    absent = [name for name in NEEDED if not group_exists(name)]
    lacking = [name for name in NEEDED if name not in absent and not in_group(name)]
    listed = [name for name in lacking if user in grp.getgrnam(name).gr_mem]
    missing = [name for name in lacking if name not in listed]
    problems, fixes = [], []
    if absent:
        problems.append(f"there is no {' or '.join(absent)} group")
        fixes.append("sudo make install creates the edgecam user and group")
    if missing:
        problems.append(f"{user} is not in {', '.join(f'{n} ({NEEDED[n]})' for n in missing)}")
        fixes.append(f"sudo usermod -aG {','.join(missing)} {user}, then log in again")
    if listed:
        problems.append(f"{user} was added to {' and '.join(listed)} after this login")
        fixes.append("log out and in again")
    if problems:
        return failed("groups", "; ".join(problems), "; ".join(fixes))
    return passed("groups", f"{user} is in {' and '.join(NEEDED)}")
