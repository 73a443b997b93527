"""`edgecam fetch-model`: download the default model and labels, verified, atomically.

Each file is streamed into a temporary file beside its destination, hashed on
the way, and renamed into place only when its sha256 matches: a power cut or
a bad mirror never leaves a half-written model that the daemon would then
refuse at every start. `file://` base URLs work, so installs and tests can use
a local copy (EDGECAM_MODEL_BASE_URL).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edgecam.common.files import file_sha256, fsync_folder
from edgecam.config.fields import STATE_DIR
from edgecam.errors import ChecksumError, DownloadError, EdgecamError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://github.com/google-coral/test_data/raw/master"
DEFAULT_MODEL_DIR = STATE_DIR / "models"
BASE_URL_ENV = "EDGECAM_MODEL_BASE_URL"
_CHUNK = 1 << 16
_TIMEOUT_S = 60


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


def download(url: str, target: Path, sha256: str) -> None:
    """Streams `url` into `target`, renamed into place only if its sha256 is `sha256`.

    DownloadError when the transfer fails (it may work later), ChecksumError (a DownloadError)
    when the bytes are not the ones asked for (retrying will not help).
    """
    try:
        # Beside the target (same filesystem: the rename is atomic), under a hidden name.
        temp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, then renamed or removed
            dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False)
    except OSError as exc:
        raise EdgecamError(f"cannot write to {target.parent}: {exc.strerror}") from None
    try:
        with temp:
            digest = _copy_hashing(url, temp)
            if digest != sha256:
                raise ChecksumError(f"{url}: sha256 mismatch (expected {sha256}, got {digest}); "
                                    "nothing installed")
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp.name, 0o644)
        os.replace(temp.name, target)
        fsync_folder(target.parent)
    finally:
        Path(temp.name).unlink(missing_ok=True)
    log.info("installed %s", target)


def _copy_hashing(url: str, out) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; nothing installed") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {exc.reason}; nothing installed") from None
    except (OSError, ValueError) as exc:
        raise DownloadError(f"{url}: {exc}; nothing installed") from None
    except http.client.HTTPException as exc:
        # e.g. IncompleteRead: the connection was cut in the middle of a chunked response.
        raise DownloadError(f"{url}: broken HTTP response ({type(exc).__name__}); nothing installed"
                            ) from None
    return digest.hexdigest()
