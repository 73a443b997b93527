"""The fleet's head files on disk, read at start and at each merge: a bad one is set aside.

Three files hold heads a member reads back: this device's own (`edgecam learn`
writes it), the members' merge saved for a restart without the broker
(fleet-members.head) and the merge it classifies with (fleet.head). Any of
them can be found cut by a power cut, or poisoned by what a member sent
before this version checked heads. Such a file would fail every start the
same way, so it is renamed `<name>.corrupt` with one line (common.files.set_aside)
and the member goes on without it: the broker sends the members' heads again,
and the merge is written anew. A head learned with another extractor is no
corruption (a rollout may change the model): it stays, and its error stands.
"""

from __future__ import annotations

from pathlib import Path

from edgecam.common.files import read_user_file, set_aside
from edgecam.errors import MissingFileError
from edgecam.fleet.heads import Target
from edgecam.models.fewshot.head import Head, HeadError


def read_or_set_aside(path: Path, what: str, dim: int | None = None) -> Head | None:
    """The head in `path`, or None when there is none or it was unusable (then set aside)."""
    try:
        data = read_user_file(path, what, error=HeadError)
        return Head.parse(data, str(path), dim)
    except MissingFileError:
        return None
    except HeadError as exc:
        set_aside(path, f"unusable {what} ({exc})")
        return None


def local_head(target: Target) -> Head | None:
    """This device's own head for `target`, None before it learned any (or once set aside);
    HeadError if it was learned with another extractor."""
    head = read_or_set_aside(target.local, "head of this device")
    if head is None or not head.classes:
        return None
    head.check_extractor(target.extractor_sha256, target.extractor, str(target.local))
    if head.dim != target.dim:  # the same sha256 cannot give another width; a hand-edited file can
        set_aside(target.local, f"{head.dim}-wide, the extractor gives {target.dim}")
        return None
    return head


def saved_members(target: Target) -> Head | None:
    """At start: the members' merge saved by the last run, if usable; a merge left unusable on
    disk (fleet.head or fleet-members.head) is set aside, with one line, before anything reads it."""
    read_or_set_aside(target.merged, "merged head", target.dim)
    return read_or_set_aside(target.members_file, "merge of the members' heads", target.dim)
