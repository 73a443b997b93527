"""Signed rollouts against a real Mosquitto and real daemons, as an attacker on the LAN tries them.

The members trust the operator's key (fleet.manifest_key). Anyone can publish a
manifest on the broker: an unsigned one, or one signed with a stranger's key, is
refused before any URL is touched (the HTTP server sees no request); a manifest
naming a secret file leaks no digest of it (every payload on the broker, `#`, and
the daemon's log are searched); an endless download fails at fleet.max_model_mb
with the disk bounded, and the next signed manifest is still followed. The model
server here records each request and can stream a body that never ends.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from brokers import Mosquitto, Subscriber, broker_factory, subscriber_factory
from conftest import run_edgecam
from fleet_keys import make_key, signed
from fleets import (
    MODEL_TOPIC,
    SMALL,
    WAIT_S,
    FileServer,
    document,
    flowing,
    last_stats,
    served,
    sha256,
    start_members,
    wait_statuses,
)
from harness import LABELS, wait_for

from edgecam.config import FleetConfig
from edgecam.fleet.rollout import Manifest, Trust


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    yield from broker_factory(tmp_path)


@pytest.fixture
def subscribers() -> Iterator[Callable[..., Subscriber]]:
    yield from subscriber_factory()


def test_only_the_operators_signature_is_followed_and_a_restart_keeps_the_rollout(
        daemons, mosquitto, subscribers, file_server: FileServer, tmp_path: Path) -> None:
    private, public = make_key(tmp_path / "keys")
    stranger, _ = make_key(tmp_path / "mallory", "mallory")
    broker = mosquitto()
    everything = subscribers(broker.port, ["#"])
    fleet = start_members(daemons, tmp_path, broker.port, "abc", head=False, manifest_key=str(public))

    # Unsigned, then signed with a stranger's key: refused by all, no URL touched.
    for version, payload, reason in (
            ("v-unsigned", json.dumps(served(file_server, "v-unsigned")), "not signed"),
            ("v-mallory", signed(stranger, served(file_server, "v-mallory")),
             "not made with the key of fleet.manifest_key")):
        mark = everything.mark()
        everything.publish(MODEL_TOPIC, payload, retain=True)
        failed = wait_statuses(everything, mark, version, "failed", devices="abc")
        assert all(reason in status["error"] for status in failed.values()), failed
        assert file_server.requests == []
        for device, daemon in fleet.items():
            flowing(daemon)
            assert not (tmp_path / device / "state" / "models" / version).exists()

    # The operator's: every member switches; the files are the daemon's alone (0640).
    mark = everything.mark()
    everything.publish(MODEL_TOPIC, signed(private, served(file_server, "v2-small")), retain=True)
    wait_statuses(everything, mark, "v2-small", "active", devices="abc")
    assert sorted(file_server.requests) == sorted([f"/{SMALL.name}", "/labels.txt"] * 3)
    for device in fleet:
        folder = tmp_path / device / "state" / "models" / "v2-small"
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {
            SMALL.name: 0o640, "labels.txt": 0o640}

    # Each member restarts on the rolled-out model (a start after a rollout crashed on 3f5f771).
    for device, daemon in list(fleet.items()):
        assert daemon.stop() == 0, daemon.log()
        mark = everything.mark()
        again = daemons(daemon.config, name=f"{device}-again")
        wait_statuses(everything, mark, "v2-small", "active", devices=device)
        wait_for(lambda d=device: last_stats(everything, d)["model_version"] == "v2-small", WAIT_S,
                 f"{device} to classify with v2-small after its restart")
        flowing(again)
        assert "Traceback" not in again.log(), again.log()
        assert again.stop() == 0, again.log()
    assert len(file_server.requests) == 6  # the restarts downloaded nothing


def test_a_manifest_naming_a_secret_leaks_no_digest_of_it(
        daemons, mosquitto, subscribers, tmp_path: Path) -> None:
    private, public = make_key(tmp_path / "keys")
    stick = tmp_path / "usb"
    stick.mkdir()
    shutil.copy(LABELS, stick / "labels.txt")
    inside = stick / "web.token"  # a secret the member may read: under file_urls_under
    inside.write_text(os.urandom(16).hex() + "\n")
    outside = tmp_path / "outside.token"
    outside.write_text(os.urandom(16).hex() + "\n")
    (stick / "escape.tflite").symlink_to(outside)
    secrets = [inside, outside] + [Path("/etc/shadow")] * os.access("/etc/shadow", os.R_OK)
    digests = {sha256(path) for path in secrets}
    broker = mosquitto()
    everything = subscribers(broker.port, ["#"])
    member = start_members(daemons, tmp_path, broker.port, "a", head=False, manifest_key=str(public),
                           file_urls_under=str(stick))["a"]
    labels = (stick / "labels.txt").as_uri(), sha256(stick / "labels.txt")
    for version, url, reason in (("v-shadow", "file:///etc/shadow", "not under fleet.file_urls_under"),
                                 ("v-escape", (stick / "escape.tflite").as_uri(),
                                  "not under fleet.file_urls_under"),
                                 ("v-dotdot", f"file://{stick}/../outside.token",
                                  "not under fleet.file_urls_under"),
                                 ("v-token", inside.as_uri(), "sha256 mismatch")):
        mark = everything.mark()
        everything.publish(MODEL_TOPIC, signed(private, document(version, url, "0" * 64, *labels)),
                           retain=True)
        failed = wait_statuses(everything, mark, version, "failed", devices="a")
        assert reason in failed["a"]["error"], failed
    mark = everything.mark()  # unsigned, naming the secret with its real digest: refused unread
    everything.publish(MODEL_TOPIC, json.dumps(document("v-unsigned", outside.as_uri(),
                                                        sha256(outside), *labels)), retain=True)
    wait_statuses(everything, mark, "v-unsigned", "failed", devices="a")
    everything.publish(MODEL_TOPIC, "", retain=True)  # the test's own manifest, digest and all, goes
    flowing(member)
    assert member.stop() == 0, member.log()
    published = [m for m in everything.messages if m.topic != MODEL_TOPIC]
    for digest in digests:
        assert not [m.topic for m in published if digest in m.payload], digest
        assert digest not in member.log()
    secret_bytes = {path.read_bytes() for path in secrets}
    for path in (tmp_path / "a" / "state").rglob("*"):
        assert not path.is_file() or path.read_bytes() not in secret_bytes, path


def test_an_endless_download_fails_bounded_and_the_next_manifest_is_followed(
        daemons, mosquitto, subscribers, file_server: FileServer, tmp_path: Path) -> None:
    private, public = make_key(tmp_path / "keys")
    broker = mosquitto()
    everything = subscribers(broker.port, ["#"])
    fleet = start_members(daemons, tmp_path, broker.port, "ab", head=False, manifest_key=str(public),
                          max_model_mb=2)
    mark = everything.mark()
    started = time.monotonic()
    everything.publish(MODEL_TOPIC, signed(private, served(file_server, "v-endless", "endless.tflite")),
                       retain=True)
    failed = wait_statuses(everything, mark, "v-endless", "failed", devices="ab")
    print(f"the endless download failed {time.monotonic() - started:.1f} s after its manifest")
    assert all("larger than 2 MB (fleet.max_model_mb)" in s["error"] for s in failed.values()), failed
    for device, daemon in fleet.items():
        state = tmp_path / device / "state"
        size = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
        assert size < 2 * 10**6, (device, size)
        assert not list(state.rglob("*.part")), device
        flowing(daemon)
    # A labels file of 20 bytes numbering a line 999999999999 (on 3f5f771: a list of a trillion
    # labels, MemoryError, and the rollout thread dead): refused in one line, the thread lives on.
    (file_server.folder / "huge-labels.txt").write_text("0 a\n999999999999 x\n")
    mark = everything.mark()
    everything.publish(MODEL_TOPIC, signed(private, served(file_server, "v-labels",
                                                           labels="huge-labels.txt")), retain=True)
    failed = wait_statuses(everything, mark, "v-labels", "failed", devices="ab")
    assert all("past the 100000 labels" in s["error"] for s in failed.values()), failed
    mark = everything.mark()
    everything.publish(MODEL_TOPIC, signed(private, served(file_server, "v2-small")), retain=True)
    wait_statuses(everything, mark, "v2-small", "active", devices="ab")
    for device, daemon in fleet.items():
        assert daemon.stop() == 0, daemon.log()
        assert "Traceback" not in daemon.log(), device
        assert not (tmp_path / device / "state" / "models" / "v-endless").exists()


def test_keygen_and_sign_on_the_command_line(tmp_path: Path) -> None:
    key = tmp_path / "fleet.key"
    done = run_edgecam("fleet", "keygen", key)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "fleet.key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = run_edgecam("fleet", "keygen", key)
    assert again.returncode != 0 and again.stderr.strip() == \
        f"edgecam: {key} exists: not replaced (remove it first to make a new key)"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(document("v1", "https://nas.lan/m.tflite", "a" * 64,
                                            "https://nas.lan/labels.txt", "b" * 64), indent=2))
    from_file = run_edgecam("fleet", "sign", key, manifest)
    from_stdin = run_edgecam("fleet", "sign", key, input=manifest.read_text())
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_file.stderr
    assert from_file.stdout == from_stdin.stdout and from_file.stdout.count("\n") == 1
    trust = Trust.of(FleetConfig(manifest_key=str(tmp_path / "fleet.key.pub")))
    assert Manifest.parse(from_file.stdout.encode(), trust).version == "v1"
    resigned = run_edgecam("fleet", "sign", key, input=from_file.stdout)  # a signature is replaced
    assert resigned.stdout == from_file.stdout
    for text, problem in (("{", "not a JSON manifest"), ('{"version": "v1"}', "has no 'url'; not signed"),
                          ("x" * 70_000, "more than the 65536 bytes")):
        bad = run_edgecam("fleet", "sign", key, input=text)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        assert len(bad.stderr.splitlines()) == 1 and problem in bad.stderr, bad.stderr
    wrong = run_edgecam("fleet", "sign", tmp_path / "fleet.key.pub", manifest)
    assert wrong.returncode != 0 and wrong.stderr.startswith("edgecam: ") and \
        "not a private key" in wrong.stderr and len(wrong.stderr.splitlines()) == 1, wrong.stderr


def test_a_bad_manifest_key_is_one_line_at_check_config_and_start(tmp_path: Path) -> None:
    not_a_key = tmp_path / "fleet.key.pub"
    not_a_key.write_text("hello\n")
    config = tmp_path / "edgecam.yaml"
    config.write_text("outputs:\n  mqtt:\n    enabled: true\nfleet:\n  enabled: true\n"
                      f"  manifest_key: {not_a_key}\n")
    for command in ("check-config", "run"):
        done = run_edgecam(command, "-c", config)
        assert done.returncode == 78, done.stderr
        assert done.stderr.strip() == (f"{config}:6: fleet.manifest_key: {not_a_key}: not an "
                                       "Ed25519 public key in PEM; edgecam fleet keygen KEYFILE "
                                       "writes one to KEYFILE.pub"), done.stderr
