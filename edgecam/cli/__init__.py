"""The `edgecam` command line: assembles the commands and turns user errors into one line.

Each command is its own module here with an `add(commands)` that registers its
parser and the function it runs; the work lives in the modules those call.
A mistake the user can fix (EdgecamError) is printed as `edgecam: <message>`
with a sysexits code, and so is an optional piece the command needs but that
is not installed (dependencies.py: its own code); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from edgecam import __version__
from edgecam.cli import (
    check_config,
    classify,
    doctor,
    fetch_model,
    fleet,
    ip_filter,
    learn,
    run,
    snapshots,
    tail,
)
from edgecam.daemon.logs import setup_logging
from edgecam.dependencies import from_import_error
from edgecam.errors import EX_BROKEN_PIPE, ConfigError, EdgecamError

#: in the order `edgecam --help` lists them
_COMMANDS = (run, check_config, ip_filter, classify, tail, learn, snapshots, doctor, fleet,
             fetch_model)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecam", description="Real-time camera inference daemon.")
    parser.add_argument("--version", action="version", version=f"edgecam {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add(commands)
    return parser


def _call(args: argparse.Namespace) -> int:
    """Runs the command; an import of a piece that is not installed becomes its one line.

    The modules a command loads import OpenCV at their top, so a missing OpenCV shows
    here, at the command's first import, before any work is done.
    """
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:
        missing = from_import_error(exc)
        if missing is None:
            raise
        raise missing from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("info" if args.command in ("run", "fetch-model") else "warning")
    try:
        return _call(args)
    except ConfigError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return exc.exit_code
    except EdgecamError as exc:
        print(f"edgecam: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # What reads our output went away (`edgecam tail | head -3`): end as `cat` would, without
        # a traceback, and without a second one when Python flushes stdout on the way out.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_BROKEN_PIPE
