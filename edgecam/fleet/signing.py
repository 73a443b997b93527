"""Signed manifests: Ed25519 keys, the canonical form a signature covers, signing and checking.

A manifest is trusted only when it carries a `"signature"` made with the
private key whose public half the member's config names (fleet.manifest_key):
anyone who can publish to the broker can publish a manifest, only the key's
holder can sign one. The signature is Ed25519 (the `cryptography` library:
no home-made crypto), base64, over the manifest's other fields in canonical
JSON: keys sorted, no whitespace (`","` and `":"`), UTF-8 (no `\\u` escapes).

Keys are PEM files: the private key PKCS#8, the public key SubjectPublicKeyInfo
(`openssl pkey -pubin -in KEY.pub -text` reads it). `cryptography` is imported
only here, and only when a key is used: a fleet without one needs none.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from edgecam.common.files import read_user_file
from edgecam.dependencies import CRYPTOGRAPHY, MissingDependency
from edgecam.errors import EdgecamError

SIGNATURE = "signature"
#: manifests are a few hundred bytes; anything past this is refused before it is parsed
MAX_MANIFEST_BYTES = 64 * 1024
_MAX_KEY_BYTES = 16 * 1024
_SIGNATURE_BYTES = 64


class SignatureError(EdgecamError):
    """A manifest that is unsigned, or whose signature is not the trusted key's."""


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: every field but the signature, sorted, compact, UTF-8."""
    fields = {key: value for key, value in document.items() if key != SIGNATURE}
    try:
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        raise SignatureError("the manifest has text that is not UTF-8, or a number that is not "
                             "one (NaN, Infinity)") from None


def generate_key(path: Path) -> Path:
    """Writes a new private key to `path` (mode 0600) and its public key to `path`.pub; refuses
    to replace either (a lost signing key means re-keying every member)."""
    ed25519, serialization = _crypto()
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists() or existing.is_symlink():
            raise EdgecamError(f"{existing} exists: not replaced (remove it first to make a new key)")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(path, private, 0o600)
    _write_new(public_path, public, 0o644)
    return public_path


def sign(key_path: str | Path, document: dict[str, Any]) -> dict[str, Any]:
    """`document` with a `signature` (base64) made with the private key in `key_path`."""
    ed25519, serialization = _crypto()
    data = read_user_file(key_path, "private key")
    try:
        key = serialization.load_pem_private_key(data[:_MAX_KEY_BYTES], password=None)
    except (ValueError, TypeError):
        raise EdgecamError(f"{key_path}: not a private key without a passphrase (edgecam fleet "
                           "keygen makes one)") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise EdgecamError(f"{key_path}: not an Ed25519 private key (edgecam fleet keygen makes one)")
    signature = key.sign(canonical(document))
    fields = {k: v for k, v in document.items() if k != SIGNATURE}
    return {**fields, SIGNATURE: base64.b64encode(signature).decode("ascii")}


def load_public_key(path: str, what: str = "fleet.manifest_key") -> Any:
    """The Ed25519 public key in `path`; one line naming `what` if it is missing or not one."""
    ed25519, serialization = _crypto()
    data = read_user_file(path, f"public key ({what})")
    try:
        key = serialization.load_pem_public_key(data[:_MAX_KEY_BYTES])
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise EdgecamError(f"{what}: {path} is not an Ed25519 public key in PEM (edgecam fleet "
                           "keygen KEYFILE writes one to KEYFILE.pub)")
    return key


def verify(document: dict[str, Any], key: Any, key_path: str) -> None:
    """SignatureError unless `document`'s signature is `key`'s over its other fields."""
    from cryptography.exceptions import InvalidSignature

    encoded = document.get(SIGNATURE)
    if encoded is None:
        raise SignatureError(f"the manifest is not signed (fleet.manifest_key {key_path} is "
                             "required): edgecam fleet sign KEYFILE MANIFEST signs one")
    if not isinstance(encoded, str):
        raise SignatureError("the manifest's signature is not a base64 string")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the manifest's signature is not base64") from None
    if len(signature) != _SIGNATURE_BYTES:
        raise SignatureError(f"the manifest's signature is {len(signature)} bytes, not an Ed25519 "
                             "signature's 64")
    try:
        key.verify(signature, canonical(document))
    except InvalidSignature:
        raise SignatureError(f"the manifest's signature is not made with the key of "
                             f"fleet.manifest_key ({key_path}): refused") from None


def _crypto() -> tuple[Any, Any]:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependency(CRYPTOGRAPHY) from None
    return ed25519, serialization


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise EdgecamError(f"{path}: cannot write the key: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, mode)  # whatever the umask
        file.write(data)
        file.flush()
        os.fsync(fd)
