"""`edgecam fleet keygen` and `edgecam fleet sign`: the operator's side of signed rollouts.

The members follow a manifest only when it is signed with the private key
whose public half their config names (fleet.manifest_key; fleet/signing.py).
`sign` checks the manifest's fields as the members will (a manifest they
would refuse is not signed) and prints it on one line, ready for
`mosquitto_pub -m "$(edgecam fleet sign KEY manifest.json)"`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecam.errors import EdgecamError


def add_commands(actions: argparse._SubParsersAction) -> None:
    keygen = actions.add_parser(
        "keygen", help="make the Ed25519 key pair that signs rollout manifests",
        description="Writes a new private key to KEYFILE (mode 0600: keep it off the cameras) and "
                    "its public key to KEYFILE.pub, both PEM; fleet.manifest_key names the .pub "
                    "on each camera. An existing file is never replaced.")
    keygen.add_argument("keyfile", type=Path, metavar="KEYFILE")
    keygen.set_defaults(func=_keygen)
    sign = actions.add_parser(
        "sign", help="sign a rollout manifest: prints it with its \"signature\"",
        description="Reads a manifest (a JSON object: version, url, sha256, labels_url, "
                    "labels_sha256) from MANIFEST or standard input and prints it, on one line, "
                    "with a \"signature\" field: base64 Ed25519 over the other fields as canonical "
                    "JSON (keys sorted, no whitespace, UTF-8). A signature already there is "
                    "replaced.")
    sign.add_argument("keyfile", type=Path, metavar="KEYFILE", help="the private key (keygen's)")
    sign.add_argument("manifest", nargs="?", type=Path, metavar="MANIFEST",
                      help="the manifest file (default: standard input)")
    sign.set_defaults(func=_sign)


def _keygen(args: argparse.Namespace) -> int:
    from edgecam.fleet.signing import generate_key

    public = generate_key(args.keyfile)
    print(f"private key: {args.keyfile} (keep it secret, off the cameras)")
    print(f"public key:  {public} (fleet.manifest_key on each camera)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from edgecam.common.files import read_user_file
    from edgecam.fleet.rollout import ManifestError, fields
    from edgecam.fleet.signing import MAX_MANIFEST_BYTES, SIGNATURE, sign

    if args.manifest is None:
        payload = sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1)
        where = "standard input"
    else:
        payload = read_user_file(args.manifest, "manifest")
        where = str(args.manifest)
    if len(payload) > MAX_MANIFEST_BYTES:
        raise EdgecamError(f"{where}: more than the {MAX_MANIFEST_BYTES} bytes a manifest may have")
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EdgecamError(f"{where}: not a JSON manifest") from None
    if not isinstance(document, dict):
        raise EdgecamError(f"{where}: not a JSON object")
    try:
        fields(document)
    except ManifestError as exc:
        raise EdgecamError(f"{where}: {exc}; not signed") from None
    signed = sign(args.keyfile, {k: v for k, v in document.items() if k != SIGNATURE})
    print(json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return 0
