"""Whether a command runs in a git checkout of edgecam (`make run`'s), for hints that name the
checkout's files (`-c config/demo.yaml`, `.run/results.sock`, ../shared/models) rather than an
installed service's (/etc/edgecam, /run/edgecam, /var/lib/edgecam), which a checkout lacks."""

from __future__ import annotations

import os
from pathlib import Path

DEMO_CONFIG = Path("config/demo.yaml")
DEMO_SOCKET = Path(".run/results.sock")
#: the embedding extractor `edgecam learn` needs; `edgecam fetch-model` fetches only the classifier
EXTRACTOR = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def checkout_root(cwd: Path | None = None) -> Path | None:
    """The current folder when it is the root of an edgecam checkout, else None."""
    here = cwd or Path.cwd()
    if (here / DEMO_CONFIG).is_file() and (here / "edgecam" / "__init__.py").is_file():
        return here
    return None


def extractor_hint(cwd: Path | None = None) -> str:
    """Where the embedding extractor is: the checkout's ../shared/models copy, relative to the
    current folder, when there is one; else its file name and the docs section."""
    root = checkout_root(cwd)
    if root is not None:
        shared = root.parent / "shared" / "models" / EXTRACTOR
        if shared.is_file():
            return f"--model {os.path.relpath(shared, cwd or Path.cwd())}"
    return f"--model /path/to/{EXTRACTOR} (docs/MODELS.md: \"Teaching it your own classes\")"
