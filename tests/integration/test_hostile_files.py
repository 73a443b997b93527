"""The files the daemon reads, under attack, with the real daemon and CLI (issue 24, "Must show").

- A FIFO, /dev/zero or a sparse 4 GB file as model.labels: `edgecam run` ends
  in one line, well within 15 s, with no traceback (it hung, or died of
  MemoryError, on 3f5f771); check-config refuses each.
- A 10 MB camera.source: one line from check-config and from run.
- A symlink `frame/…-evil.jpg` → a secret file, with a sidecar that checks
  out, is neither listed nor served, on the page or by `edgecam snapshots`.
- A sidecar with `"ts": 1e999`: /api/status still 200, `edgecam snapshots
  --json` exit 0 with strict JSON.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_edgecam
from harness import DEFAULT_MODEL, IMAGES, base_config, wait_for, write_config
from streams import free_port
from web_client import get, wait_serving

from edgecam.errors import EX_CONFIG, EX_DATAERR

pytest.importorskip("aiohttp")
END_S = 15  # the bound on `edgecam run` ending
EVIL = "20991231T000000.000Z-1-evil"  # newest of all: the page lists the newest first
INFINITE = "20991230T000000.000Z-2-infinite"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("labels", ["fifo", "/dev/zero", "sparse"])
def test_a_labels_file_that_is_a_fifo_dev_zero_or_sparse_ends_run_in_one_line(
        labels: str, tmp_path: Path, request) -> None:
    path = request.getfixturevalue(labels) if labels in ("fifo", "sparse") else Path(labels)
    config = write_config(tmp_path / "edgecam.yaml", base_config(tmp_path, model={"labels": str(path)}))
    checked = run_edgecam("check-config", "-c", config, timeout=END_S)
    assert checked.returncode == EX_CONFIG
    assert one_line(checked.stderr).startswith(f"{config}:") and f"model.labels: {path}: " in checked.stderr
    started = time.monotonic()
    ran = run_edgecam("run", "-c", config, timeout=END_S)
    assert time.monotonic() - started < END_S
    assert ran.returncode == EX_CONFIG
    assert one_line(ran.stderr) == one_line(checked.stderr)


def test_a_fifo_given_as_labels_past_the_config_check_is_one_line(fifo: Path) -> None:
    """`classify --labels` reads the file without check-config's check: the reader's own check
    (O_NONBLOCK, then fstat) refuses it without waiting for a writer."""
    done = run_edgecam("classify", IMAGES / "cat.bmp", "--model", DEFAULT_MODEL, "--labels", fifo,
                       timeout=END_S)
    assert done.returncode == EX_DATAERR
    assert one_line(done.stderr) == f"edgecam: {fifo}: cannot be the labels file: not a regular file (a FIFO)"


def test_a_10mb_camera_source_is_one_line(tmp_path: Path) -> None:
    config = base_config(tmp_path, camera={"source": "a" * 10_000_000})
    path = tmp_path / "edgecam.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML: one 10 MB line
    for command in ("check-config", "run"):
        done = run_edgecam(command, "-c", path, timeout=END_S * 4)
        assert done.returncode == EX_CONFIG
        line = one_line(done.stderr)
        assert line.startswith(f"{path}:1: (file): cannot be the config file: 10.000"), line
        assert line.endswith(" MB, more than the 1 MB such a file may be"), line
    config["camera"]["source"] = "a" * 5000
    write_config(path, config)
    done = run_edgecam("run", "-c", path, timeout=END_S * 4)
    assert done.returncode == EX_CONFIG
    assert one_line(done.stderr).endswith("camera.source: 5,000 characters long (at most 4,096)")
    done = run_edgecam("run", "-c", path, "--source", "b" * 100_000, timeout=END_S * 4)
    assert done.returncode == EX_CONFIG  # the config's own source is refused first
    config["camera"]["source"] = str(IMAGES)
    write_config(path, config)
    done = run_edgecam("run", "-c", path, "--source", "b" * 100_000, timeout=END_S * 4)
    assert done.returncode == EX_CONFIG
    assert one_line(done.stderr) == "--source: 100,000 characters long (at most 4,096)"


def plant(folder: Path, secret: Path) -> None:
    """The attack: a symlink named as a snapshot to `secret`, with a sidecar that checks out; and
    a real JPEG whose sidecar says `"ts": 1e999`."""
    frame = folder / "frame"
    frame.mkdir(parents=True)
    (frame / f"{EVIL}.jpg").symlink_to(secret)
    (frame / f"{EVIL}.json").write_text(sidecar_text(4102358400.0))
    (frame / f"{INFINITE}.jpg").write_bytes((IMAGES / "parrot.jpg").read_bytes())
    (frame / f"{INFINITE}.json").write_text(sidecar_text(1.0).replace('"ts": 1.0', '"ts": 1e999'))


def sidecar_text(ts: float) -> str:
    message = {"type": "classification", "seq": 1, "ts": ts, "latency_ms": 40.0,
               "labels": [{"index": 286, "label": "Egyptian cat", "score": 0.9}]}
    return json.dumps({"format": "edgecam-snapshot", "version": 1, "message": message, "zone": None,
                       "crop": [0, 0, 1, 1], "frame": {"width": 640, "height": 480}})


def strict(line: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} in --json output")
    return json.loads(line, parse_constant=refuse)


def test_a_symlinked_snapshot_and_a_1e999_sidecar_on_the_page_and_in_the_cli(
        tmp_path: Path, daemons) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    folder = tmp_path / "snaps"
    plant(folder, secret)
    port = free_port()
    config = base_config(tmp_path, outputs={"emit": "on_change", "heartbeat_s": 0},
                         snapshots={"enabled": True, "dir": str(folder)},
                         web={"enabled": True, "listen": f"127.0.0.1:{port}"})
    daemon = daemons(config)
    daemon.client().results(3)
    wait_serving(port)

    def listed() -> dict[str, Any] | None:
        status, _, body = get(port, "/api/status")
        assert status == 200, (status, body[:300])
        document = strict(body.decode())
        return document if document["snapshots"] else None

    document = wait_for(listed, 60, "the page to list the daemon's snapshots")
    urls = [item["url"] for item in document["snapshots"]]
    assert not any("evil" in url or "infinite" in url for url in urls), urls
    # Counted once each, however often the page lists them (the stats are taken before the listing).
    wait_for(lambda: (listed() or {}).get("stats", {}).get("outputs", {}).get("snapshots_refused") == 2,
             30, "the two refused snapshots to be counted")
    time.sleep(6)  # the folder is listed again after 5 s: still two
    assert listed()["stats"]["outputs"]["snapshots_refused"] == 2  # type: ignore[index]
    for name in (f"{EVIL}.jpg", f"{INFINITE}.jpg"):
        status, _, body = get(port, f"/snapshots/frame/{name}")
        assert status == 404 and b"secret" not in body

    def served() -> bytes | None:  # one of the listed (the list moves on as snapshots are taken)
        status, headers, body = get(port, listed()["snapshots"][0]["url"])  # type: ignore[index]
        return body if status == 200 and headers["Content-Type"] == "image/jpeg" else None

    assert wait_for(served, 30, "a listed snapshot to be served")[:2] == b"\xff\xd8"

    done = run_edgecam("snapshots", "--json", "-c", daemon.config_path)
    assert done.returncode == 0, done.stderr
    rows = [strict(line) for line in done.stdout.splitlines()]
    assert rows and not any("evil" in row["path"] or "infinite" in row["path"] for row in rows)
    assert sorted(line.split(": ")[1].rsplit("/", 1)[-1] for line in done.stderr.splitlines()) == [
        f"{INFINITE}.json", f"{EVIL}.jpg"]
    assert "ts inf is not a time" in done.stderr
    plain = run_edgecam("snapshots", "-c", daemon.config_path)
    assert plain.returncode == 0 and "evil" not in plain.stdout
    assert "Traceback" not in daemon.log()


def test_sigterm_stops_a_start_that_waits_on_nothing_it_reads(tmp_path: Path, fifo: Path) -> None:
    """A labels FIFO is refused before anything waits: a start that is stopped at once ends too."""
    config = write_config(tmp_path / "edgecam.yaml", base_config(tmp_path, model={"labels": str(fifo)}))
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "-c", str(config)],
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=END_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in stderr
