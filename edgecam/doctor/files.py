"""Small facts about paths the checks report: the nearest folder that exists, and who owns a file."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path


def nearest_existing(path: Path) -> Path:
    """`path`, or the nearest of its parents that exists (what the daemon would create it in)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def ownership(info: os.stat_result) -> str:
    """`owner:group mode`, as `ls -l` would name them (numbers where there is no name)."""
    return f"{owner_name(info)}:{group_name(info)} {stat.S_IMODE(info.st_mode):04o}"


def owner_name(info: os.stat_result) -> str:
    try:
        return pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        return str(info.st_uid)


def group_name(info: os.stat_result) -> str:
    try:
        return grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        return str(info.st_gid)
