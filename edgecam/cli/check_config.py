"""`edgecam check-config`: validate the config and print it as the daemon would use it."""

from __future__ import annotations

import argparse

from edgecam.cli.options import Commands, camera, config, config_option
from edgecam.config import to_yaml


def add(commands: Commands) -> None:
    check = commands.add_parser("check-config", help="validate the config and print it")
    config_option(check)
    check.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing when the config is valid (errors still print)")
    check.set_defaults(func=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    loaded = config(args)
    if args.quiet:
        return 0
    instance = camera(args)
    source = args.config or (instance.config_path if instance.name else
                             "built-in defaults / /etc/edgecam/edgecam.yaml")
    print(f"# effective config ({source})")
    print(to_yaml(loaded), end="")
    return 0
