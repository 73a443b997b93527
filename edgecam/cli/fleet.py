"""`edgecam fleet`: the members on the MQTT broker (status), and the rollout keys (fleet_keys.py)."""

from __future__ import annotations

import argparse

from edgecam.cli import fleet_keys
from edgecam.cli.options import Commands, config, config_option
from edgecam.errors import EdgecamError


def add(commands: Commands) -> None:
    fleet = commands.add_parser(
        "fleet", help="a fleet of Pis: the members on the MQTT broker",
        description="The fleet shares learned classes and model rollouts over outputs.mqtt's "
                    "broker (the config's fleet: section).")
    fleet_actions = fleet.add_subparsers(dest="action", required=True, metavar="ACTION")
    fleet_status = fleet_actions.add_parser(
        "status", help="the members seen on the broker: online, last seen, model, classes")
    config_option(fleet_status)
    fleet_status.add_argument("--wait", type=float, default=5.0, metavar="S",
                              help="seconds to wait for the broker (default: 5)")
    fleet_status.add_argument("--json", action="store_true", help="one JSON object")
    fleet_status.set_defaults(func=_fleet_status)
    fleet_keys.add_commands(fleet_actions)


def _fleet_status(args: argparse.Namespace) -> int:
    from edgecam.fleet.status import status

    if args.wait <= 0:
        raise EdgecamError("--wait takes a number of seconds above 0")
    return status(config(args), args.wait, args.json)
