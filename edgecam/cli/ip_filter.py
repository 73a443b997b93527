"""`edgecam ip-filter`: the systemd drop-in letting the service reach what the config names."""

from __future__ import annotations

import argparse

from edgecam.cli.options import Commands, camera, config, config_option


def add(commands: Commands) -> None:
    ip_filter = commands.add_parser(
        "ip-filter", help="print the systemd drop-in letting the service reach what the config names",
        description="The unit allows localhost only; `make install` writes this drop-in "
                    "(/etc/systemd/system/edgecam.service.d/network.conf) from the config.")
    config_option(ip_filter)
    ip_filter.set_defaults(func=_ip_filter)


def _ip_filter(args: argparse.Namespace) -> int:
    from edgecam.daemon.ipfilter import dropin

    instance = camera(args)
    source = args.config or (str(instance.config_path) if instance.name else "the default config")
    print(dropin(config(args), source, instance), end="")
    return 0
