"""`edgecam snapshots`: the saved label changes, newest first, one line each (or one JSON object).

The review loop starts here: a snapshot whose label was wrong becomes a
training example with `edgecam learn add RIGHT_LABEL SNAPSHOT.jpg --zone NAME`
(the JPEG is the full frame; the zone's crop is in the config and the sidecar).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgecam.cli import options
from edgecam.cli.options import Commands, config_option
from edgecam.config import SnapshotsConfig
from edgecam.errors import EdgecamError
from edgecam.snapshots.store import Listed, list_snapshots


def add(commands: Commands) -> None:
    shots = commands.add_parser(
        "snapshots", help="list the saved label changes, newest first",
        description="The snapshots in snapshots.dir, newest first: time, zone, label, score, path. "
                    "A wrong one becomes a training example: edgecam learn add RIGHT_LABEL "
                    "SNAPSHOT.jpg --zone NAME.")
    config_option(shots)
    shots.add_argument("--zone", metavar="NAME", help="only this zone's")
    shots.add_argument("--label", metavar="L", help="only those whose top label is L (exactly)")
    shots.add_argument("--json", action="store_true",
                       help='one {"ts", "zone", "label", "index", "score", "path"} object a line')
    shots.set_defaults(func=_snapshots)


def _snapshots(args: argparse.Namespace) -> int:
    return snapshots(options.config(args).snapshots, args.zone, args.label, args.json)


def snapshots(config: SnapshotsConfig, zone: str | None, label: str | None, as_json: bool) -> int:
    folder = Path(config.dir)
    try:
        found, problems = list_snapshots(folder)
    except OSError as exc:
        raise EdgecamError(f"{folder}: cannot read the snapshots: {exc.strerror}") from None
    shown = [s for s in found if (zone is None or s.zone == zone) and (label is None or s.label == label)]
    if as_json:
        for snapshot in shown:
            print(json.dumps({"ts": snapshot.ts, "zone": snapshot.zone, "label": snapshot.label,
                              "index": snapshot.index, "score": snapshot.score,
                              "path": str(snapshot.jpeg)}))
    else:
        _print_lines(shown)
    for problem in problems:
        print(f"edgecam: {problem}", file=sys.stderr)
    if not found:
        off = "" if config.enabled else " (snapshots.enabled is false)"
        print(f"edgecam: no snapshots in {folder}{off}", file=sys.stderr)
    return 0


def _print_lines(shown: list[Listed]) -> None:
    """`time  zone  label  score  path`, the columns aligned (labels have blanks)."""
    zones = [s.zone or "-" for s in shown]
    zone_width = max(map(len, zones), default=0)
    label_width = max((len(s.label) for s in shown), default=0)
    for snapshot, zone in zip(shown, zones, strict=True):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.ts))
        print(f"{when}  {zone:<{zone_width}}  {snapshot.label:<{label_width}}  {snapshot.score:.2f}  "
              f"{snapshot.jpeg}")
