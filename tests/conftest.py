"""Shared fixtures: where the checkout and ../shared's models and photos are, and a way to run the CLI.

Tests are in tests/unit (in process, with fakes), tests/integration (daemons,
sockets, streams, brokers as real processes) and tests/system (the systemd
sandbox); the helpers beside this file (harness, streams, brokers, sandbox,
fakes, heads, fleets, fleet_keys, notify_socket, fake_picamera2, learn_views,
sysfs) are imported by name from any of them: pytest puts this folder on
sys.path for its conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Fixtures kept beside their helpers: `daemons` (the real daemon as a subprocess) in
# harness.py, `sandbox` (a real systemd with throw-away /etc, /opt, /var/lib) in sandbox.py,
# `embedder` and `train` (the few-shot extractor and training embeddings) in heads.py,
# `file_server` (a model server on 127.0.0.1) in fleets.py, `mosquitto` and `subscribers` (real
# brokers, and clients recording what they carry) in brokers.py, `notify_socket` (systemd's end of
# sd_notify) in notify_socket.py.
pytest_plugins = ("harness", "sandbox", "brokers", "heads", "fleets", "notify_socket")

# The checkout, and ../shared beside it (read-only in CI; never copied into the project).
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"

# A safety net against a hung child, not a speed check: generous on purpose.
CLI_TIMEOUT_S = 300


@pytest.fixture
def default_model() -> Path:
    return MODELS / "mobilenet_v2_1.0_224_quant.tflite"


@pytest.fixture
def labels_path() -> Path:
    return MODELS / "imagenet_labels.txt"


def run_edgecam(*args: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Runs `python -m edgecam ARGS` in a child, as a user would; never raises on a non-zero exit.

    Keyword arguments go to subprocess.run (env=, cwd=, timeout=...).
    """
    kw.setdefault("timeout", CLI_TIMEOUT_S)
    return subprocess.run([sys.executable, "-m", "edgecam", *map(str, args)],
                          capture_output=True, text=True, check=False, **kw)


# Hostile files a user may name (issue 24): each must be refused in one line, never read whole.
@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A FIFO: opening it for reading blocks until a writer comes."""
    path = tmp_path / "labels.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def sparse(tmp_path: Path) -> Path:
    """A 4 GB file that takes no disk: a read of it all would take 4 GB of memory."""
    path = tmp_path / "sparse.txt"
    with path.open("wb") as file:
        file.truncate(4 * 1024**3)
    return path
