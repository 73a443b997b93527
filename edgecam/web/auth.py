"""The status page's token: a Bearer header or the session cookie its login page sets.

Without web.token_file the page is served on loopback only (the config refuses
anything else) and asks for nothing. With it, every path but /login needs
`Authorization: Bearer TOKEN` or the cookie. The cookie holds the time it was
issued and an HMAC of that time keyed by the token, not the token: the server
keeps no sessions, a new token logs every browser out, a stolen cookie does not
give the token away, and a session ends SESSION_S after its login (a cookie
from a laptop left somewhere does not work for ever). Comparisons are of
SHA-256 digests or HMACs with hmac.compare_digest: equal lengths, constant
time, so a wrong token's answer takes as long whatever it shares with the
right one. Guessing is slowed by web.limits.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections.abc import Callable, Mapping

COOKIE = "edgecam_session"
SESSION_S = 12 * 3600
#: a cookie issued this much in the future is still taken (the clock was set back a little)
_SKEW_S = 60
LOGIN_PATH = "/login"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class Auth:
    """The token check of one token; `clock` (wall time: cookies outlive a restart) for tests."""

    def __init__(self, token: str | None, clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self._clock = clock
        self._token_digest = _digest(token) if token else b""
        self._key = hmac.new(token.encode(), b"edgecam-session", hashlib.sha256).digest() if token else b""

    @property
    def required(self) -> bool:
        return self.token is not None

    @property
    def session(self) -> str:
        """A new session cookie's value: the time now, signed."""
        issued = int(self._clock())
        return f"{issued}.{self._sign(issued)}"

    def _sign(self, issued: int) -> str:
        return hmac.new(self._key, f"session {issued}".encode(), hashlib.sha256).hexdigest()

    def accepts_token(self, given: str) -> bool:
        return self.required and hmac.compare_digest(_digest(given), self._token_digest)

    def accepts_session(self, cookie: str) -> bool:
        """Whether `cookie` is one of this token's, issued less than SESSION_S ago."""
        issued_text, _, mac = cookie.partition(".")
        if not self.required or not issued_text.isdigit() or len(issued_text) > 12:
            return False
        issued = int(issued_text)
        if not issued - _SKEW_S <= self._clock() < issued + SESSION_S:
            return False
        return hmac.compare_digest(mac.encode(), self._sign(issued).encode())

    def allows(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """Whether a request with these headers and cookies may see the page."""
        if not self.required:
            return True
        given = bearer(headers)
        return (given is not None and self.accepts_token(given)) or self.accepts_session(
            cookies.get(COOKIE, ""))


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer` header; None without one."""
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def login_page(problem: str = "") -> str:
    """The minimal login page (no script, no style: the CSP allows only the page's own files,
    and this page may not fetch them before the token is given)."""
    said = f"<p><strong>{html.escape(problem)}</strong></p>\n" if problem else ""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>edgecam: log in</title></head><body>\n<h1>edgecam</h1>\n"
            f"{said}<form method=\"post\" action=\"{LOGIN_PATH}\">\n"
            "<p><label>Token (the first line of web.token_file)<br>\n"
            "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required "
            "autofocus></label></p>\n<p><button type=\"submit\">Log in</button></p>\n</form>\n"
            "</body></html>\n")
