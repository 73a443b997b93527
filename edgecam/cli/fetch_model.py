"""`edgecam fetch-model`: download the default model and labels, verified."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgecam.cli.options import Commands


def add(commands: Commands) -> None:
    fetch = commands.add_parser("fetch-model", help="download the default model and labels")
    fetch.add_argument("--dir", type=Path, metavar="DIR",
                       help="where to install them (default: /var/lib/edgecam/models)")
    fetch.add_argument("--base-url", metavar="URL",
                       help="where to download from (default: $EDGECAM_MODEL_BASE_URL, else "
                            "Coral's public test data); file:// works")
    fetch.set_defaults(func=_fetch_model)


def _fetch_model(args: argparse.Namespace) -> int:
    from edgecam.models.fetch import DEFAULT_MODEL_DIR, base_url_from_env, fetch_model

    directory = args.dir or DEFAULT_MODEL_DIR
    fetched = fetch_model(directory, args.base_url or base_url_from_env())
    print(f"{len(fetched)} file(s) downloaded; model and labels verified in {directory}")
    return 0
