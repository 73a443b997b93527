"""`edgecam tail` against the real daemon's socket, and its one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from harness import base_config


def read_lines(socket_path: Path, *args: str, count: int) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "tail", "--socket", str(socket_path),
                             *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        return [proc.stdout.readline() for _ in range(count)]
    finally:
        proc.kill()
        proc.wait()


def test_tail_prints_readable_results(tmp_path: Path, daemons) -> None:
    daemon = daemons(base_config(tmp_path))
    daemon.wait_socket()
    lines = read_lines(daemon.socket_path, count=3)
    assert all(line.startswith("#") and " ms " in line for line in lines), lines
    assert any("Egyptian cat" in line or "macaw" in line or "military uniform" in line
               for line in lines)


def test_tail_names_each_zone_and_its_counts(tmp_path: Path, daemons) -> None:
    config = base_config(tmp_path)
    config["zones"] = [{"name": "door", "crop": [0.0, 0.0, 1.0, 1.0]},
                       {"name": "feeder", "crop": [0.1, 0.1, 0.8, 0.8]}]
    daemon = daemons(config)
    daemon.wait_socket()
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "tail", "--socket",
                             str(daemon.socket_path)], stdout=subprocess.PIPE, text=True)
    zones: set[str] = set()
    stats = None
    try:
        assert proc.stdout is not None
        for _ in range(5000):  # stats come every 5 s, between results at 2 x 20 per second
            line = proc.stdout.readline()
            if line.startswith("[stats]"):
                stats = line
                if zones == {"door", "feeder"}:
                    break
                continue
            match = re.fullmatch(r"#\d+ +\d+\.\d ms  (door|feeder): \S.* \d\.\d\d(, .+ \d\.\d\d)*\n",
                                 line)
            assert match, line
            zones.add(match[1])
    finally:
        proc.kill()
        proc.wait()
    assert zones == {"door", "feeder"}
    assert stats is not None and re.search(r"  door: \d+ of \d+ emitted  feeder: \d+ of \d+ emitted$",
                                           stats), stats


def test_tail_json_passes_the_messages_through(tmp_path: Path, daemons) -> None:
    daemon = daemons(base_config(tmp_path))
    daemon.wait_socket()
    messages = [json.loads(line) for line in read_lines(daemon.socket_path, "--json", count=2)]
    assert {m["type"] for m in messages} <= {"classification", "stats"}


def test_tail_without_a_daemon_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "edgecam", "tail", "--socket",
                             str(tmp_path / "none.sock")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 69
    assert result.stderr.strip().count("\n") == 0
    assert "is edgecam running?" in result.stderr and "Traceback" not in result.stderr


def test_tail_into_a_closed_pipe_ends_without_a_traceback(tmp_path: Path, daemons) -> None:
    """`edgecam tail | head -1`: once head has its line and exits, tail ends quietly (141, as a
    shell reports a command that SIGPIPE ended), not with a BrokenPipeError traceback."""
    daemon = daemons(base_config(tmp_path))
    daemon.wait_socket()
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "tail", "--socket",
                             str(daemon.socket_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("#")
        proc.stdout.close()  # head -1 exits: the next line tail writes meets a closed pipe
        assert proc.wait(timeout=30) == 141
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
