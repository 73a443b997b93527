"""`edgecam run`: the daemon in the foreground (what systemd starts)."""

from __future__ import annotations

import argparse
import sys

from edgecam.cli.options import Commands, camera, config_option


def add(commands: Commands) -> None:
    run = commands.add_parser("run", help="run the daemon in the foreground (what systemd starts)")
    config_option(run)
    run.add_argument("--source", metavar="SRC", help="override camera.source")
    run.add_argument("--print", action="store_true", dest="print_results",
                     help="also write every emitted result on stdout: one readable line in a "
                     "terminal, a JSON line when piped")
    run.add_argument("--json", action="store_true",
                     help="with --print: JSON lines in a terminal too")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from edgecam.daemon.service import Daemon

    return Daemon(args.config, camera=camera(args), source=args.source,
                  print_results=args.print_results,
                  print_text=sys.stdout.isatty() and not args.json).run()
