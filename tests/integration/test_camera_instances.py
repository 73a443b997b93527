"""Several cameras on one machine: `edgecam run --camera NAME` instances, each apart from the others.

Real daemons (two processes) on real photos; they share a runtime folder, as the instances of
edgecam@.service share /run/edgecam, where their claims meet (daemon.claims). The unit itself,
`make install NAME=…` and the journal are tested under systemd in tests/system/test_several_cameras.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import EXPECTED_TOP1, IMAGES, base_config
from streams import free_port

from edgecam.errors import EX_UNAVAILABLE


def photos(tmp_path: Path, name: str) -> Path:
    """A folder holding one of the shared photos, so a camera's results show which camera it is."""
    folder = tmp_path / f"photos-{name}"
    folder.mkdir()
    shutil.copy(IMAGES / name, folder / name)
    return folder


def camera_config(tmp_path: Path, camera: str, photo: str, **outputs: object) -> dict:
    return base_config(tmp_path, camera={"source": str(photos(tmp_path, photo)), "fps": 10},
                       outputs={"socket": {"path": str(tmp_path / f"{camera}.sock")}, **outputs})


def test_two_cameras_each_deliver_their_own_results(tmp_path: Path, daemons) -> None:
    a = daemons(camera_config(tmp_path, "a", "cat.bmp"), "--camera", "a", name="a")
    b = daemons(camera_config(tmp_path, "b", "parrot.jpg"), "--camera", "b", name="b")
    labels_a = {r["labels"][0]["label"] for r in a.client().results(5)}
    labels_b = {r["labels"][0]["label"] for r in b.client().results(5)}
    assert labels_a == {EXPECTED_TOP1["cat.bmp"]}
    assert labels_b == {EXPECTED_TOP1["parrot.jpg"]}


def test_a_second_camera_on_the_same_socket_is_refused_and_the_first_unharmed(tmp_path: Path,
                                                                               daemons) -> None:
    a = daemons(camera_config(tmp_path, "a", "cat.bmp"), "--camera", "a", name="a")
    a.client().results(1)
    same = {**camera_config(tmp_path, "b", "parrot.jpg"), "outputs": a.config["outputs"]}
    b = daemons(same, "--camera", "b", name="b")
    assert b.proc.wait(60) == EX_UNAVAILABLE
    log = b.log().strip().splitlines()
    assert log[-1] == (f"edgecam: {b.config_path}: outputs.socket.path: {a.socket_path} is already "
                       f"used by camera a ({a.config_path}, pid {a.pid})")
    assert "Traceback" not in b.log()
    assert a.proc.poll() is None
    assert {r["labels"][0]["label"] for r in a.client().results(3)} == {EXPECTED_TOP1["cat.bmp"]}


def test_a_second_camera_on_the_same_metrics_port_is_refused_and_the_first_unharmed(
        tmp_path: Path, daemons) -> None:
    port = free_port()
    metrics = {"metrics": {"enabled": True, "listen": f"127.0.0.1:{port}"}}
    a = daemons(camera_config(tmp_path, "a", "cat.bmp", **metrics), "--camera", "a", name="a")
    a.client().results(1)
    b = daemons(camera_config(tmp_path, "b", "parrot.jpg", **metrics), "--camera", "b", name="b")
    assert b.proc.wait(60) == EX_UNAVAILABLE
    assert b.log().strip().splitlines()[-1] == (
        f"edgecam: {b.config_path}: outputs.metrics.listen: TCP port {port} is already used by "
        f"camera a ({a.config_path}, pid {a.pid})")
    assert a.proc.poll() is None
    a.client().results(2)


def test_a_second_instance_asking_for_the_same_pi_camera_exits_69_naming_the_first(
        tmp_path: Path, daemons) -> None:
    """picamera2 is not installed here, so camera a waits for its camera: it holds it all the same."""
    a = daemons(camera_config(tmp_path, "a", "cat.bmp") | {"camera": {"source": "picamera2"}},
                "--camera", "a", name="a")
    a.wait_socket()  # its outputs are up, so its claims were taken (they come first)
    b = daemons(camera_config(tmp_path, "b", "parrot.jpg") | {"camera": {"source": "picamera2:0"}},
                "--camera", "b", name="b")
    assert b.proc.wait(60) == EX_UNAVAILABLE
    assert b.log().strip().splitlines()[-1] == (
        f"edgecam: {b.config_path}: camera.source: picamera2 camera 0 is already used by camera a "
        f"({a.config_path}, pid {a.pid})")
    assert a.proc.poll() is None
