"""Runs the real daemon (`python -m edgecam run`) for integration tests, and cleans up after it.

`daemons` is a fixture that starts daemons with a config written under
tmp_path (the real model and photos from ../shared) and, in its finalizer,
stops every one it started, by pid: SIGTERM, then SIGKILL. Tests read the
real Unix socket with `Client`.

How a process is started and stopped (and `wait_for`, `stop_each`, `clean_environment`) is
bench/launcher.py's, shared with the benchmarks: pytest finds `bench` at the checkout's root
(`pythonpath` in pyproject.toml).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.launcher import (  # noqa: F401  (clean_environment, stop_each: the tests' too)
    Process,
    clean_environment,
    edgecam_run,
    stop_each,
    wait_for,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"
DEFAULT_MODEL = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
LABELS = MODELS / "imagenet_labels.txt"
EXPECTED_TOP1 = {"cat.bmp": "Egyptian cat", "grace_hopper.bmp": "military uniform",
                 "parrot.jpg": "macaw"}


def base_config(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config using the real model, the photos folder and a socket under tmp_path."""
    config: dict[str, Any] = {
        "camera": {"source": str(IMAGES), "fps": 20},
        "model": {"path": str(DEFAULT_MODEL), "labels": str(LABELS), "threads": 1},
        "outputs": {"emit": "every_frame", "journal": {"enabled": False},
                    "socket": {"path": str(tmp_path / "run" / "results.sock")}},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def write_config(path: Path, config: dict[str, Any] | str) -> Path:
    """Writes a config (a dict, or raw text) atomically, as editors do: a reload never sees half a file."""
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)
    return path


class Client:
    """A socket client reading JSON lines."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # A full listen backlog (right after thousands of connects) answers EAGAIN: retry.
        wait_for(lambda: self._connect(path), timeout, f"a connection to {path}")
        self._buffer = b""

    def _connect(self, path: str | Path) -> bool:
        try:
            self.sock.connect(str(path))
        except BlockingIOError:
            return False
        return True

    def message(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the daemon closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def messages(self, kind: str, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while len(found) < count:
            message = self.message()
            if message["type"] == kind:
                found.append(message)
        return found

    def results(self, count: int) -> list[dict[str, Any]]:
        """The next `count` classifications; fails unless each has labels and seqs increase."""
        found = self.messages("classification", count)
        seqs = [m["seq"] for m in found]
        assert all(m["labels"] and m["labels"][0]["label"] for m in found), found
        assert seqs == sorted(set(seqs)), f"sequence numbers out of order: {seqs}"
        return found

    def close(self) -> None:
        self.sock.close()


class Daemon(Process):
    """One `edgecam run` process (bench/launcher.py's Process); its stderr goes to a log file the
    test can read, its stdout to another (`stdout_lines()`)."""

    def __init__(self, config_path: Path, config: dict[str, Any], args: list[str],
                 env: dict[str, str] | None, preexec_fn: Callable[[], Any] | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.socket_path = Path(config["outputs"]["socket"]["path"])
        self.log_path = config_path.with_suffix(".log")
        self.stdout_path = config_path.with_suffix(".out")
        super().__init__(edgecam_run(config_path, *args), stdout=self.stdout_path, stderr=self.log_path,
                         env=env, preexec_fn=preexec_fn)
        self._clients: list[Client] = []

    def stdout_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout_path.read_text().splitlines() if line]

    def wait_socket(self, path: Path | None = None, timeout: float = 60.0) -> None:
        super().wait_socket(path or self.socket_path, timeout)

    def client(self, timeout: float = 30.0) -> Client:
        self.wait_socket()
        client = Client(self.socket_path, timeout)
        self._clients.append(client)
        return client

    def stop(self, timeout: float = 10.0) -> int:
        """Closes its clients, then SIGTERM and wait; SIGKILL if it does not exit."""
        for client in self._clients:
            client.close()
        return super().stop(timeout)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Starts daemons: `daemons(config_dict, *args, env=...)`; all stopped at teardown. They
    share a runtime folder of the test's, as a unit's instances share /run/edgecam (their claims
    meet there: daemon.claims)."""
    started: list[Daemon] = []
    runtime = {"RUNTIME_DIRECTORY": str(tmp_path / "runtime")}

    def start(config: dict[str, Any], *args: str, env: dict[str, str] | None = None,
              name: str = "edgecam", preexec_fn: Callable[[], Any] | None = None) -> Daemon:
        """`preexec_fn` runs in the child before edgecam (a test's resource limits)."""
        path = write_config(tmp_path / f"{name}-{len(started)}.yaml", config)
        daemon = Daemon(path, config, list(args), {**runtime, **(env or {})}, preexec_fn)
        started.append(daemon)
        return daemon

    yield start
    stop_each(started, Daemon.stop)
