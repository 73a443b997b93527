"""`edgecam learn`: teach, list, forget and merge classes in a head file.

    edgecam learn add LABEL IMAGE... [--zone NAME] [--head FILE] [-c FILE] [--model M]
    edgecam learn add LABEL --from-camera N [--zone NAME] [-c FILE]
    edgecam learn list [--zone NAME] [--head FILE] [--json]
    edgecam learn remove LABEL [--zone NAME] [--head FILE]
    edgecam learn merge OUT IN... [--force]

The head file is `--head`, else the config's `model.head`, else
/var/lib/edgecam/heads/default.head; the embedding extractor is `--model`,
else `model.path`. With `--zone NAME` they are the zone's: its
`zones[].model.head`, else /var/lib/edgecam/heads/NAME.head, and its model's
path; each image (a snapshot, or a camera frame) is then cut to the zone's
rectangle by the daemon's own code (core.frames.cut), so a class is learned
from the pixels the zone is classified on. The camera's frames are read by
cli.learn_camera (models/ knows no source).

Every change is all or nothing: the images are all read and embedded before
the head is touched, and the head is written atomically (head.py), under a
lock so that two `edgecam learn` commands cannot lose each other's examples.
A running daemon picks the new head up on SIGHUP (`systemctl reload edgecam`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edgecam.common.checkout import extractor_hint
from edgecam.common.files import file_sha256, locked
from edgecam.config import Config, ModelConfig, ZoneConfig
from edgecam.config.backends import backend_for
from edgecam.core.frames import cut
from edgecam.core.labels import read_labels
from edgecam.errors import EdgecamError, MissingFileError, ModelError
from edgecam.models.fetch import DEFAULT_FILES
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import (
    DEFAULT_HEAD_PATH,
    Head,
    HeadError,
    check_label,
    load_or_new,
    merge_heads,
)


def head_path(explicit: str | None, model: ModelConfig, heads_dir: Path = DEFAULT_HEAD_PATH.parent
              ) -> Path:
    """--head, else model.head, else default.head in the camera's heads folder."""
    return Path(explicit or model.head or heads_dir / DEFAULT_HEAD_PATH.name)


def zone_head_path(explicit: str | None, zone: ZoneConfig, heads_dir: Path = DEFAULT_HEAD_PATH.parent
                   ) -> Path:
    """--head, else the zone's own head (never the top level's), else NAME.head beside default.head."""
    return Path(explicit or zone.model.head or heads_dir / f"{zone.name}.head")


@dataclass(frozen=True)
class Target:
    """What a `learn` command works on: the whole frame's head, or one zone's."""

    model: ModelConfig  # its path is the embedding extractor
    head_path: Path
    key: str  # the config section of that model and head: "model" or "zones[N].model"
    zone: ZoneConfig | None = None

    def view(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The images as classified: whole, or cut to the zone as the daemon cuts frames."""
        zone = self.zone
        return list(images) if zone is None else [cut(image, zone.crop) for image in images]


def find_target(config: Config, zone_name: str | None, head: str | None = None,
                model_path: str | None = None, heads_dir: Path = DEFAULT_HEAD_PATH.parent) -> Target:
    """The head and extractor for the whole frame or the zone named `zone_name`, with the
    command's --head and --model (`heads_dir`: the camera's, where heads go by default); one
    line listing the config's zones for a zone it lacks."""
    if zone_name is None:
        model, path, key, zone = config.model, head_path(head, config.model, heads_dir), "model", None
    else:
        index = next((i for i, z in enumerate(config.zones) if z.name == zone_name), None)
        if index is None:
            names = ", ".join(z.name for z in config.zones)
            raise EdgecamError(f"--zone {zone_name}: no such zone in the config (its zones: {names})"
                               if names else f"--zone {zone_name}: the config has no zones: "
                               f"define {zone_name} under zones: first")
        zone = config.zones[index]
        model, key = config.zone_model(zone), f"zones[{index}].model"
        path = zone_head_path(head, zone, heads_dir)
    if model_path:
        model = replace(model, path=model_path, backend="auto")  # the file given says what runs it
    return Target(model, path, key, zone)


@dataclass(frozen=True)
class Learned:
    """What `learn add` did, for the command's report."""

    head_path: Path
    label: str
    index: int
    added: int
    count: int
    labels: list[str]
    created: bool
    ms_per_example: float


def read_images(paths: Sequence[str | Path]) -> list[np.ndarray]:
    """Every image, or one clear error for the first that cannot be read (nothing learned then)."""
    images = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise MissingFileError(f"{path}: no such file")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
        if image is None or image.size == 0:
            raise ModelError(f"{path}: cannot read image (nothing was learned)")
        images.append(image)
    return images


def load_embedder(model: ModelConfig) -> Embedder:
    """The extractor learning runs on this machine's CPU (LiteRT or ONNX Runtime); an accelerator's
    network (.rpk, .hef) classifies with its own labels and cannot be taught: one line says so."""
    backend = backend_for(model.backend, model.path)
    if not backend.on_cpu:
        raise ModelError(f"edgecam learn: model.path is a network for {backend.title}, which "
                         "classifies with its own labels and cannot learn new classes; learning "
                         "runs on the CPU: pass --model with a .tflite or .onnx embedding extractor "
                         "(mobilenet_v1_1.0_224_quant_embedding_extractor.tflite) and use the head "
                         "with that model")
    if not Path(model.path).is_file():
        raise MissingFileError(f"no embedding extractor at {model.path} (model.path): "
                               f"pass {extractor_hint()}")
    return Embedder.from_config(model)


def _classifier_evidence(model: ModelConfig, embedder: Embedder) -> str | None:
    """Why `model.path` is a classifier rather than an extractor, if it shows: a classifier's
    output passes for an embedding ([1, N]), but its imprinted head would compare class scores,
    not image features, and recognize nothing."""
    if embedder.sha256 in {item.sha256 for item in DEFAULT_FILES}:
        return "the default one, which `edgecam fetch-model` installs"
    if model.labels and Path(model.labels).is_file():
        try:
            count = len(read_labels(model.labels))
        except ModelError:
            return None
        if count in (embedder.dim, embedder.dim - 1):  # with or without a leading `background`
            return f"its {embedder.dim} outputs are the scores of the labels in {model.labels}"
    return None


def learn(model: ModelConfig, path: Path, label: str, images: Sequence[np.ndarray],
          embedder: Embedder | None = None) -> Learned:
    """Adds `images` as examples of `label` to the head at `path` (created if missing)."""
    label = check_label(label)
    if not images:
        raise EdgecamError(f"no examples of {label!r} to learn")
    embedder = embedder or load_embedder(model)
    started = time.perf_counter()
    embeddings = [embedder.embed(image) for image in images]
    ms_per_example = (time.perf_counter() - started) * 1000 / len(images)
    with locked(path, "head"):
        head, created = load_or_new(path, embedder.sha256, embedder.dim, embedder.model_path)
        why = _classifier_evidence(model, embedder) if created else None
        if why:  # (an existing head already refuses any extractor but its own)
            raise ModelError(f"{embedder.model_path} is a classifier ({why}), not an "
                             f"embedding extractor: pass {extractor_hint()}")
        learned = head.add(label, embeddings)
        head.save(path)
    return Learned(path, label, head.classes.index(learned), len(images), learned.count, head.labels,
                   created, ms_per_example)


def remove(path: Path, label: str) -> tuple[Head, int]:
    """Removes a class; (the head as saved, the removed class's example count)."""
    with locked(path, "head"):
        head = Head.load(path)
        removed = head.remove(label, str(path))
        head.save(path)
    return head, removed.count


def merge(out: Path, inputs: Sequence[Path], *, force: bool = False) -> Head:
    """Writes OUT = every class of INPUTS with sums and counts added (the inputs are only read)."""
    resolved = [p.resolve() for p in inputs]
    twice = next((p for i, p in enumerate(inputs) if resolved[i] in resolved[:i]), None)
    if twice is not None:
        raise EdgecamError(f"{twice}: listed twice: its examples would count double")
    if out.exists() and out.resolve() not in resolved and not force:
        raise EdgecamError(f"{out} exists and is not one of the heads merged: list it among them to "
                           "merge into it, or add --force to replace it")
    with locked(out, "head"):
        heads = [(str(p), Head.load(p)) for p in inputs]
        merged = merge_heads(heads)
        merged.save(out)
    return merged


def matches_model(head: Head, model_path: str) -> bool | None:
    """Whether `model_path` is the head's extractor; None when there is no such file to tell."""
    try:
        return file_sha256(model_path) == head.extractor_sha256
    except EdgecamError:
        return None


def describe_extractor(head: Head) -> str:
    name = head.extractor_name or "embedding extractor"
    return f"{name} (sha256 {head.extractor_sha256[:12]}…, {head.dim}-wide)"


__all__ = [
    "HeadError",
    "Learned",
    "Target",
    "check_label",
    "describe_extractor",
    "find_target",
    "head_path",
    "learn",
    "matches_model",
    "merge",
    "read_images",
    "remove",
]
