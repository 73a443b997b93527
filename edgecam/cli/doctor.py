"""`edgecam doctor`: every check of a set-up, ✓ or ✗ with a one-line fix; exit 0 only when it can run.

Text: one line per check, `✓ check: detail` or `✗ check: detail — fix`, the
checks needed to run first, then the advisory ones under their own heading,
then a verdict line. `--json`: exactly the list
`[{"check": …, "ok": …, "detail": …, "fix": …}]` (`fix` null when ok) and
nothing else on stdout, so scripts and fleet tools can read it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from edgecam.cli import options
from edgecam.cli.options import Commands, config_option
from edgecam.config import Camera

if TYPE_CHECKING:  # edgecam.doctor loads OpenCV: only `edgecam doctor` may need it
    from edgecam.doctor import Check

#: some check needed to run failed (advisory ones never change the exit status)
EX_NOT_READY = 1


def add(commands: Commands) -> None:
    doctor_parser = commands.add_parser(
        "doctor", help="check the set-up: config, runtime, model, camera, socket, board, clock",
        description="Runs every check, each ✓ or ✗ with a one-line fix; exits 0 only when everything "
                    "needed to run passes (the advisory checks never change the exit status).")
    config_option(doctor_parser)
    doctor_parser.add_argument("--json", action="store_true",
                               help='print [{"check", "ok", "detail", "fix"}, ...] instead')
    doctor_parser.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    return doctor(args.config, options.camera(args), args.json)


def doctor(config_path: str | None, camera: Camera, as_json: bool, out: TextIO = sys.stdout) -> int:
    from edgecam.doctor import run_checks

    checks = run_checks(config_path, camera)
    if as_json:
        out.write(json.dumps([check.as_dict() for check in checks], indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(report(checks))
    return 0 if all(check.ok for check in checks if check.required) else EX_NOT_READY


def report(checks: list[Check]) -> str:
    required = [check for check in checks if check.required]
    advisory = [check for check in checks if not check.required]
    lines = [_line(check) for check in required]
    lines.append("advisory (edgecam runs without these):")
    lines += [_line(check) for check in advisory]
    blocking = [check.check for check in required if not check.ok]
    warned = [check.check for check in advisory if not check.ok]
    warnings = f"; advisory ✗: {', '.join(warned)}" if warned else ""
    lines.append(f"not ready: {', '.join(blocking)} must pass{warnings}" if blocking
                 else f"ready: everything needed to run passes{warnings}")
    return "\n".join(lines) + "\n"


def _line(check: Check) -> str:
    if check.ok:
        return f"✓ {check.check}: {check.detail}"
    return f"✗ {check.check}: {check.detail} — {check.fix}"
