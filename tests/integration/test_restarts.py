"""Every restart comes back (issue 24, item 3): snapshots and sidecars, this device's learned
head and the claim files, each damaged as a power cut leaves it (cut, emptied, garbage) or
left by a kill -9 in the middle of writing it; the next start delivers results, sets a file
it needs aside in one line, and logs no traceback. The real daemon, model and photos.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_edgecam
from harness import IMAGES, base_config, wait_for
from heads import EXTRACTOR
from streams import free_port
from web_client import get, wait_serving

pytest.importorskip("aiohttp")
WAIT_S = 60


def snapshot_config(tmp_path: Path, folder: Path, **web: Any) -> dict[str, Any]:
    return base_config(tmp_path, camera={"fps": 30}, outputs={"emit": "on_change", "heartbeat_s": 0},
                       snapshots={"enabled": True, "dir": str(folder)}, **web)


def snapshots_in(folder: Path) -> list[Path]:
    return sorted((folder / "frame").glob("2*.jpg")) if (folder / "frame").is_dir() else []


def no_traceback(*logs: str) -> None:
    for log in logs:
        assert "Traceback" not in log, log


def listing_is_strict(config_path: Path) -> list[dict[str, Any]]:
    done = run_edgecam("snapshots", "--json", "-c", config_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return [json.loads(line, parse_constant=lambda name: 1 / 0) for line in done.stdout.splitlines()]


def test_snapshots_and_sidecars_cut_emptied_or_garbage_then_a_restart(tmp_path: Path, daemons) -> None:
    folder = tmp_path / "snaps"
    first = daemons(snapshot_config(tmp_path, folder))
    first.client().results(3)
    wait_for(lambda: len(snapshots_in(folder)) >= 10, WAIT_S, "ten snapshots")
    assert first.stop() == 0
    jpegs = snapshots_in(folder)
    jpegs[0].write_bytes(jpegs[0].read_bytes()[: jpegs[0].stat().st_size // 2])  # a cut JPEG: served
    jpegs[1].write_bytes(b"")
    jpegs[2].write_bytes(os.urandom(3000))  # garbage: served as the bytes it is, never parsed
    sidecars = [p.with_suffix(".json") for p in jpegs]
    sidecars[3].write_bytes(sidecars[3].read_bytes()[:40])
    sidecars[4].write_bytes(b"")
    sidecars[5].write_bytes(b"\0" * 300)
    sidecars[6].write_text(sidecars[6].read_text().replace('"ts": ', '"ts": 1e999, "was": '))
    port = free_port()
    second = daemons(snapshot_config(tmp_path, folder, web={"enabled": True,
                                                            "listen": f"127.0.0.1:{port}"}))
    second.client().results(5)
    wait_serving(port)

    def refused() -> int:
        status, _, body = get(port, "/api/status")
        assert status == 200, body[:300]
        return json.loads(body)["stats"]["outputs"]["snapshots_refused"]

    assert wait_for(lambda: refused() == 5, WAIT_S, "the five damaged snapshots refused")
    listed = {Path(row["path"]).name for row in listing_is_strict(second.config_path)}
    assert not listed & {jpegs[n].name for n in (1, 3, 4, 5, 6)}
    assert {jpegs[0].name, jpegs[7].name} <= listed
    no_traceback(first.log(), second.log())


def test_kill_9_while_snapshots_are_written_then_a_restart(tmp_path: Path, daemons) -> None:
    """Each label change is written at once (30 fps of changing photos): a kill -9 lands in the
    middle of writes. What it leaves (a temp file, a JPEG without its sidecar) is no snapshot; the
    next start removes the temp files and goes on."""
    folder = tmp_path / "snaps"
    logs = []
    for round_ in range(3):
        daemon = daemons(snapshot_config(tmp_path, folder))
        wanted = len(snapshots_in(folder)) + 5 + round_  # a kill at another point each round
        daemon.wait_socket()
        wait_for(lambda wanted=wanted: len(snapshots_in(folder)) >= wanted, WAIT_S,
                 "snapshots being written")
        daemon.signal(signal.SIGKILL)
        daemon.proc.wait(WAIT_S)
        logs.append(daemon.log())
    last = daemons(snapshot_config(tmp_path, folder))
    last.client().results(5)
    wait_for(lambda: not list((folder / "frame").glob(".*.tmp")), WAIT_S, "the temp files removed")
    assert listing_is_strict(last.config_path)
    no_traceback(*logs, last.log())


def learn(config_path: Path, head: Path, label: str, *images: Path) -> subprocess.CompletedProcess[str]:
    return run_edgecam("learn", "add", label, *images, "--head", head, "-c", config_path)


def head_config(tmp_path: Path, head: Path) -> dict[str, Any]:
    """The daemon classifying with this device's head (model.labels is not used with one)."""
    config = base_config(tmp_path, model={"path": str(EXTRACTOR), "head": str(head)})
    del config["model"]["labels"]
    return config


@pytest.fixture
def learned(tmp_path: Path) -> tuple[Path, Path]:
    """(a config with the extractor, this device's head learned with `edgecam learn add`)."""
    config = tmp_path / "learn.yaml"
    config.write_text(f"model:\n  path: {EXTRACTOR}\n  threads: 1\n")
    head = tmp_path / "heads" / "default.head"
    for label, photo in (("cat", "cat.bmp"), ("parrot", "parrot.jpg")):
        done = learn(config, head, label, IMAGES / photo)
        assert done.returncode == 0, done.stderr
    return config, head


@pytest.mark.parametrize("how", ["cut", "emptied", "garbage"])
def test_a_learned_head_cut_emptied_or_garbage_is_set_aside_and_results_come(
        tmp_path: Path, daemons, learned: tuple[Path, Path], how: str) -> None:
    _, head = learned
    data = head.read_bytes()
    head.write_bytes({"cut": data[: len(data) // 2], "emptied": b"", "garbage": os.urandom(5000)}[how])
    config = head_config(tmp_path, head)
    first = daemons(config)
    assert {m["labels"][0]["label"] for m in first.client().results(3)} == {"unknown"}
    aside = head.with_name("default.head.corrupt")
    assert aside.exists() and not head.exists()
    warnings = [line for line in first.log().splitlines() if "set aside" in line]
    assert len(warnings) == 1 and str(head) in warnings[0], first.log()
    assert first.stop() == 0
    again = daemons(config)  # the next start, with only the .corrupt file: the same, in one line
    again.client().results(3)
    assert len([line for line in again.log().splitlines() if ".corrupt" in line]) == 1
    no_traceback(first.log(), again.log())


def test_kill_9_in_the_middle_of_learning_leaves_a_whole_head(tmp_path: Path, daemons,
                                                              learned: tuple[Path, Path]) -> None:
    config_path, head = learned
    photos = [IMAGES / name for name in ("cat.bmp", "grace_hopper.bmp", "parrot.jpg")] * 4
    for delay in (0.5, 1.0, 1.5, 2.0, 3.0):
        proc = subprocess.Popen([sys.executable, "-m", "edgecam", "learn", "add", "hopper", *map(str, photos),
                                 "--head", str(head), "-c", str(config_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
    config = head_config(tmp_path, head)
    daemon = daemons(config)
    labels = {m["labels"][0]["label"] for m in daemon.client().results(6)}
    assert labels & {"cat", "parrot", "hopper"}, labels
    assert "set aside" not in daemon.log() and not head.with_name("default.head.corrupt").exists()
    no_traceback(daemon.log())


def test_claims_left_by_a_kill_9_with_garbage_in_them_then_a_restart(tmp_path: Path, daemons) -> None:
    port = free_port()
    config = base_config(tmp_path, web={"enabled": True, "listen": f"127.0.0.1:{port}"})
    claims = tmp_path / "runtime" / "claims"
    first = daemons(config)
    first.client().results(2)
    first.signal(signal.SIGKILL)
    first.proc.wait(WAIT_S)
    left = sorted(claims.glob("*.lock"))
    assert len(left) == 2  # the socket and the page's port
    left[0].write_bytes(b"\0" * 64)
    left[1].write_bytes(b'{"camera": "x", "pid": [' + b"[" * 10_000)
    for delay in (0.1, 0.3, 0.6):  # killed while it takes (and writes) its claims
        daemon = daemons(config)
        time.sleep(delay)
        daemon.signal(signal.SIGKILL)
        daemon.proc.wait(WAIT_S)
        no_traceback(daemon.log())
    last = daemons(config)
    last.client().results(3)
    wait_serving(port)
    for path in left:
        assert json.loads(path.read_bytes())["pid"] == last.pid
    no_traceback(first.log(), last.log())
