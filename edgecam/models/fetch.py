"""`edgecam fetch-model`: download the default model and labels, verified, atomically.

Each file is streamed into a temporary file beside its destination, hashed on
the way, and renamed into place only when its sha256 matches: a power cut or
a bad mirror never leaves a half-written model that the daemon would then
refuse at every start. `file://` base URLs work, so installs and tests can use
a local copy (EDGECAM_MODEL_BASE_URL). Every download is bounded in size and
time, and reads regular files only (models/transfer.py); a fleet's rollouts
use the same code with the config's bounds (fleet/rollout.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgecam.common.files import file_sha256, fsync_folder
from edgecam.config.fields import STATE_DIR
from edgecam.errors import ChecksumError, EdgecamError
from edgecam.models.transfer import Limits, copy_bounded

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://github.com/google-coral/test_data/raw/master"
DEFAULT_MODEL_DIR = STATE_DIR / "models"
BASE_URL_ENV = "EDGECAM_MODEL_BASE_URL"
PARTIAL = ".part"
#: fetch-model's bounds (a fleet's come from its config): the default model is 3.6 MB
FETCH_LIMITS = Limits()


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str


DEFAULT_FILES = (
    ModelFile("mobilenet_v2_1.0_224_quant.tflite",
              "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"),
    ModelFile("imagenet_labels.txt",
              "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1"),
)


def base_url_from_env() -> str:
    return os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def fetch_model(directory: Path, base_url: str, files: tuple[ModelFile, ...] = DEFAULT_FILES
                ) -> list[Path]:
    """Installs each file into `directory` unless a valid copy is there; returns those fetched."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecamError(f"cannot create {directory}: {exc.strerror}") from None
    fetched = []
    for item in files:
        target = directory / item.name
        if target.is_file() and file_sha256(target) == item.sha256:
            log.info("%s is already installed and verified", target)
            continue
        download(f"{base_url.rstrip('/')}/{item.name}", target, item.sha256)
        fetched.append(target)
    return fetched


def download(url: str, target: Path, sha256: str, limits: Limits = FETCH_LIMITS, *,
             mode: int = 0o644) -> None:
    """Streams `url` into `target`, renamed into place (with `mode`) only if its sha256 is `sha256`.

    DownloadError when the transfer fails (it may work later); DownloadRefused (a DownloadError)
    when retrying will not help: the bytes are not the ones asked for (ChecksumError), or the
    source is not a regular file or is larger than `limits` allow (models/transfer.py). No
    message carries the digest of the bytes that came: that is the digest of whatever file the
    URL named, and a URL may name a secret.
    """
    remove_partials(target.parent, target.name)
    try:
        # Beside the target (same filesystem: the rename is atomic), under a hidden name.
        temp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, then renamed or removed
            dir=target.parent, prefix=f".{target.name}.", suffix=PARTIAL, delete=False)
    except OSError as exc:
        raise EdgecamError(f"cannot write to {target.parent}: {exc.strerror}") from None
    try:
        with temp:
            digest = hashlib.sha256()

            def sink(chunk: bytes) -> None:
                digest.update(chunk)
                temp.write(chunk)
            copy_bounded(url, sink, limits)
            if digest.hexdigest() != sha256:
                raise ChecksumError(f"{url}: sha256 mismatch (expected {sha256}); nothing installed")
            temp.flush()
            os.fchmod(temp.fileno(), mode)
            os.fsync(temp.fileno())
        os.replace(temp.name, target)
        fsync_folder(target.parent)
    except OSError as exc:
        raise EdgecamError(f"cannot write {target}: {exc.strerror}; nothing installed") from None
    finally:
        Path(temp.name).unlink(missing_ok=True)
    log.info("installed %s", target)


def remove_partials(folder: Path, name: str = "*") -> None:
    """Removes what a download of `name` (every file's: "*") left when it was killed (kill -9,
    a power cut): its `.NAME.*.part` files."""
    for partial in folder.glob(f".{name}.*{PARTIAL}"):
        with contextlib.suppress(OSError):
            partial.unlink()
