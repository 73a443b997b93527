"""`edgecam tail`: print the running daemon's results as they arrive on its socket.

With zones each result line names its zone (`door: open 0.93, closed 0.05`) and
the stats line each zone's counts; without zones the lines are as they were.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any, TextIO

from edgecam.cli.options import Commands, config, config_option
from edgecam.common.checkout import DEMO_CONFIG, DEMO_SOCKET, checkout_root
from edgecam.errors import EX_UNAVAILABLE, SourceError
from edgecam.outputs.human import labels_text


def add(commands: Commands) -> None:
    tail_parser = commands.add_parser("tail", help="print the running daemon's results")
    tail_parser.add_argument("--socket", metavar="PATH",
                             help="the daemon's socket (default: outputs.socket.path of the config)")
    config_option(tail_parser)
    tail_parser.add_argument("--json", action="store_true", help="print the raw JSON lines")
    tail_parser.set_defaults(func=_tail)


def _tail(args: argparse.Namespace) -> int:
    return tail(args.socket or config(args).outputs.socket.path, args.json)


def tail(path: str, raw_json: bool, out: TextIO = sys.stdout) -> int:
    """Copies the socket's lines to `out` until the daemon closes it; 69 if it went away."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        conn.connect(path)
    except OSError as exc:
        conn.close()
        hint = _not_running_hint(path) if isinstance(exc, FileNotFoundError | ConnectionRefusedError) \
            else " (are you in the edgecam group?)" if isinstance(exc, PermissionError) else ""
        raise SourceError(f"cannot connect to {path}: {exc.strerror}{hint}") from None
    with conn, conn.makefile("r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if raw_json:
                out.write(line)
            else:
                text = _readable(line)
                if text:
                    out.write(text + "\n")
            out.flush()
    print(f"edgecam: {path}: the daemon closed the connection", file=sys.stderr)
    return EX_UNAVAILABLE


def _not_running_hint(path: str) -> str:
    """In a checkout, where `make run`'s daemon listens rather than the service's socket."""
    root = checkout_root()
    if root is None or Path(path).resolve() == (root / DEMO_SOCKET).resolve():
        return " (is edgecam running?)"
    return (f" (is edgecam running? In this checkout `make run`'s results are on {DEMO_SOCKET}: "
            f"edgecam tail -c {DEMO_CONFIG})")


def _readable(line: str) -> str | None:
    try:
        message: dict[str, Any] = json.loads(line)
    except ValueError:
        return None
    if message.get("type") == "classification":
        labels = labels_text(message["labels"])
        zone = f"{message['zone']}: " if "zone" in message else ""
        return f"#{message['seq']:<7} {message['latency_ms']:6.1f} ms  {zone}{labels}"
    if message.get("type") == "stats":
        frames, rates = message["frames"], message["rates"]
        p99 = message["latency_ms"]["p99"]
        zones = "".join(f"  {name}: {counts['emitted']} of {counts['classified']} emitted"
                        for name, counts in message.get("zones", {}).items())
        return (f"[stats] captured {frames['captured']} classified {frames['classified']} "
                f"dropped {frames['dropped']}  {rates['classified_fps']:.1f}/"
                f"{rates['input_fps']:.1f} fps  p99 {p99 if p99 is not None else '-'} ms{zones}")
    return None
