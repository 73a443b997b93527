"""The fleet's section of the schema (edgecam.fleet), and the check of its manifest key.

The key is checked at load (check-config, start, reload) without the
`cryptography` library: an Ed25519 public key in PEM is always the same
44-byte DER structure, so anything else (a private key, an RSA key, garbage)
is one line naming fleet.manifest_key here. The fleet loads it with
`cryptography` when it starts (fleet/signing.py).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from dataclasses import dataclass

from edgecam.config.fields import STATE_DIR, parse_discovery_prefix, parse_folder, setting

#: SubjectPublicKeyInfo's DER for an Ed25519 key (RFC 8410), up to the 32 bytes of the key itself
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")
_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----")
_MAX_KEY_BYTES = 16 * 1024


def check_public_key(path: str) -> None:
    """`path` holds an Ed25519 public key in PEM (`edgecam fleet keygen`'s KEYFILE.pub)."""
    if not path:
        return
    hint = "; edgecam fleet keygen KEYFILE writes one to KEYFILE.pub"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise ValueError(f"{path}: no such file{hint}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO would block, /dev/zero never end
            raise ValueError(f"{path}: not a file")
        data = os.read(fd, _MAX_KEY_BYTES)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    match = _PEM.search(data)
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True) if match else b""
    except (binascii.Error, ValueError):
        der = b""
    if not (len(der) == len(_ED25519_SPKI) + 32 and der.startswith(_ED25519_SPKI)):
        raise ValueError(f"{path}: not an Ed25519 public key in PEM{hint}")


@dataclass(frozen=True)
class FleetConfig:
    """Several cameras sharing learned classes and model rollouts over the MQTT broker (edgecam.fleet)."""

    enabled: bool = setting(False, "take part in the fleet on outputs.mqtt's broker (needs "
                            "outputs.mqtt.enabled)")
    share_heads: bool = setting(True, "publish this device's learned heads, retained")
    merge_heads: bool = setting(True, "classify with the fleet's head (<topic_root>/fleet/head) "
                                "and this device's own")
    aggregate: bool = setting(False, "merge every member's head and publish the fleet's head on "
                              "<topic_root>/fleet/head (one or two members of a fleet)")
    topic_root: str = setting("edgecam", "members publish under <topic_root>/<device>/...",
                              parse=parse_discovery_prefix)
    model_topic: str = setting("edgecam/fleet/model", "the retained model rollout manifest",
                               parse=parse_discovery_prefix)
    state_dir: str = setting(str(STATE_DIR), "the fleet's files: heads/ (the merged heads) and "
                             "models/<version>/ (rolled-out models)", parse=parse_folder, path=True)
    manifest_key: str = setting("", "the Ed25519 public key (PEM: `edgecam fleet keygen`'s "
                                "KEYFILE.pub) a manifest must be signed with; empty: every manifest "
                                "is refused", path=bool, check=check_public_key)
    file_urls_under: str = setting("", "a manifest's file:// URLs are followed only to files in this "
                                   "folder (symlinks and .. resolved first); empty: file:// is refused",
                                   path=bool)
    max_model_mb: float = setting(100.0, "a rolled-out file larger than this many megabytes (10^6 "
                                  "bytes) is refused, checked while it downloads", min=0.01,
                                  max=100_000)
    download_timeout_s: float = setting(600.0, "a download not finished in this many seconds in all "
                                        "is abandoned (and tried again later)", min=1, max=86_400)
