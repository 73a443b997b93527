"""The status page's token: a Bearer header or the session cookie its login page sets.

Without web.token_file the page is served on loopback only (the config refuses
anything else) and asks for nothing. With it, every path but /login needs
`Authorization: Bearer TOKEN` or the cookie. The cookie holds an HMAC of the
token, not the token: the server keeps no sessions, a new token logs every
browser out, and a stolen cookie does not give the token away. Comparisons
are of SHA-256 digests with hmac.compare_digest: equal lengths, constant time,
so a wrong token's answer takes as long whatever it shares with the right one.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from collections.abc import Mapping

COOKIE = "edgecam_session"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
LOGIN_PATH = "/login"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class Auth:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self._token_digest = _digest(token) if token else b""
        #: what the cookie holds once logged in
        self.session = (hmac.new(token.encode(), b"edgecam-session", hashlib.sha256).hexdigest()
                        if token else "")
        self._session_digest = _digest(self.session)

    @property
    def required(self) -> bool:
        return self.token is not None

    def accepts_token(self, given: str) -> bool:
        return self.required and hmac.compare_digest(_digest(given), self._token_digest)

    def allows(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """Whether a request with these headers and cookies may see the page."""
        if not self.required:
            return True
        scheme, _, given = headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.accepts_token(given.strip()):
            return True
        cookie = cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(_digest(cookie), self._session_digest)


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
