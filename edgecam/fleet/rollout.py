"""A model rollout: the manifest, and installing and test-loading the files it names.

    {"version": "2026-06-01", "url": "https://…/model.tflite", "sha256": "<64 hex>",
     "labels_url": "https://…/labels.txt", "labels_sha256": "<64 hex>"}

Each file is downloaded by fetch-model's own code (models/fetch.py: a
temporary file, hashed on the way, renamed into place only when its sha256
matches) into `<state_dir>/models/<version>/`; a file already there with the
right sha256 is not downloaded again (a rollback to a version still on disk is
instant). The model is then loaded as the daemon would load it, its input and
output checked against the labels, and invoked once, before the daemon is
asked to switch. `file://` URLs work (a model on a USB stick, tests).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from edgecam.common.files import file_sha256
from edgecam.config import ModelConfig
from edgecam.errors import EdgecamError
from edgecam.models.classifier import Classifier
from edgecam.models.fetch import download

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class ManifestError(EdgecamError):
    """A manifest that cannot be followed (not JSON, a key missing or malformed)."""


@dataclass(frozen=True)
class Manifest:
    version: str
    url: str
    sha256: str
    labels_url: str
    labels_sha256: str

    @classmethod
    def parse(cls, payload: bytes) -> Manifest:
        try:
            document = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ManifestError("the manifest is not JSON") from None
        if not isinstance(document, dict):
            raise ManifestError("the manifest is not a JSON object")
        values = {}
        for key in ("version", "url", "sha256", "labels_url", "labels_sha256"):
            value = document.get(key)
            if not isinstance(value, str) or not value:
                raise ManifestError(f"the manifest has no {key!r}")
            values[key] = value.strip()
        if not _VERSION.fullmatch(values["version"]):
            raise ManifestError(f"version {values['version'][:80]!r}: use letters, digits and . _ + - "
                                "(at most 64)")
        for key in ("sha256", "labels_sha256"):
            if not _SHA256.fullmatch(values[key].lower()):
                raise ManifestError(f"{key} is not 64 hex digits")
            values[key] = values[key].lower()
        for key in ("url", "labels_url"):
            if urlparse(values[key]).scheme not in ("http", "https", "file"):
                raise ManifestError(f"{key} {values[key][:80]!r} is not an http(s):// or file:// URL")
        return cls(**values)

    @staticmethod
    def version_of(payload: bytes) -> str | None:
        """The version a manifest names, even a malformed one (for its failed status)."""
        try:
            version = json.loads(payload.decode("utf-8")).get("version")
        except (UnicodeDecodeError, ValueError, AttributeError):
            return None
        return version if isinstance(version, str) else None


@dataclass(frozen=True)
class Installed:
    """A version's files on disk, verified and test-loaded."""

    version: str
    model: Path
    labels: Path

    def as_json(self) -> dict[str, str]:
        return {"version": self.version, "model": str(self.model), "labels": str(self.labels)}


def install(manifest: Manifest, models_dir: Path) -> Installed:
    """Downloads what is not on disk yet; DownloadError (ChecksumError for the wrong bytes)."""
    folder = models_dir / manifest.version
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecamError(f"cannot create {folder}: {exc.strerror}") from None
    model = folder / _file_name(manifest.url, "model.tflite")
    labels = folder / _file_name(manifest.labels_url, "labels.txt")
    if labels.name == model.name:
        labels = folder / "labels.txt"
    for url, target, sha256 in ((manifest.url, model, manifest.sha256),
                                (manifest.labels_url, labels, manifest.labels_sha256)):
        if not (target.is_file() and file_sha256(target) == sha256):
            download(url, target, sha256)
    return Installed(manifest.version, model, labels)


def test_load(installed: Installed, threads: int) -> None:
    """Loads the model as the daemon would (input, output against the labels) and invokes it
    once; ModelError (one line) if it is not a usable classifier."""
    classifier = Classifier(str(installed.model), str(installed.labels), threads=threads)
    width, height = classifier.input_size
    classifier.classify(np.zeros((height, width, 3), np.uint8))


def model_config(model: ModelConfig, installed: Installed) -> ModelConfig:
    """The config's model section with the rolled-out files in place of its own."""
    return replace(model, path=str(installed.model), labels=str(installed.labels))


def prune(models_dir: Path, keep: list[str]) -> None:
    """Removes the version folders not in `keep` (the running one and the one before it)."""
    try:
        folders = [p for p in models_dir.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
    except OSError:
        return
    for folder in folders:
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _file_name(url: str, fallback: str) -> str:
    name = unquote(urlparse(url).path.rsplit("/", 1)[-1])
    return name if _FILE_NAME.fullmatch(name) else fallback
