"""A bounded queue that never blocks its producer: when full, the oldest item goes.

The pipeline must never wait on an output: the dispatcher's and MQTT's
queues, and a socket client's lines, keep the newest items and count what
they drop (the caller's `on_drop`), so a slow consumer loses old results
instead of stalling inference.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    def __init__(self, maxlen: int, on_drop: Callable[[T], None] = lambda item: None,
                 cond: threading.Condition | None = None) -> None:
        """`cond`: the owner's condition (with an RLock), when the owner waits on more than this queue."""
        self._items: deque[T] = deque()
        self.maxlen = maxlen
        self._on_drop = on_drop
        self._cond = cond or threading.Condition()

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) >= self.maxlen:
                self._on_drop(self._items.popleft())
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> T | None:
        """The oldest item, waiting up to `timeout` seconds; None if none came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def pop(self) -> T | None:
        """The oldest item at once, or None."""
        with self._cond:
            return self._items.popleft() if self._items else None

    def unget(self, item: T) -> None:
        """Puts an item taken but not delivered back at the front (it is still the oldest)."""
        with self._cond:
            self._items.appendleft(item)
            while len(self._items) > self.maxlen:
                self._on_drop(self._items.pop())

    def drain(self) -> list[T]:
        """Takes every item at once."""
        with self._cond:
            items, self._items = list(self._items), deque()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
