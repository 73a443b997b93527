"""The malloc mmap threshold pin (the soak benchmark's RSS step; docs/RELIABILITY.md)."""

from __future__ import annotations

import platform

import pytest

from edgecam.daemon.memory import ENV, pin_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_the_threshold_is_pinned_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert pin_mmap_threshold()


def test_the_users_own_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "131072")
    assert not pin_mmap_threshold()
