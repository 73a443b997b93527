"""The one way tests and benchmarks start the daemon (or any process of theirs), and stop it.

`Process` is a child this code started, known by its pid only: it is stopped with SIGTERM,
then SIGKILL if it does not exit in time, and nothing else is ever signalled. It runs from the
checkout's root (so `python -m edgecam` is this checkout's edgecam, as `python -m bench.NAME`
is), with stdin closed and the environment of `clean_environment()`. tests/harness.py builds
its `Daemon` and `daemons` fixture on it; every bench/ script that runs a daemon uses it too.

Also here, for the same children: `wait_for` (a bounded poll), `stop_each` (stop all even when
one fails) and `free_port` (a TCP port for a daemon's listener, a broker or a stream server).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]

# What systemd (or a CI runner under systemd) hands a service: a daemon under test must not
# notify, or be watched by, the runner's own manager.
SERVICE_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                     "LISTEN_FDNAMES", "INVOCATION_ID", "JOURNAL_STREAM", "RUNTIME_DIRECTORY")
# A fault left set in the shell must not reach a daemon; a test that wants one passes it.
FAULT_VARIABLES = ("EDGECAM_FAULT_HANG_AFTER",)


class WaitTimeout(AssertionError):
    """A wait ran out: a failed check in a test, a run that cannot go on in a benchmark."""


class ProcessExited(RuntimeError):
    """The process ended while it was expected to run (its exit status and log tail say why)."""


def clean_environment() -> dict[str, str]:
    """This process's environment without the service and fault variables above."""
    drop = {*SERVICE_VARIABLES, *FAULT_VARIABLES}
    return {k: v for k, v in os.environ.items() if k not in drop}


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls until `predicate()` is truthy; the timeout only bounds a hang, it is never a measure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_each(items: Iterable[T], stop: Callable[[T], Any]) -> None:
    """Stops every item, even when stopping one of them fails; then raises the first failure."""
    failures: list[BaseException] = []
    for item in items:
        try:
            stop(item)
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PORTS_BELOW_EPHEMERAL = 10_000
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody uses right now, below the kernel's ephemeral range.

    Not port 0's pick: that comes from the ephemeral range, which every outgoing connection
    on the machine draws its local port from, so between this call and the bind of whoever
    it is for (a daemon's metrics, a broker) a client's connection could take it (CI once
    failed on "Address already in use" so). Below that range only a bind takes a port.
    Each port is handed out once per test run, so two calls never give the same one.
    """
    low = int(_EPHEMERAL_RANGE.read_text().split()[0]) if _EPHEMERAL_RANGE.exists() else 32768
    first = max(1024, low - _PORTS_BELOW_EPHEMERAL)
    candidates = list(range(first, low))
    random.shuffle(candidates)
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port in {first}..{low - 1}")


def edgecam_run(config_path: Path, *args: str) -> list[str]:
    """The command line of the daemon, as `edgecam run` and the systemd unit run it."""
    return [sys.executable, "-m", "edgecam", "run", "-c", str(config_path), *args]


# The daemon under measurement, started so that /proc/PID/task/TID/comm names its threads: Python
# 3.11 leaves every OS thread named as the process, so this wrapper (the benchmark's, never
# edgecam's) sets each threading.Thread's OS name (prctl PR_SET_NAME, 15 bytes, without the
# "edgecam-" prefix) as it starts, the main thread's "main". Native threads (the decoder's, LiteRT's)
# inherit the name of the thread that started them. argv: SOURCE_TREE, then edgecam's arguments.
NAMED_EDGECAM = """\
import ctypes, runpy, sys, threading
prctl = ctypes.CDLL(None).prctl
def name(text): prctl(15, text.removeprefix("edgecam-")[:15].encode(), 0, 0, 0)
start = threading.Thread._bootstrap_inner
def named_start(self): name(self.name); start(self)
threading.Thread._bootstrap_inner = named_start
name("main")
sys.path.insert(0, sys.argv.pop(1))
runpy.run_module("edgecam", run_name="__main__", alter_sys=True)
"""


def edgecam_from(tree: Path, config_path: Path, *args: str) -> list[str]:
    """`edgecam_run`'s command with the daemon of the source tree `tree` (this checkout's ROOT, or a
    worktree of an older commit: before and after in one benchmark), its threads named."""
    return [sys.executable, "-c", NAMED_EDGECAM, str(tree), *edgecam_run(config_path, *args)[3:]]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies, however it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Process:
    """One child started by `argv`: its stdout and stderr to files (or PIPE/DEVNULL), stopped by pid.

    `new_session`: a Ctrl-C in the terminal reaches only the parent, which then stops the child
    itself (and can time that stop). `die_with_parent`: the child gets SIGTERM if the parent
    dies without stopping it (a benchmark killed by an OOM or a kill -9); not for tests, whose
    threads make a pre-exec hook unsafe. `preexec_fn` (instead): what a test sets in the child
    before exec, such as a resource limit (it must not take locks).
    """

    def __init__(self, argv: Sequence[str], *, stderr: Path | int, stdout: Path | int = subprocess.DEVNULL,
                 env: Mapping[str, str] | None = None, new_session: bool = False,
                 die_with_parent: bool = False, preexec_fn: Callable[[], Any] | None = None) -> None:
        self.argv = list(argv)
        self.log_path = stderr if isinstance(stderr, Path) else None
        with contextlib.ExitStack() as files:
            def target(where: Path | int) -> IO[bytes] | int:
                return files.enter_context(where.open("wb")) if isinstance(where, Path) else where
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env={**clean_environment(), **(env or {})},
                stdin=subprocess.DEVNULL, stdout=target(stdout), stderr=target(stderr),
                start_new_session=new_session,
                preexec_fn=_die_with_parent if die_with_parent else preexec_fn)
        #: how long the last stop() took from SIGTERM to exit, and whether it needed SIGKILL
        self.stop_s: float | None = None
        self.killed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """What it wrote to its stderr file so far ("" when stderr is not a file)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        """Raises ProcessExited, with the last lines of its log, once the process has ended."""
        if not self.alive():
            tail = "\n".join(self.log().splitlines()[-30:])
            raise ProcessExited(f"{Path(self.argv[0]).name} (pid {self.pid}) exited with "
                                f"{self.proc.returncode}:\n{tail}")

    def wait_socket(self, path: Path, timeout: float = 60.0) -> None:
        """Until the Unix socket `path` accepts a connection; ProcessExited if the process ends first."""
        def ready() -> bool:
            self.check_alive()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(path))
                except OSError:
                    return False
            return True
        wait_for(ready, timeout, f"the socket {path} to accept")

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit (a failure the caller can assert on)."""
        if self.proc.poll() is None:
            started = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                self.stop_s = time.monotonic() - started
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode
