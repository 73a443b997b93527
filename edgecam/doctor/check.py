"""One doctor check's verdict, and which checks are advisory.

A check either passes (✓, with what it found) or fails (✗, with what is wrong
and one line saying how to fix it). The required checks decide whether
edgecam can run at all; an advisory one that fails is shown with its fix but
leaves `edgecam doctor`'s exit status at 0, because the daemon runs without it
(it logs to stderr without a journal, a user outside the groups only misses
`edgecam tail`, a warm or badly powered Pi is slow, not broken).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the checks edgecam runs without; every other check is needed to run
ADVISORY = frozenset({"journal", "socket group", "groups", "memory", "disk", "temperature",
                      "throttling", "clock"})


@dataclass(frozen=True)
class Check:
    """`check` names it; `fix` is None when it passed."""

    check: str
    ok: bool
    detail: str
    fix: str | None = None

    @property
    def required(self) -> bool:
        return self.check not in ADVISORY

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def passed(check: str, detail: str) -> Check:
    return Check(check, True, detail)


def failed(check: str, detail: str, fix: str) -> Check:
    return Check(check, False, detail, fix)
