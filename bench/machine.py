"""What machine and code a benchmark ran on, printed with its figures (shared by bench/ scripts).

Nothing of edgecam is imported until describe() runs (bench.reaction's serial loop imports this
module and must not load edgecam).
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.launcher import ROOT


def describe() -> dict[str, str]:
    """Date, commit, CPUs, OS, Python, runtime and library versions, load average."""
    from edgecam.models.runtime import interpreter_class

    return {
        "edgecam": source_revision(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": f"{len(os.sched_getaffinity(0))} (of {os.cpu_count()} CPUs)",
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "runtime": interpreter_class()[1],
        "ai-edge-litert": _version("ai-edge-litert"),
        "numpy": _version("numpy"),
        "opencv": _version("opencv-python-headless"),
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def print_header(title: str, script: str, argv: Sequence[str] | None = None) -> None:
    """How every bench/ script's output begins: its title, the command that ran it and the
    machine (describe()), so a figure copied out of it keeps what made it."""
    args = sys.argv[1:] if argv is None else argv
    module = ".".join(Path(script).resolve().relative_to(ROOT).with_suffix("").parts)
    print(f"# {title}\n")
    print(f"command: {os.path.relpath(sys.executable, ROOT)} -m {module} {' '.join(args)}".rstrip())
    for key, value in describe().items():
        print(f"{key}: {value}")


def source_revision() -> str:
    """The commit the code runs from, and whether its tree has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edgecam"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {commit}" + (" + uncommitted changes in edgecam/" if dirty else "")


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: text columns left-aligned, numeric ones right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = [all(_numeric(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w)
                                 for c, w, num in zip(cells, widths, numeric, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if num else "-")
                          for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _numeric(cell: str) -> bool:
    return not cell or cell[0].isdigit() or cell in ("nan", "-")
