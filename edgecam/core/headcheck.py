"""Checking a head file's document before anything is built from it (the format: models.fewshot.head).

It is on the ground floor because more than the classifier reads a head: the
config's check of the labels it names (config.labels: a head's classes are its
model's labels), `edgecam learn`, the fleet's merge of the members' heads.

A head comes from a file this device wrote, a file a user hands `edgecam learn
merge`, or another fleet member's retained MQTT message, which anyone who can
publish to the broker can forge. So every number is checked before it is kept:
the width against the extractor's when it is known, counts as whole numbers
from 1 to MAX_COUNT (a 309-digit count would overflow every float it meets),
sums finite and no longer than `count` unit vectors can add up to, at most
MAX_CLASSES classes. Whatever the bytes are (deeply nested, huge numbers,
invalid UTF-8), the only error is HeadError: one line naming where it came from;
CorruptHeadError when the bytes themselves do not check out (what a power cut
may leave), as against a head of another format or version.

A sum is either a list of numbers (`"sum"`, version 1: what files hold, float64
bit for bit) or, in what the fleet publishes (version 2), `"sum_f32"`: the sum
as little-endian float32 in base64, a quarter of the bytes. The fleet's head
(an aggregator's merge) also names the members it merged (`"members"`: device
and the sha256 of the head payload it merged); no head claims more than
MEMBER_WEIGHT examples of a class per member it names (head.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.common.files import read_user_file
from edgecam.errors import EdgecamError, ModelError

FORMAT = "edgecam-head"
VERSION = 2  # 1: sums as lists of numbers (files); 2: sums may be "sum_f32" (what the fleet publishes)
UNKNOWN = "unknown"
MAX_LABEL = 100
# More classes than anyone teaches a camera by hand: a head of 100 classes of a 1024-wide
# extractor is 2.2 MB of JSON, 0.8 MB in memory; the limit is what makes 1000 absurd.
MAX_CLASSES = 1000
# Examples of one class: `learn add` takes photos a few at a time; a million is already absurd,
# and keeps every count exactly representable as a float (a sum's length is checked against it).
MAX_COUNT = 1_000_000
MAX_DIM = 1 << 20
MAX_MEMBERS = 100_000  # members a fleet head may name (its payload is capped long before)
MAX_DEVICE = 200  # characters of a member's name (an MQTT topic level)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", int: "a whole number"}
# A sum of `count` unit vectors is at most `count` long; float32 embeddings leave some slack.
_NORM_SLACK = 1e-4


class HeadError(ModelError):
    """A head file that cannot be used: corrupt, another format or another extractor."""


class CorruptHeadError(HeadError):
    """A head file whose bytes do not check out (cut, emptied, garbage: what a power cut may
    leave), as against a head of another format, version or extractor. `problem`: the message
    without the file's name (common.files.set_aside names it)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.problem = problem


def check_label(label: str) -> str:
    """The label, stripped of surrounding blanks; raises EdgecamError for an unusable one."""
    text = label.strip()
    if not text:
        raise EdgecamError("the label is empty: name the class, e.g. `edgecam learn add \"my cat\" ...`")
    if len(text) > MAX_LABEL:
        raise EdgecamError(f"the label is {len(text)} characters long (at most {MAX_LABEL})")
    if not text.isprintable():
        raise EdgecamError(f"the label {text!r} has control characters (tabs, newlines...)")
    if text.lower() == UNKNOWN:
        raise EdgecamError(f"{UNKNOWN!r} is reserved for images that match no class: "
                           "pick another label")
    return text


@dataclass
class Checked:
    """A head document that checked out: what Head is built from."""

    sha256: str
    dim: int
    name: str
    fleet: bool
    classes: list[tuple[str, int, np.ndarray]]  # label, count, sum (float64)
    members: list[tuple[str, str]] | None = None  # (device, sha256 of its head): a fleet head's


def read_head_file(path: str | Path) -> Checked:
    """Reads and checks a head file; one clear line (HeadError, MissingFileError) if unusable."""
    data = read_user_file(path, "head file", error=HeadError,
                          hint=" (create it with `edgecam learn add LABEL IMAGE...`)")
    return read_document(data, str(path))


def read_document(data: bytes, where: str, dim: int | None = None) -> Checked:
    """The checked head in `data`; HeadError (one line naming `where`) for anything else.

    `dim`: the width the head must have (the extractor's), checked before any sum is read."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError, MemoryError):
        # ValueError covers a number of more than 4300 digits; RecursionError deep nesting.
        raise CorruptHeadError(where, "not an edgecam head file, or a corrupt one (not valid JSON; "
                               "truncated?)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise HeadError(f"{where}: not an edgecam head file (no \"format\": \"{FORMAT}\")")
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise CorruptHeadError(where, f"corrupt head file: bad version {str(version)[:20]}")
    if version > VERSION:
        raise HeadError(f"{where}: head format version {str(version)[:20]} is newer than this "
                        f"edgecam reads ({VERSION}): upgrade edgecam")
    try:
        return _checked(document, dim)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CorruptHeadError(where, f"corrupt head file: {exc}") from None


def _checked(document: dict[str, Any], expected_dim: int | None) -> Checked:
    extractor = _typed(document, "extractor", dict)
    sha = _typed(extractor, "sha256", str)
    if not _SHA256.match(sha):
        raise ValueError(f"extractor.sha256 is not a sha256: {sha[:80]!r}")
    dim = _typed(extractor, "dim", int)
    if not 2 <= dim <= MAX_DIM:
        raise ValueError(f"extractor.dim {str(dim)[:20]} is out of range")
    if expected_dim is not None and dim != expected_dim:
        raise ValueError(f"{dim}-wide, this device's embedding extractor gives {expected_dim}")
    name = extractor.get("name", "")
    items = _typed(document, "classes", list)
    if len(items) > MAX_CLASSES:
        raise ValueError(f"{len(items)} classes (at most {MAX_CLASSES})")
    checked = Checked(sha, dim, name if isinstance(name, str) else "", document.get("fleet") is True,
                      [], _members(document))
    seen: set[str] = set()
    for number, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"classes[{number}] is not an object")
        label = _label(item, number, seen)
        count = _typed(item, "count", int)
        if count < 1:
            raise ValueError(f"classes[{number}] ({label!r}): count {count} is not at least 1")
        if count > MAX_COUNT:
            raise ValueError(f"classes[{number}] ({label!r}): count {str(count)[:20]}… is more "
                             f"than {MAX_COUNT}")
        checked.classes.append((label, count, _sum(item, number, label, count, dim)))
    return checked


def _label(item: dict[str, Any], number: int, seen: set[str]) -> str:
    label = _typed(item, "label", str)
    try:
        label_ok = check_label(label) == label
    except EdgecamError:
        label_ok = False
    if not label_ok:
        raise ValueError(f"classes[{number}]: unusable label {label[:80]!r}")
    if label in seen:
        raise ValueError(f"classes[{number}]: label {label!r} appears twice")
    seen.add(label)
    return label


def _members(document: dict[str, Any]) -> list[tuple[str, str]] | None:
    """A fleet head's members: [{"device": NAME, "sha256": HEX}, ...], or None without the key."""
    if "members" not in document:
        return None
    items = _typed(document, "members", list)
    if len(items) > MAX_MEMBERS:
        raise ValueError(f"{len(items)} members (at most {MAX_MEMBERS})")
    members = []
    for number, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"members[{number}] is not an object")
        device, sha = _typed(item, "device", str), _typed(item, "sha256", str)
        if not (0 < len(device) <= MAX_DEVICE and device.isprintable() and "/" not in device
                and "+" not in device and "#" not in device) or not _SHA256.match(sha):
            raise ValueError(f"members[{number}] is not a member's name and sha256")
        members.append((device, sha))
    return members


def _sum(item: dict[str, Any], number: int, label: str, count: int, dim: int) -> np.ndarray:
    if "sum_f32" in item:
        total = _float32s(_typed(item, "sum_f32", str), dim, f"classes[{number}] ({label!r})")
    else:
        values = _typed(item, "sum", list)
        if len(values) != dim or not all(type(v) in (int, float) for v in values):
            raise ValueError(f"classes[{number}] ({label!r}): sum is not {dim} numbers")
        total = np.array(values, np.float64)  # an int too large for a float: OverflowError
    if not np.isfinite(total).all():
        raise ValueError(f"classes[{number}] ({label!r}): sum is not finite")
    if float(np.abs(total).max()) > count:  # before the norm, which could overflow
        raise ValueError(f"classes[{number}] ({label!r}): sum has a value larger than {count}")
    if float(np.linalg.norm(total)) > count * (1 + _NORM_SLACK):
        raise ValueError(f"classes[{number}] ({label!r}): sum is longer than {count} "
                         "normalized embeddings can add up to")
    return total


def _float32s(text: str, dim: int, where: str) -> np.ndarray:
    """`dim` little-endian float32 in base64, as float64; the length is checked before decoding."""
    if len(text) != 4 * -(-4 * dim // 3):
        raise ValueError(f"{where}: sum_f32 is not {dim} float32 in base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: sum_f32 is not base64") from None
    return np.frombuffer(raw, "<f4").astype(np.float64)


def encode_float32s(values: np.ndarray) -> str:
    """The inverse of _float32s: what a published head's "sum_f32" holds."""
    return base64.b64encode(np.asarray(values, "<f4").tobytes()).decode("ascii")


def _typed(mapping: dict[str, Any], key: str, kind: type) -> Any:
    if key not in mapping:
        raise ValueError(f"{key!r} is missing")
    value = mapping[key]
    if type(value) is not kind:
        raise ValueError(f"{key!r} is not {_KIND_NAMES[kind]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
