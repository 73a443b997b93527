"""Manifest keys for the fleet's tests: the operator's key pair, a stranger's, and signing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecam.fleet.signing import generate_key, sign


def make_key(folder: Path, name: str = "operator") -> tuple[Path, Path]:
    """A new key pair in `folder`: (private KEYFILE, public KEYFILE.pub), as `fleet keygen` makes."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / f"{name}.key"
    return private, generate_key(private)


def signed(private: Path, document: dict[str, Any]) -> str:
    """`document` with its signature, as `edgecam fleet sign` prints it."""
    return json.dumps(sign(private, document), sort_keys=True, separators=(",", ":"))
