"""Snapshots with the real daemon on the photos folder: files before messages, full frames, full and
read-only disks, the listing.

The photos cycle at the camera's fps and each one's label leads decisively,
so with `emit: on_change` (no heartbeat) every frame is a label change and
every result should come with a snapshot. Each message naming a snapshot is
checked as soon as it is read: the JPEG and its sidecar are there, the
sidecar holds that very message, and the JPEG is the full photo, not the
model's 224x224 input. The disk troubles are real: a 64 KiB tmpfs that fills
up, a read-only bind mount (both need root), each fixed again while the
daemon runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest
from conftest import run_edgecam
from harness import IMAGES, Client, base_config, wait_for, write_config

from edgecam.snapshots.writer import FRAMES_WAITING

PHOTO_SIZES = {cv2.imread(str(p)).shape[:2] for p in IMAGES.iterdir()}
WAIT_S = 60
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def snapshot_config(tmp_path: Path, folder: Path, **snapshots: Any) -> dict[str, Any]:
    return base_config(tmp_path, outputs={"emit": "on_change", "heartbeat_s": 0},
                       snapshots={"enabled": True, "dir": str(folder), **snapshots})


def check_snapshot(message: dict[str, Any], crop: list[float] | None = None) -> dict[str, Any]:
    """The files a message names, at once: the JPEG (the full photo) and a sidecar holding it."""
    jpeg = Path(message["snapshot"])
    sidecar = json.loads(jpeg.with_suffix(".json").read_text())
    assert sidecar["message"] == message
    assert sidecar["zone"] == message.get("zone")
    assert sidecar["crop"] == (crop or [0.0, 0.0, 1.0, 1.0])
    image = cv2.imread(str(jpeg))
    assert image is not None, jpeg
    assert image.shape[:2] in PHOTO_SIZES, image.shape
    assert sidecar["frame"] == {"width": image.shape[1], "height": image.shape[0]}
    return sidecar


def classifications(client: Client, count: int) -> Iterator[dict[str, Any]]:
    """The next `count` results, each handed over as soon as it is read."""
    for _ in range(count):
        while (message := client.message())["type"] != "classification":
            pass
        yield message


def stats_until(client: Client, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        message = client.message()
        found.append(message)
        return message["type"] == "stats" and done(message["outputs"])

    wait_for(arrived, WAIT_S, what, interval=0)
    return found[-1]["outputs"]


def test_every_change_names_its_full_frame_saved_before_the_message(tmp_path: Path, daemons) -> None:
    folder = tmp_path / "snaps"
    daemon = daemons(snapshot_config(tmp_path, folder))
    client = daemon.client()
    saved = []
    for message in classifications(client, 60):
        if "snapshot" in message:
            check_snapshot(message)
            saved.append(message)
    assert len(saved) >= 50, f"only {len(saved)} of 60 changes saved"
    assert all(Path(m["snapshot"]).parent == folder / "frame" for m in saved)
    outputs = stats_until(client, lambda o: o["snapshots_saved"] >= 60, "a stats message")
    unaccounted = outputs["emitted"] - outputs["snapshots_saved"] - outputs["snapshots_dropped"] \
        - outputs["snapshots_failed"]
    assert 0 <= unaccounted <= FRAMES_WAITING + 1, outputs  # in flight, at most

    listing = run_edgecam("snapshots", "-c", daemon.config_path)
    assert listing.returncode == 0, listing.stderr
    paths = [line.rsplit("  ", 1)[1] for line in listing.stdout.splitlines()]
    assert len(paths) >= len(saved) and paths == sorted(paths, reverse=True)
    assert {m["snapshot"] for m in saved} <= set(paths)
    macaws = run_edgecam("snapshots", "-c", daemon.config_path, "--label", "macaw", "--json")
    listed = [json.loads(line) for line in macaws.stdout.splitlines()]
    assert listed and {item["label"] for item in listed} == {"macaw"}
    assert [item["ts"] for item in listed] == sorted((item["ts"] for item in listed), reverse=True)
    assert run_edgecam("snapshots", "-c", daemon.config_path, "--zone", "door").stdout == ""
    assert "Traceback" not in daemon.log()


def test_with_zones_each_zone_saves_the_full_frame_and_its_crop(tmp_path: Path, daemons) -> None:
    folder = tmp_path / "snaps"
    crops = {"inner": [0.1, 0.1, 0.8, 0.8], "top": [0.0, 0.0, 1.0, 0.5]}
    config = snapshot_config(tmp_path, folder)
    config["zones"] = [{"name": name, "crop": crop} for name, crop in crops.items()]
    daemon = daemons(config)
    seen = {name: 0 for name in crops}
    for message in classifications(daemon.client(), 40):
        if "snapshot" in message:
            check_snapshot(message, crops[message["zone"]])
            assert Path(message["snapshot"]).parent == folder / message["zone"]
            seen[message["zone"]] += 1
    assert min(seen.values()) >= 5, seen
    listing = run_edgecam("snapshots", "-c", daemon.config_path, "--zone", "top", "--json")
    assert {json.loads(line)["zone"] for line in listing.stdout.splitlines()} == {"top"}


def test_a_heartbeat_never_saves_a_snapshot(tmp_path: Path, daemons) -> None:
    folder = tmp_path / "snaps"
    config = snapshot_config(tmp_path, folder)
    config["camera"]["source"] = str(IMAGES / "parrot.jpg")
    config["outputs"]["heartbeat_s"] = 0.2
    daemon = daemons(config, "--print")  # stdout has every result, from the first (the change) on
    lines = wait_for(lambda: (found := daemon.stdout_lines())[5:] and found, WAIT_S, "6 results")
    first, *heartbeats = lines[:6]
    check_snapshot(first)
    assert [m["labels"][0]["label"] for m in heartbeats] == ["macaw"] * 5
    assert not any("snapshot" in m for m in heartbeats)
    assert len(list(folder.rglob("*.jpg"))) == 1


@pytest.fixture
def mounts() -> Iterator[Callable[..., None]]:
    """`mount(*options, target)`; each target unmounted at teardown (after the daemons stopped)."""
    mounted: list[Path] = []

    def mount(*options: str, target: Path) -> None:
        target.mkdir(exist_ok=True)
        done = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount here: {done.stderr.strip()}")
        mounted.append(target)

    yield mount
    for target in reversed(mounted):
        if subprocess.run(["umount", str(target)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=False)


def fails_then_recovers(daemon, client: Client, fix: Callable[[], None]) -> None:
    """Failures counted and warned about once while results flow on; saved again once fixed."""
    outputs = stats_until(client, lambda o: o["snapshots_failed"] >= 10, "failed snapshots counted")
    assert daemon.log().count("snapshots: not saved") == 1, daemon.log()
    for message in classifications(client, 20):  # results flow on (a small JPEG may still fit)
        if "snapshot" in message:
            check_snapshot(message)
    assert daemon.proc.poll() is None
    fix()
    saved_before = outputs["snapshots_saved"]
    stats_until(client, lambda o: o["snapshots_saved"] >= saved_before + 5, "snapshots saved again")
    for message in classifications(client, 10):
        if "snapshot" in message:
            check_snapshot(message)
    assert "snapshots: saving again" in daemon.log()
    assert daemon.log().count("snapshots: not saved") == 1
    assert "Traceback" not in daemon.log()


@needs_root
def test_a_full_disk_is_counted_warned_once_and_retried(tmp_path: Path, mounts, daemons) -> None:
    folder = tmp_path / "tiny"
    mounts("-t", "tmpfs", "-o", "size=64k", "tmpfs", target=folder)
    daemon = daemons(snapshot_config(tmp_path, folder))
    client = daemon.client()
    fails_then_recovers(daemon, client, lambda: subprocess.run(
        ["mount", "-o", "remount,size=8m", str(folder)], check=True))


@needs_root
def test_a_read_only_folder_is_counted_warned_once_and_retried(tmp_path: Path, mounts, daemons) -> None:
    source, folder = tmp_path / "writable", tmp_path / "read-only"
    source.mkdir()
    mounts("--bind", str(source), target=folder)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
    daemon = daemons(snapshot_config(tmp_path, folder))
    client = daemon.client()
    fails_then_recovers(daemon, client, lambda: subprocess.run(
        ["mount", "-o", "remount,bind,rw", str(folder)], check=True))
    assert list((source / "frame").glob("*.jpg"))  # written through the mount once it was writable


def test_a_reload_turns_snapshots_on_lowers_the_limit_and_turns_them_off(tmp_path: Path,
                                                                           daemons) -> None:
    folder = tmp_path / "snaps"
    config = snapshot_config(tmp_path, folder)
    config["snapshots"]["enabled"] = False
    config["camera"]["fps"] = 5  # with max_files 8, a snapshot is kept 1.6 s: time to look at it
    daemon = daemons(config)
    client = daemon.client()
    assert not any("snapshot" in m for m in classifications(client, 5))

    def reload(**snapshots: Any) -> Iterator[dict[str, Any]]:
        """Reloads with `snapshots` changed; then the next 20 results of frames captured after it,
        each as soon as it is read."""
        config["snapshots"].update(snapshots)
        write_config(daemon.config_path, config)
        reloads = daemon.log().count("reloaded: ")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.log().count("reloaded: ") > reloads, WAIT_S, "the reload")
        assert "snapshots" in daemon.log().rsplit("reloaded: ", 1)[1].splitlines()[0]
        after, count = time.time(), 0
        while count < 20:
            (message,) = classifications(client, 1)
            if message["ts"] > after:
                count += 1
                yield message

    saved = 0
    for message in reload(enabled=True):  # frames are now kept whole
        if "snapshot" in message:
            check_snapshot(message)
            saved += 1
    assert saved >= 10
    for message in reload(max_files=8):  # the new writer trims the folder before its first write
        if "snapshot" in message:
            check_snapshot(message)
            assert len(list(folder.rglob("*.jpg"))) <= 8
    assert not any("snapshot" in m for m in reload(enabled=False))
    assert len(list(folder.rglob("*.jpg"))) <= 8
    assert "Traceback" not in daemon.log()
