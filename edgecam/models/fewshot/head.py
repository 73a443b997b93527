"""The head file: classes learned by weight imprinting, what `edgecam learn` writes.

Weight imprinting (Qi, Brown & Lowe, CVPR 2018): an embedding extractor maps
each example photo to a unit vector; a class's weight (its prototype) is the
normalized mean of its examples' vectors, i.e. normalize(sum). A head stores,
per class, the running *sum* of the normalized embeddings and the example
count, so that examples can be added later, and heads from several devices
merge by adding sums and counts: the example-weighted average of the devices'
prototypes (federated averaging for imprinted weights), without a single photo
leaving a device. In a merge each head weighs at most MEMBER_WEIGHT examples
per class (its mean kept), so that no one device can outweigh the others.

File format, version 1: one UTF-8 JSON object (what `edgecam learn` writes).

    {
      "format": "edgecam-head",
      "version": 1,
      "extractor": {"sha256": "<64 hex digits>", "name": "<file name>", "dim": 1024},
      "classes": [
        {"label": "my cat", "count": 3, "sum": [<dim numbers>]},
        ...
      ]
    }

- `extractor.sha256` is the sha256 of the .tflite embedding extractor the
  examples went through. A head is only ever used with that exact file:
  embeddings of two extractors are not comparable. `name` is informative.
- A class's number (the `index` of a result) is its position in `classes`.
  Removing a class renumbers the classes after it; the label is the stable key.
- `sum` holds float64 values written so that they read back bit for bit;
  `count` from 1 to 1,000,000; at most 1000 classes (core/headcheck.py). Labels are
  non-empty, unique, at most 100 characters of printable text, and never
  `unknown` (the result below the similarity floor).
- `"fleet": true` marks the merge a fleet member classifies with (edgecam.fleet):
  it may have no classes yet (every image is then `unknown`) while the members'
  heads are on their way. Other readers ignore the key.
- On the wire (`to_wire`, version 2) each sum is `"sum_f32"` instead: its 1024
  numbers as little-endian float32 in base64, 5.5 kB a class instead of 21 kB;
  it reads back within float32 rounding (a relative 6e-8), far below what
  tells two classes apart. The fleet's head (an aggregator's merge) adds
  `"members": [{"device", "sha256"}, ...]`, what it merged (headcheck.py).
- A reader refuses a newer `version`, another `format`, and anything that does
  not check out (a truncated file, a wrong length, a sum longer than `count`
  unit vectors can add up to) with one line naming the file.

Writes are atomic (a temporary file in the same folder, fsync, rename, fsync of
the folder): a crash or a full disk leaves the old head intact, never half a head.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecam.common.files import atomic_write
from edgecam.config.fields import STATE_DIR
from edgecam.core.headcheck import (
    FORMAT,
    MAX_CLASSES,
    MAX_COUNT,
    UNKNOWN,
    Checked,
    CorruptHeadError,
    HeadError,
    check_label,
    encode_float32s,
    read_document,
    read_head_file,
)
from edgecam.errors import EdgecamError, ModelError

__all__ = ["UNKNOWN", "CorruptHeadError", "Head", "HeadClass", "HeadError", "check_label",
           "load_or_new", "merge_heads"]

DEFAULT_HEAD_PATH = STATE_DIR / "heads" / "default.head"
# What one head brings to a class in a merge: at most MEMBER_WEIGHT examples' weight (its
# count clipped, its sum scaled alike: its mean is kept). No single fleet member, however
# many examples it claims, can then override what the others learned (docs/FLEET.md, docs/PERFORMANCE.md).
MEMBER_WEIGHT = 5


@dataclass
class HeadClass:
    label: str
    count: int
    sum: np.ndarray  # float64, the sum of `count` normalized embeddings

    def prototype(self) -> np.ndarray:
        """The class's imprinted weight: the normalized mean of its examples (float64)."""
        norm = float(np.linalg.norm(self.sum))
        return self.sum / norm if norm > 0 else self.sum.copy()


@dataclass
class Head:
    """Learned classes for one embedding extractor."""

    extractor_sha256: str
    dim: int
    extractor_name: str = ""
    classes: list[HeadClass] = field(default_factory=list)
    fleet: bool = False  # the fleet's merge: may be empty (see the module's docstring)
    # The fleet's head: each member merged, with the sha256 of the head payload it merged.
    members: list[tuple[str, str]] | None = None

    # -- queries --------------------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.classes]

    def find(self, label: str) -> HeadClass | None:
        return next((c for c in self.classes if c.label == label), None)

    def prototypes(self) -> np.ndarray:
        """(classes, dim) float32: one unit-length weight vector per class, in class order."""
        if not self.classes:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([c.prototype() for c in self.classes]).astype(np.float32)

    # -- changes --------------------------------------------------------------------------------

    def add(self, label: str, embeddings: Iterable[np.ndarray]) -> HeadClass:
        """Adds normalized embeddings to `label`'s class, creating it (last) if new."""
        label = check_label(label)
        vectors = [np.asarray(e, np.float64).reshape(-1) for e in embeddings]
        for vector in vectors:
            if vector.shape != (self.dim,):
                raise ModelError(f"an embedding of {vector.size} values for a head of {self.dim}")
        if not vectors:
            raise EdgecamError(f"no examples to add to {label!r}")
        found = self.find(label)
        if found is None and len(self.classes) >= MAX_CLASSES:
            raise EdgecamError(f"a head holds at most {MAX_CLASSES} classes: remove one first")
        if found is not None and found.count + len(vectors) > MAX_COUNT:
            raise EdgecamError(f"{label!r} has {found.count} examples: at most {MAX_COUNT} in all")
        if found is None:
            found = HeadClass(label, 0, np.zeros(self.dim, np.float64))
            self.classes.append(found)
        for vector in vectors:  # one at a time: the same rounding as adding them on different days
            found.sum += vector
        found.count += len(vectors)
        return found

    def remove(self, label: str, where: str = "the head") -> HeadClass:
        found = self.find(label.strip())
        if found is None:
            known = ", ".join(repr(c.label) for c in self.classes) or "none"
            raise EdgecamError(f"{where}: no class {label.strip()!r} (classes: {known})")
        self.classes.remove(found)
        return found

    def merge(self, other: Head, where: str = "a head", weight: int = MAX_COUNT) -> int:
        """Adds `other`'s sums and counts, class by class (new labels go last, in its order),
        each class's count clipped to `weight` and its sum scaled alike (its mean is kept).
        Returns how many of its classes were left out: a head holds at most MAX_CLASSES."""
        if other.extractor_sha256 != self.extractor_sha256:
            raise HeadError(f"{where}: made with another embedding extractor "
                            f"({_describe_extractor(other)}, not {_describe_extractor(self)}): "
                            "heads only merge when learned with the same one")
        left_out = 0
        for theirs in other.classes:
            count = min(theirs.count, weight)
            total = theirs.sum * (count / theirs.count) if count < theirs.count else theirs.sum
            mine = self.find(theirs.label)
            if mine is None and len(self.classes) >= MAX_CLASSES:
                left_out += 1
            elif mine is None:
                self.classes.append(HeadClass(theirs.label, count, total.copy()))
            elif mine.count + count > MAX_COUNT:  # (only after 200,000 heads of MEMBER_WEIGHT)
                mine.sum = (mine.sum + total) * (MAX_COUNT / (mine.count + count))
                mine.count = MAX_COUNT
            else:
                mine.sum = mine.sum + total
                mine.count += count
        return left_out

    def check_extractor(self, sha256: str, model_path: str, where: str) -> None:
        """Refuses to go with any extractor but the one the head was learned with."""
        if sha256 != self.extractor_sha256:
            raise HeadError(
                f"{where}: learned with another embedding extractor ({_describe_extractor(self)}) "
                f"than {model_path} (sha256 {sha256[:12]}…): use that extractor, or learn the "
                "classes again with this one")

    # -- the file -------------------------------------------------------------------------------

    def to_json(self, wire: bool = False) -> dict[str, Any]:
        """The document: version 1 (sums as numbers, bit for bit), or with `wire` version 2."""
        classes: list[dict[str, Any]] = [
            {"label": c.label, "count": c.count,
             **({"sum_f32": encode_float32s(c.sum)} if wire else {"sum": [float(x) for x in c.sum]})}
            for c in self.classes]
        document: dict[str, Any] = {
            "format": FORMAT, "version": 2 if wire else 1,
            "extractor": {"sha256": self.extractor_sha256, "name": self.extractor_name,
                          "dim": self.dim}, "classes": classes}
        if self.fleet:
            document["fleet"] = True
        if self.members is not None:
            document["members"] = [{"device": d, "sha256": s} for d, s in self.members]
        return document

    def to_bytes(self) -> bytes:
        """The file's bytes."""
        return (json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False) + "\n").encode()

    def to_wire(self) -> bytes:
        """What the fleet publishes: sums as float32 (a quarter of to_bytes), the same for the
        same head, byte for byte (no timestamp, a fixed order)."""
        return (json.dumps(self.to_json(wire=True), separators=(",", ":")) + "\n").encode()

    def save(self, path: str | Path) -> None:
        """Writes the head atomically: the old file stays whole until the new one is."""
        atomic_write(Path(path), self.to_bytes(), "head")

    @classmethod
    def load(cls, path: str | Path) -> Head:
        """Reads and checks a head file; one clear line (HeadError, MissingFileError) if unusable."""
        return cls._built(read_head_file(path))

    @classmethod
    def parse(cls, data: bytes, where: str, dim: int | None = None) -> Head:
        """The head in `data` (core.headcheck.read_document: every number checked); `dim`, if given,
        the width it must have. HeadError, one line naming `where`, for anything else."""
        return cls._built(read_document(data, where, dim))

    @classmethod
    def _built(cls, checked: Checked) -> Head:
        return cls(checked.sha256, checked.dim, checked.name,
                   [HeadClass(label, count, total) for label, count, total in checked.classes],
                   fleet=checked.fleet, members=checked.members)


def load_or_new(path: str | Path, sha256: str, dim: int, model_path: str) -> tuple[Head, bool]:
    """The head at `path` checked against the extractor, or a new empty one; (head, is_new)."""
    path = Path(path)
    if not path.exists():
        return Head(sha256, dim, Path(model_path).name), True
    head = Head.load(path)
    head.check_extractor(sha256, model_path, str(path))
    if head.dim != dim:  # the same sha256 cannot give another width; a hand-edited file can
        raise HeadError(f"{path}: corrupt head file: {head.dim}-wide, the extractor gives {dim}")
    return head, False


def merge_heads(heads: Sequence[tuple[str, Head]]) -> Head:
    """One head with every class of `heads` (name, head): sums and counts added per label, each
    head bringing at most MEMBER_WEIGHT examples' weight to a class (Head.merge); classes past
    MAX_CLASSES are left out (the first heads' are kept)."""
    first_name, first = heads[0]
    merged = Head(first.extractor_sha256, first.dim, first.extractor_name)
    for name, head in heads:
        if head.extractor_sha256 != first.extractor_sha256:
            raise HeadError(f"{name}: made with another embedding extractor "
                            f"({_describe_extractor(head)}) than {first_name} "
                            f"({_describe_extractor(first)}): heads only merge when learned with "
                            "the same extractor")
        if head.dim != first.dim:
            raise HeadError(f"{name}: {head.dim}-wide, {first_name} is {first.dim}-wide")
        merged.merge(head, name, MEMBER_WEIGHT)
    return merged


def _describe_extractor(head: Head) -> str:
    name = f"{head.extractor_name}, " if head.extractor_name else ""
    return f"{name}sha256 {head.extractor_sha256[:12]}…"
