"""The parts that keep hostile neighbours out, each alone: sessions that expire, the login
limiter, the Host check, the descriptor budget, accept() out of descriptors (issue 24).

Clocks are injected: no test waits for a session to expire or a bucket to refill.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecam.common import fds
from edgecam.common.hosts import HostCheck, bare_host
from edgecam.config import parse_config
from edgecam.core.stats import Stats
from edgecam.errors import ConfigError
from edgecam.outputs.socket_file import PAUSE_S, SocketFile
from edgecam.web.auth import COOKIE, SESSION_S, Auth
from edgecam.web.limits import ALL, MAX_CLIENTS, PER_CLIENT, LoginLimiter


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- sessions -----------------------------------------------------------------------------------

def test_a_session_cookie_expires_after_session_s_and_cannot_be_stretched() -> None:
    clock = Clock()
    auth = Auth("s3cret", clock)
    cookie = auth.session
    assert auth.allows({}, {COOKIE: cookie})
    clock.now += SESSION_S - 1
    assert auth.allows({}, {COOKIE: cookie})
    clock.now += 1
    assert not auth.allows({}, {COOKIE: cookie}), "expired"
    issued, _, mac = cookie.partition(".")
    later = f"{int(issued) + SESSION_S}.{mac}"
    assert not auth.allows({}, {COOKIE: later}), "the time is signed: it cannot be moved"
    assert auth.allows({"Authorization": "Bearer s3cret"}, {}), "the token itself does not expire"


def test_a_session_from_the_future_or_malformed_is_refused() -> None:
    clock = Clock()
    auth = Auth("s3cret", clock)
    clock.now += 3600
    future = auth.session
    clock.now -= 3600
    assert not auth.allows({}, {COOKIE: future})
    for cookie in ("", ".", "1.", ".ab", "abc.def", "9" * 20 + ".00", "1800000000.é", future + "x"):
        assert not auth.accepts_session(cookie), cookie
    assert not Auth("other", clock).accepts_session(auth.session), "a new token logs every browser out"


# -- the login limiter --------------------------------------------------------------------------

def test_each_address_has_a_burst_of_failures_then_one_per_interval() -> None:
    clock = Clock(0.0)
    limiter = LoginLimiter(clock)
    for _ in range(PER_CLIENT.burst):
        assert limiter.wait("192.0.2.1") == 0
        limiter.failed("192.0.2.1")
    assert limiter.wait("192.0.2.1") == PER_CLIENT.every_s
    assert limiter.wait("192.0.2.2") == 0, "another address is not slowed by this one"
    clock.now += PER_CLIENT.every_s
    assert limiter.wait("192.0.2.1") == 0
    limiter.failed("192.0.2.1")
    assert limiter.wait("192.0.2.1") == PER_CLIENT.every_s


def test_many_addresses_together_are_limited_too_and_the_table_is_bounded() -> None:
    clock = Clock(0.0)
    limiter = LoginLimiter(clock)
    for n in range(ALL.burst):
        address = f"2001:db8::{n:x}"
        assert limiter.wait(address) == 0
        limiter.failed(address)
    assert limiter.wait("2001:db8::ffff") == ALL.every_s, "a fresh address waits for the global bucket"
    clock.now += 10 * ALL.every_s * MAX_CLIENTS  # every bucket full again
    for n in range(MAX_CLIENTS + 10):
        limiter.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
        clock.now += ALL.every_s
    assert len(limiter._clients) <= MAX_CLIENTS


# -- the Host check -----------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "bare"), [
    ("Example.COM:8080", "example.com"), ("cam.lan.", "cam.lan"), ("[::1]:80", "::1"), ("[::1]", "::1"),
    ("10.0.0.1", "10.0.0.1"), ("host:", None), ("host:x", None), ("[::1]x", None), ("[::1", "::1"),
    ("", None), (":80", None)])
def test_the_host_header_is_taken_apart(header: str, bare: str | None) -> None:
    assert bare_host(header) == bare


def test_a_loopback_listener_answers_itself_and_the_names_listed_only() -> None:
    check = HostCheck("127.0.0.1", ("cam.lan",))
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9", "cam.lan", "CAM.LAN.:1",
                 socket.gethostname(), f"{socket.gethostname()}.local:8080", None):
        assert check.allows(host), host
    for host in ("evil.example", "192.168.1.2", "localhost.evil.example", "", "cam.lan:x"):
        assert not check.allows(host), host


def test_every_interface_answers_any_ip_address_but_only_known_names() -> None:
    check = HostCheck("0.0.0.0")
    for host in ("192.168.1.20:9464", "[fe80::1]:8080", "10.1.2.3", "localhost"):
        assert check.allows(host), host
    assert not check.allows("evil.example:9464")
    assert HostCheck("::").allows("[2001:db8::1]")
    assert HostCheck("192.168.1.20").allows("192.168.1.20:8080")
    assert not HostCheck("192.168.1.20").allows("192.168.1.21")


def test_allowed_hosts_must_be_names_without_ports() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("web:\n  allowed_hosts: [cam.lan, 'cam.lan:8080', 'http://x']\n"
                     "outputs:\n  metrics:\n    allowed_hosts: ['a b']\n", "edgecam.yaml")
    text = str(raised.value)
    assert text.count("allowed_hosts") >= 3 and "without a port" in text, text
    config = parse_config("web:\n  allowed_hosts: [cam.lan, 192.168.1.20]\n", "edgecam.yaml")
    assert config.web.allowed_hosts == ("cam.lan", "192.168.1.20")


# -- the descriptor budget ----------------------------------------------------------------------

@pytest.fixture
def nofile() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_the_caps_fit_in_systemds_default_limit() -> None:
    assert fds.NEEDED < 1024 == fds.SELECT_LIMIT


def test_a_lower_soft_limit_is_raised_to_what_the_caps_need_not_past_1024(nofile) -> None:
    _, hard = nofile
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip("the hard limit is below 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    assert fds.fit_limit() == 1024
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 1024


def test_a_hard_limit_too_low_is_one_warning() -> None:
    """In a child: a hard limit once lowered cannot be raised again."""
    code = ("import logging, resource; logging.basicConfig();"
            "from edgecam.common.fds import fit_limit; print(fit_limit())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200)))
    assert done.returncode == 0 and done.stdout.strip() == "200", done
    assert done.stderr.count("\n") == 1 and "LimitNOFILE=1024" in done.stderr, done.stderr


# -- accept() out of descriptors ----------------------------------------------------------------

class _Exhausted:
    """A listener whose accept() fails as a process out of descriptors does."""

    def __init__(self, error: int = errno.EMFILE) -> None:
        self.calls = 0
        self.error = error

    def accept(self) -> tuple[socket.socket, str]:
        self.calls += 1
        raise OSError(self.error, "Too many open files")


def test_the_socket_pauses_accepting_and_says_so_once_per_streak(tmp_path: Path, caplog) -> None:
    stats = Stats()
    socket_file = SocketFile(str(tmp_path / "s.sock"), "0660", stats)
    listener = _Exhausted()
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            assert socket_file.accept(listener, 10) == []  # type: ignore[arg-type]
    assert listener.calls == 1000, "one try per call: the caller waits out the pause"
    assert socket_file.paused_until > 0 and PAUSE_S >= 0.1
    assert len(caplog.records) == 1 and "cannot accept" in caplog.text
    assert stats.values()[0]["accept_failures"] == 1000


def test_the_socket_beyond_its_room_accepts_and_closes_at_once_counted(tmp_path: Path) -> None:
    stats = Stats()
    socket_file = SocketFile(str(tmp_path / "s.sock"), "0660", stats)
    listener = socket_file.bind()
    clients = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(5)]
    accepted: list[socket.socket] = []
    try:
        for client in clients:
            client.connect(socket_file.path)
        accepted = socket_file.accept(listener, 2)
        assert len(accepted) == 2
        assert stats.values()[0]["socket_clients_refused"] == 3
        for client in clients:
            client.settimeout(10)  # bounds a hang
        assert [client.recv(1) for client in clients[2:]] == [b""] * 3, "closed at once"
        for client in clients[:2]:
            client.setblocking(False)
            with pytest.raises(BlockingIOError):
                client.recv(1)  # open: nothing to read yet
    finally:
        for sock in (*clients, *accepted, listener):
            sock.close()


def test_the_pages_loop_says_once_per_streak_that_accept_fails(caplog) -> None:
    from edgecam.web.guard import Connections

    stats = Stats()
    connections = Connections(lambda: asyncio.Protocol(), stats, 4, 10.0)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(100):
                connections.loop_exception(loop, {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files")})
    finally:
        loop.close()
    assert len(caplog.records) == 1 and "Too many open files" in caplog.text
    assert "Traceback" not in caplog.text
    assert stats.values()[0]["accept_failures"] == 100
