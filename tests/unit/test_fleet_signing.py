"""Signed manifests in process: keys, the canonical form, every way a manifest is refused,
file:// containment, and the key in the config."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from fleet_keys import make_key, signed

from edgecam.config import FleetConfig, parse_config
from edgecam.errors import ConfigError, EdgecamError
from edgecam.fleet.rollout import Manifest, ManifestError, Trust
from edgecam.fleet.signing import MAX_MANIFEST_BYTES, canonical, generate_key, load_public_key, sign

DOCUMENT = {"version": "2026.06-1", "url": "https://models.lan/m.tflite", "sha256": "a" * 64,
            "labels_url": "https://models.lan/labels.txt", "labels_sha256": "b" * 64}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_key(tmp_path / "keys")


def trust(public: Path | None, under: Path | None = None) -> Trust:
    return Trust.of(FleetConfig(manifest_key=str(public or ""),
                                file_urls_under=str(under or "")))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_replaces_one(
        tmp_path: Path) -> None:
    private, public = make_key(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public == tmp_path / "operator.key.pub"
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    before = private.read_bytes()
    with pytest.raises(EdgecamError, match="exists: not replaced"):
        generate_key(private)
    assert private.read_bytes() == before


def test_the_signature_covers_the_canonical_form(keys: tuple[Path, Path]) -> None:
    private, public = keys
    document = sign(private, {**DOCUMENT, "note": "chat é"})
    assert canonical(document) == (
        '{"labels_sha256":"' + "b" * 64 + '","labels_url":"https://models.lan/labels.txt",'
        '"note":"chat é","sha256":"' + "a" * 64 + '","url":"https://models.lan/m.tflite",'
        '"version":"2026.06-1"}').encode("utf-8")
    # The same fields in another order, with whitespace: the same manifest.
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=2).encode()
    parsed = Manifest.parse(reordered, trust(public))
    assert parsed.version == "2026.06-1" and parsed.sha256 == "a" * 64


@pytest.mark.parametrize("field", [*DOCUMENT, "extra"])
def test_tampering_with_any_field_is_refused(keys: tuple[Path, Path], field: str) -> None:
    private, public = keys
    document = json.loads(signed(private, DOCUMENT))
    document[field] = "c" * 64 if "sha256" in field else "file:///etc/shadow"
    with pytest.raises(ManifestError, match=re.escape("not made with the key of fleet.manifest_key")):
        Manifest.parse(json.dumps(document).encode(), trust(public))


def test_a_strangers_signature_an_unsigned_manifest_and_a_bad_signature_are_refused(
        tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    stranger, _ = make_key(tmp_path / "stranger", "mallory")
    by_stranger = signed(stranger, DOCUMENT).encode()
    good = base64.b64decode(json.loads(signed(private, DOCUMENT))["signature"])
    flipped = base64.b64encode(bytes([good[0] ^ 1]) + good[1:]).decode()
    cases: list[tuple[dict[str, Any] | bytes, str]] = [
        (by_stranger, "not made with the key of fleet.manifest_key"),
        (DOCUMENT, "the manifest is not signed"),
        ({**DOCUMENT, "signature": "not base64!"}, "not base64"),
        ({**DOCUMENT, "signature": 42}, "not a base64 string"),
        ({**DOCUMENT, "signature": base64.b64encode(b"x" * 63).decode()}, "63 bytes"),
        ({**DOCUMENT, "signature": flipped}, "not made with the key"),
    ]
    for payload, problem in cases:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with pytest.raises(ManifestError, match=re.escape(problem)):
            Manifest.parse(data, trust(public))


def test_without_a_key_every_manifest_is_refused_naming_the_setting(keys: tuple[Path, Path]) -> None:
    private, _public = keys
    with pytest.raises(ManifestError, match=r"^fleet\.manifest_key is not set: manifests are refused"):
        Manifest.parse(signed(private, DOCUMENT).encode(), trust(None))


def test_a_huge_or_deep_payload_is_refused_before_it_is_parsed(
        keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _private, public = keys
    huge = json.dumps({**DOCUMENT, "pad": "x" * MAX_MANIFEST_BYTES}).encode()
    parsed: list[bytes] = []
    monkeypatch.setattr(json, "loads", lambda *a, **k: parsed.append(a[0]))
    with pytest.raises(ManifestError, match=f"more than a manifest's {MAX_MANIFEST_BYTES}"):
        Manifest.parse(huge, trust(public))
    assert Manifest.version_of(huge) is None
    assert parsed == []
    monkeypatch.undo()
    for payload, problem in ((b"[" * 60_000, "not JSON"), (b"\xff\xfe", "not JSON"),
                             (b'["a"]', "not a JSON object"),
                             (b'{"version": "x", "signature": "\\ud800"}', "not base64")):
        with pytest.raises(ManifestError, match=problem):
            Manifest.parse(payload, trust(public))


def test_file_urls_only_under_the_configured_folder(tmp_path: Path) -> None:
    stick = tmp_path / "usb"
    (stick / "models").mkdir(parents=True)
    (stick / "models" / "m.tflite").write_bytes(b"model")
    secret = tmp_path / "secret.token"
    secret.write_text("hunter2")
    (stick / "escape").symlink_to(secret)
    (stick / "up").symlink_to(tmp_path)
    inside = trust(None, stick)
    assert inside.local_url((stick / "models" / "m.tflite").as_uri()) == \
        (stick / "models" / "m.tflite").as_uri()
    assert inside.local_url("https://models.lan/m.tflite") == "https://models.lan/m.tflite"
    for url in (secret.as_uri(), "file:///etc/shadow", f"file://{stick}/../secret.token",
                f"file://{stick}/models/../../secret.token", (stick / "escape").as_uri(),
                f"file://{stick}/up/secret.token", f"file://{stick}%2F..%2Fsecret.token",
                f"file://{tmp_path}/usb-other/m.tflite"):
        with pytest.raises(ManifestError, match=re.escape("not under fleet.file_urls_under")):
            inside.local_url(url)
    with pytest.raises(ManifestError, match=re.escape("file:// URLs are refused: fleet.file_urls_under")):
        trust(None).local_url((stick / "models" / "m.tflite").as_uri())


def write_config(tmp_path: Path, key: Path | str) -> str:
    return (f"outputs:\n  mqtt:\n    enabled: true\nfleet:\n  enabled: true\n"
            f"  manifest_key: {key}\n")


def test_the_manifest_key_is_checked_when_the_config_loads(tmp_path: Path,
                                                           keys: tuple[Path, Path]) -> None:
    private, public = keys
    config = parse_config(write_config(tmp_path, public), "edgecam.yaml", tmp_path)
    assert config.fleet.manifest_key == str(public)
    rsa_like = tmp_path / "rsa.pub"  # a PEM public key, but not an Ed25519 one
    rsa_like.write_text("-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(os.urandom(294)).decode()
                        + "\n-----END PUBLIC KEY-----\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for key, problem in ((tmp_path / "none.pub", "no such file"), (private, "not an Ed25519 public"),
                         (rsa_like, "not an Ed25519 public key"), (fifo, "not a file"),
                         (tmp_path, "not a file")):
        with pytest.raises(ConfigError) as error:
            parse_config(write_config(tmp_path, key), "edgecam.yaml", tmp_path)
        assert len(error.value.lines) == 1
        assert error.value.lines[0].startswith("edgecam.yaml:6: fleet.manifest_key: ")
        assert problem in error.value.lines[0], error.value.lines


def test_loading_a_key_that_is_not_an_ed25519_public_key_is_one_line(
        tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert load_public_key(str(public)) is not None
    with pytest.raises(EdgecamError, match=r"^fleet\.manifest_key: .* is not an Ed25519 public key"):
        load_public_key(str(private))
    with pytest.raises(EdgecamError, match="not found"):
        load_public_key(str(tmp_path / "gone.pub"))
