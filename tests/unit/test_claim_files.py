"""Claim files (daemon.claims) as a kill -9, a power cut or a neighbour leave them (issue 24).

A claim file left behind is never a stale claim (the lock went with its
process); what it holds may be half a record or garbage, and what sits at its
name may be a symlink planted to have the daemon truncate another file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgecam.config import Camera, parse_config
from edgecam.daemon.claims import ClaimError, Claims


def socket_config(tmp_path: Path):
    """A config whose one claim is its socket."""
    text = f"camera:\n  source: {tmp_path}\noutputs:\n  socket:\n    path: {tmp_path}/same.sock\n"
    return parse_config(text, "c.yaml", tmp_path)


def held_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.lock"))


def left_behind(folder: Path, config) -> Path:
    """The claim file camera a leaves in `folder`, as a kill -9 would: the file stays, the lock goes."""
    first = Claims(Camera.named("a"), "/etc/edgecam/a.yaml", folder)
    first.hold(config)
    first.close()
    (path,) = held_files(folder)
    return path


@pytest.mark.parametrize("garbage", [b"", b'{"camera": "a", "pi', b"\0" * 100, b"[1, 2, 3]", b'"text"',
                                     b'{"camera": 5, "pid": "x"}', b'{"camera": "../etc", "pid": 1}',
                                     b"[" * 50_000])
def test_a_claim_file_left_with_garbage_is_taken_and_rewritten(tmp_path: Path, garbage: bytes) -> None:
    folder = tmp_path / "claims"
    config = socket_config(tmp_path)
    path = left_behind(folder, config)
    path.write_bytes(garbage)
    second = Claims(Camera.named("b"), "/etc/edgecam/b.yaml", folder)
    try:
        second.hold(config)
        assert b'"camera": "b"' in path.read_bytes()
    finally:
        second.close()


@pytest.mark.parametrize("garbage", [b"", b"\0" * 100, b"[1, 2, 3]", b'{"camera": 5, "pid": "x"}',
                                     b"[" * 50_000])
def test_garbage_in_the_holders_file_still_refuses_in_one_line(tmp_path: Path, garbage: bytes) -> None:
    folder = tmp_path / "claims"
    config = socket_config(tmp_path)
    holder = Claims(Camera.named("a"), "/etc/edgecam/a.yaml", folder)
    holder.hold(config)
    try:
        (path,) = held_files(folder)
        path.write_bytes(garbage)
        with pytest.raises(ClaimError) as caught:
            Claims(Camera.named("b"), "/etc/edgecam/b.yaml", folder).hold(config)
        assert "\n" not in str(caught.value)
        assert "is already used by" in str(caught.value)
    finally:
        holder.close()


def test_a_symlink_at_a_claims_name_is_set_aside_and_its_target_untouched(tmp_path: Path,
                                                                         caplog) -> None:
    folder = tmp_path / "claims"
    config = socket_config(tmp_path)
    path = left_behind(folder, config)
    path.unlink()
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    path.symlink_to(victim)
    claims = Claims(Camera.named("a"), "/etc/edgecam/a.yaml", folder)
    try:
        claims.hold(config)
    finally:
        claims.close()
    assert victim.read_text() == "root:secret\n"
    assert path.is_file() and not path.is_symlink()
    assert path.with_name(path.name + ".corrupt").is_symlink()
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: a claim file that is a symlink; set aside as {path}.corrupt"]


def test_a_fifo_at_a_claims_name_is_set_aside(tmp_path: Path) -> None:
    folder = tmp_path / "claims"
    config = socket_config(tmp_path)
    path = left_behind(folder, config)
    path.unlink()
    os.mkfifo(path)
    claims = Claims(Camera.named("a"), "/etc/edgecam/a.yaml", folder)
    try:
        claims.hold(config)  # O_NONBLOCK: no wait for a writer
    finally:
        claims.close()
    assert path.is_file()
