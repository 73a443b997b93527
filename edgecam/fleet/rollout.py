"""A model rollout: the signed manifest, and installing and test-loading the files it names.

    {"version": "2026-06-01", "url": "https://…/model.tflite", "sha256": "<64 hex>",
     "labels_url": "https://…/labels.txt", "labels_sha256": "<64 hex>",
     "signature": "<base64 Ed25519 over the rest: fleet/signing.py>"}

A manifest is followed only when signed with the key fleet.manifest_key names
(`Trust`): an unsigned one, one signed with another key, or any manifest when
no key is set, is refused before any URL is touched. Each file is then
downloaded by fetch-model's own code (models/fetch.py: a temporary file,
hashed on the way, renamed into place, mode 0640, only when its sha256 is the
signed one; bounded in size and time by fleet.max_model_mb and
fleet.download_timeout_s) into `<state_dir>/models/<version>/`; a file already
there with the right sha256 is not downloaded again (a rollback to a version
still on disk is instant). `file://` URLs are followed only to regular files
under fleet.file_urls_under (a USB stick, a network mount). The model is then
loaded as the daemon would load it, its input and output checked against the
labels, and invoked once, before the daemon is asked to switch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from edgecam.common.files import file_sha256
from edgecam.config import FleetConfig, ModelConfig
from edgecam.errors import EdgecamError
from edgecam.fleet.signing import MAX_MANIFEST_BYTES, SignatureError, load_public_key, verify
from edgecam.models.classifier import Classifier
from edgecam.models.fetch import download, remove_partials
from edgecam.models.transfer import Limits, file_path

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


#: a rolled-out file is the daemon's: not readable by other users (the daemon's group may read it)
FILE_MODE = 0o640
_FIELDS = ("version", "url", "sha256", "labels_url", "labels_sha256")


class ManifestError(EdgecamError):
    """A manifest that cannot be followed (unsigned, not JSON, a key missing or malformed)."""


@dataclass(frozen=True)
class Trust:
    """What a member follows: manifests signed with `key` (None: none at all), file:// URLs to
    files under `file_urls_under` (None: none), downloads within `limits`."""

    key: Any
    key_path: str
    file_urls_under: str | None
    limits: Limits

    @classmethod
    def of(cls, fleet: FleetConfig) -> Trust:
        """From the config; the key is loaded now, so that a bad one is one line at start."""
        key = load_public_key(fleet.manifest_key) if fleet.manifest_key else None
        under = os.path.realpath(fleet.file_urls_under) if fleet.file_urls_under else None
        limits = Limits(round(fleet.max_model_mb * 1e6), fleet.download_timeout_s,
                        "fleet.max_model_mb", "fleet.download_timeout_s")
        return cls(key, fleet.manifest_key, under, limits)

    def local_url(self, url: str) -> str:
        """`url` itself, or for file:// the real path's URL, checked to be under
        file_urls_under; ManifestError if it is not (nothing is read)."""
        if urlparse(url).scheme != "file":
            return url
        if self.file_urls_under is None:
            raise ManifestError(f"{url}: file:// URLs are refused: fleet.file_urls_under names no "
                                "folder")
        real = os.path.realpath(file_path(url))
        if os.path.commonpath([real, self.file_urls_under]) != self.file_urls_under:
            raise ManifestError(f"{url}: not under fleet.file_urls_under ({self.file_urls_under}); "
                                "refused")
        return Path(real).as_uri()


@dataclass(frozen=True)
class Manifest:
    version: str
    url: str
    sha256: str
    labels_url: str
    labels_sha256: str

    @classmethod
    def parse(cls, payload: bytes, trust: Trust) -> Manifest:
        """The manifest, if `trust`'s key signed it and its fields are sound; else ManifestError.
        Its size is checked before it is parsed, its signature before its fields are used."""
        if trust.key is None:
            raise ManifestError("fleet.manifest_key is not set: manifests are refused (make a key "
                                "with edgecam fleet keygen, sign with edgecam fleet sign)")
        document = _document(payload)
        try:
            verify(document, trust.key, trust.key_path)
        except SignatureError as exc:
            raise ManifestError(str(exc)) from None
        return cls(**fields(document))

    @staticmethod
    def version_of(payload: bytes) -> str | None:
        """The version a manifest names, even a malformed one (for its failed status)."""
        try:
            version = _document(payload).get("version")
        except ManifestError:
            return None
        return version if isinstance(version, str) and _VERSION.fullmatch(version) else None


def fields(document: dict[str, Any]) -> dict[str, str]:
    """A manifest's fields, each checked (ManifestError); the signature is not looked at."""
    values: dict[str, str] = {}
    for key in _FIELDS:
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
    return values


def _document(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the manifest is {len(payload)} bytes, more than a manifest's "
                            f"{MAX_MANIFEST_BYTES}: refused unread")
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ManifestError("the manifest is not JSON") from None
    if not isinstance(document, dict):
        raise ManifestError("the manifest is not a JSON object")
    return document


@dataclass(frozen=True)
class Installed:
    """A version's files on disk, verified and test-loaded."""

    version: str
    model: Path
    labels: Path

    def as_json(self) -> dict[str, str]:
        return {"version": self.version, "model": str(self.model), "labels": str(self.labels)}


def install(manifest: Manifest, models_dir: Path, trust: Trust) -> Installed:
    """Downloads what is not on disk yet; DownloadError (DownloadRefused: too large, not a
    regular file; ChecksumError: the wrong bytes), ManifestError (a file:// URL it may not read)."""
    sources = [trust.local_url(url) for url in (manifest.url, manifest.labels_url)]
    folder = models_dir / manifest.version
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecamError(f"cannot create {folder}: {exc.strerror}") from None
    remove_partials(folder)  # a download killed in the middle (kill -9, a power cut)
    model = folder / _file_name(manifest.url, "model.tflite")
    labels = folder / _file_name(manifest.labels_url, "labels.txt")
    if labels.name == model.name:
        labels = folder / "labels.txt"
    for url, target, sha256 in ((sources[0], model, manifest.sha256),
                                (sources[1], labels, manifest.labels_sha256)):
        if target.is_file() and not target.is_symlink() and file_sha256(target) == sha256:
            try:
                os.chmod(target, FILE_MODE)  # one a version before 0640 left readable by all
            except OSError as exc:
                raise EdgecamError(f"{target}: cannot make it private: {exc.strerror}") from None
        else:
            download(url, target, sha256, trust.limits, mode=FILE_MODE)
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
