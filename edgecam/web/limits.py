"""Slows down guessing the page's token: failed token checks, per client address and in all.

Each address may fail PER_CLIENT.burst times, then once every PER_CLIENT.every_s
seconds; all addresses together ALL.burst times, then once every ALL.every_s
(many addresses, a botnet or IPv6 privacy addresses, still guess slowly). Once
a bucket is empty, every token check from there (the login form or a Bearer
header) is answered 429 with Retry-After before the token is even looked at,
the right one included: otherwise guessing would go on. A browser already
logged in is not affected (its cookie is checked, not the token). At most
MAX_CLIENTS addresses are remembered: the oldest are forgotten first, and only
the global bucket then stands between a fresh address and the token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    burst: int
    every_s: float


PER_CLIENT = Rate(10, 10.0)
ALL = Rate(30, 2.0)
MAX_CLIENTS = 1024


class _Bucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.at = now

    def level(self, now: float) -> float:
        return min(self.rate.burst, self.tokens + (now - self.at) / self.rate.every_s)

    def wait(self, now: float) -> float:
        """Seconds until a failure may be made again (0: now)."""
        return max(0.0, (1.0 - self.level(now)) * self.rate.every_s)

    def take(self, now: float) -> None:
        self.tokens, self.at = self.level(now) - 1.0, now


class LoginLimiter:
    """`wait(address)` before a token check, `failed(address)` after a wrong token."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._all = _Bucket(ALL, clock())
        self._clients: dict[str, _Bucket] = {}

    def wait(self, address: str) -> int:
        """Whole seconds this address must wait before its next token check (0: none)."""
        now = self._clock()
        bucket = self._clients.get(address)
        waits = [self._all.wait(now), bucket.wait(now) if bucket else 0.0]
        return math.ceil(max(waits))

    def failed(self, address: str) -> None:
        now = self._clock()
        self._all.take(now)
        bucket = self._clients.pop(address, None) or _Bucket(PER_CLIENT, now)
        bucket.take(now)
        self._clients[address] = bucket  # the most recent failure last
        if len(self._clients) > MAX_CLIENTS:
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Drops the addresses whose bucket is full again (as good as new), then the oldest."""
        for address, bucket in list(self._clients.items()):
            if bucket.level(now) >= bucket.rate.burst:
                del self._clients[address]
        while len(self._clients) > MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]
