"""Two cameras on one Pi: `make install NAME=a` and `NAME=b` under a real systemd 252.

Each camera is an instance of systemd/edgecam@.service with its own config
(/etc/edgecam/NAME.yaml, written here before the install, as a user who copied
the default would; a third camera, c, gets the shipped default from the install),
socket (/run/edgecam/NAME.sock), state and restart policy. Camera a shows the cat
photo, camera b the parrot, so every result says which camera made it. The tests
run in file order on one install; waits are bounded only to catch hangs.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator

import pytest
import yaml
from conftest import REPO
from harness import EXPECTED_TOP1, IMAGES, MODELS, wait_for
from sandbox import Sandbox

pytestmark = pytest.mark.sandbox

PHOTOS = {"a": "cat.bmp", "b": "parrot.jpg"}


def instance_config(name: str) -> str:
    config = {"camera": {"source": f"/var/lib/edgecam-photos-{name}", "fps": 4},
              "model": {"threads": 1},
              "outputs": {"emit": "every_frame"}}
    return yaml.safe_dump(config, sort_keys=False)


def make(sandbox: Sandbox, *args: str) -> str:
    return sandbox.run("env", f"EDGECAM_MODEL_BASE_URL=file://{MODELS}", "make", "-s", "-C",
                       str(REPO), *args, timeout=900).stdout


def active(sandbox: Sandbox, unit: str) -> bool:
    return sandbox.systemctl("is-active", unit, check=False).stdout.strip() == "active"


def socket_results(sandbox: Sandbox, name: str, count: int) -> list[dict]:
    """The next `count` classifications on camera `name`'s socket."""
    client = ("import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(60); "
              f"s.connect('/run/edgecam/{name}.sock'); f = s.makefile(); n = 0\n"
              "for line in f:\n"
              "    if '\"classification\"' in line:\n"
              "        print(line, end=''); n += 1\n"
              f"    if n == {count}: break")
    out = sandbox.run("/usr/bin/python3", "-c", client, timeout=120).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def cameras(sandbox: Sandbox) -> Iterator[Sandbox]:
    for name, photo in PHOTOS.items():
        folder = f"/var/lib/edgecam-photos-{name}"
        sandbox.sh(f"mkdir -p {folder} /etc/edgecam && cp {IMAGES}/{photo} {folder}/ && "
                   f"chmod -R a+rX {folder}")
        sandbox.run("tee", f"/etc/edgecam/{name}.yaml", input=instance_config(name))
    for name in PHOTOS:
        print(make(sandbox, "install", f"NAME={name}"))
    for name in PHOTOS:
        wait_for(lambda name=name: any("EDGECAM_LABEL" in e for e in sandbox.journal(
            unit=f"edgecam@{name}")), 120, f"camera {name}'s first result")
    yield sandbox


def test_both_instances_are_active(cameras: Sandbox) -> None:
    assert active(cameras, "edgecam@a") and active(cameras, "edgecam@b")
    assert cameras.show("MainPID", unit="edgecam@a") != cameras.show("MainPID", unit="edgecam@b")


def test_each_journal_has_only_its_cameras_labels_and_name(cameras: Sandbox) -> None:
    for name, photo in PHOTOS.items():
        entries = [e for e in cameras.journal(unit=f"edgecam@{name}") if "EDGECAM_LABEL" in e]
        assert entries
        assert {e["EDGECAM_LABEL"] for e in entries} == {EXPECTED_TOP1[photo]}
        assert {e["EDGECAM_CAMERA"] for e in entries} == {name}
    by_field = cameras.run("journalctl", "EDGECAM_CAMERA=b", "-o", "json", "--no-pager").stdout
    assert {json.loads(line)["_SYSTEMD_UNIT"] for line in by_field.splitlines()} == {"edgecam@b.service"}


def test_each_socket_answers_with_its_own_results(cameras: Sandbox) -> None:
    for name, photo in PHOTOS.items():
        results = socket_results(cameras, name, 3)
        assert {r["labels"][0]["label"] for r in results} == {EXPECTED_TOP1[photo]}


def seqs(sandbox: Sandbox, unit: str, cursor: str) -> list[int]:
    return [int(e["EDGECAM_SEQ"]) for e in sandbox.journal(f"--after-cursor={cursor}", unit=unit)
            if "EDGECAM_SEQ" in e]


def test_kill_9_restarts_a_while_b_runs_on(cameras: Sandbox) -> None:
    a, b = (cameras.show("MainPID", "NRestarts", unit=f"edgecam@{n}") for n in ("a", "b"))
    mark = cameras.journal("-n", "1", unit="edgecam@b")[-1]["__CURSOR"]
    cameras.run("kill", "-9", a["MainPID"])
    wait_for(lambda: cameras.show("NRestarts", unit="edgecam@a")["NRestarts"] != a["NRestarts"]
             and active(cameras, "edgecam@a"), 120, "a's restart after kill -9")
    wait_for(lambda: any("EDGECAM_LABEL" in e for e in cameras.journal(
        "-n", "5", unit="edgecam@a")), 120, "a's results after its restart")
    assert cameras.show("MainPID", unit="edgecam@a")["MainPID"] != a["MainPID"]
    # b never noticed: same process, no restart, its frame numbers going on without a reset.
    assert cameras.show("MainPID", "NRestarts", unit="edgecam@b") == b
    numbers = seqs(cameras, "edgecam@b", mark)
    assert len(numbers) >= 4
    assert all(later > earlier for earlier, later in itertools.pairwise(numbers))


def exposure(sandbox: Sandbox, unit: str) -> float:
    security = sandbox.run("systemd-analyze", "security", unit, "--no-pager", check=False).stdout
    overall = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", security)
    assert overall, security
    return float(overall.group(1))


def test_the_template_verifies_and_is_as_hardened_as_the_plain_unit(cameras: Sandbox) -> None:
    verify = cameras.run("systemd-analyze", "verify", "edgecam@a.service", check=False)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    # The plain unit, loaded (not started) beside the template, to score both the same way.
    cameras.run("cp", str(REPO / "systemd" / "edgecam.service"), "/run/systemd/system/")
    try:
        cameras.systemctl("daemon-reload")
        instance, plain = exposure(cameras, "edgecam@a.service"), exposure(cameras, "edgecam.service")
    finally:
        cameras.run("rm", "-f", "/run/systemd/system/edgecam.service")
        cameras.systemctl("daemon-reload")
    print(f"\nsystemd-analyze security: edgecam@a.service {instance}, edgecam.service {plain}")
    assert instance <= plain


INSTANCE_FILES = ("/opt/edgecam", "/etc/edgecam", "/etc/systemd/system")


def test_installing_b_again_changes_nothing(cameras: Sandbox) -> None:
    before, pid = cameras.files(*INSTANCE_FILES), cameras.show("MainPID", unit="edgecam@b")
    make(cameras, "install", "NAME=b")
    assert cameras.files(*INSTANCE_FILES) == before
    assert cameras.show("MainPID", unit="edgecam@b") == pid, "nothing changed: no restart"


def test_a_new_camera_without_a_config_gets_the_default_and_uninstall_purge_removes_it(
        cameras: Sandbox) -> None:
    """`make install NAME=c` with no /etc/edgecam/c.yaml writes the shipped default there (its
    picamera2 is not installable here: c waits for the camera, as a fresh Pi would say), and
    `make uninstall NAME=c PURGE=1` removes c's config and state, not the others'."""
    assert cameras.run("test", "-e", "/etc/edgecam/c.yaml", check=False).returncode != 0
    b = cameras.show("MainPID", unit="edgecam@b")
    try:
        make(cameras, "install", "NAME=c")
        shipped = (REPO / "config" / "edgecam.yaml").read_text()
        assert cameras.run("cat", "/etc/edgecam/c.yaml").stdout == shipped
        assert active(cameras, "edgecam@c")
        wait_for(lambda: cameras.show("StatusText", unit="edgecam@c")["StatusText"].startswith(
            "waiting for the camera"), 120, "c's status: waiting for the camera")
    finally:
        make(cameras, "uninstall", "NAME=c", "PURGE=1")
    assert not active(cameras, "edgecam@c")
    for gone in ("/etc/edgecam/c.yaml", "/var/lib/edgecam/c"):
        assert cameras.run("test", "-e", gone, check=False).returncode != 0, gone
    cameras.run("test", "-f", "/etc/edgecam/b.yaml")
    assert cameras.show("MainPID", unit="edgecam@b") == b and active(cameras, "edgecam@b")


def test_uninstalling_a_leaves_b_running(cameras: Sandbox) -> None:
    b = cameras.show("MainPID", unit="edgecam@b")
    make(cameras, "uninstall", "NAME=a")
    assert not active(cameras, "edgecam@a")
    assert cameras.systemctl("is-enabled", "edgecam@a", check=False).stdout.strip() != "enabled"
    assert active(cameras, "edgecam@b") and cameras.show("MainPID", unit="edgecam@b") == b
    cameras.run("test", "-f", "/etc/edgecam/a.yaml")  # kept, as a plain uninstall keeps its config
    cameras.run("test", "-S", "/run/edgecam/b.sock")  # a's stop did not take the shared /run/edgecam
    assert {r["labels"][0]["label"] for r in socket_results(cameras, "b", 2)} == {EXPECTED_TOP1["parrot.jpg"]}
