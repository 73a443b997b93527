"""Every request's checks before the page answers: the Host, then the token, its guesses limited.

The Host check (common.hosts) comes first and covers every path, /login
included: a DNS-rebound page gets 421 Misdirected Request (the request was
meant for another site) whatever it asks. Then, with a token set, a valid
session cookie passes; a Bearer header or the login form's token is checked
only while web.limits allows that address another guess (else 429 with
Retry-After), and a wrong one is counted against it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edgecam.core.stats import Stats
from edgecam.web.auth import COOKIE, LOGIN_PATH, SESSION_S, Auth, bearer, login_page
from edgecam.web.limits import LoginLimiter
from edgecam.web.page import PageState


class Gate:
    def __init__(self, state: PageState, stats: Stats, limiter: LoginLimiter | None = None) -> None:
        self._state = state
        self._stats = stats
        self._limiter = limiter or LoginLimiter()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._state.hosts().allows(request.headers.get("Host")):
            self._stats.count("web_hosts_refused")
            return web.Response(status=421, text="this server does not serve that host name; "
                                "see web.allowed_hosts\n")
        auth = self._state.auth()
        given = bearer(request.headers)
        if (not auth.required or request.path == LOGIN_PATH
                or auth.accepts_session(request.cookies.get(COOKIE, ""))):
            refused = None
        elif given is not None:
            refused = self._check(request, auth, given)
        else:
            refused = login_response("", 401)
        if refused is not None:
            return refused
        response: web.StreamResponse = await handler(request)
        return response

    def _check(self, request: web.Request, auth: Auth, given: str) -> web.Response | None:
        """None if `given` is the token; else the answer: 429 while this address must wait,
        401 (counted against it) for a wrong token."""
        address = request.remote or ""
        wait = self._limiter.wait(address)
        if wait:
            self._stats.count("web_logins_limited")
            response = login_response(f"Too many wrong tokens: try again in {wait} s.", 429)
            response.headers["Retry-After"] = str(wait)
            return response
        if auth.accepts_token(given):
            return None
        self._limiter.failed(address)
        self._stats.count("web_logins_failed")
        return login_response("That is not the token.", 401)

    async def login(self, request: web.Request) -> web.Response:
        """POST /login: the form's token; a session cookie (SESSION_S long) if it is right."""
        auth = self._state.auth()
        form = await request.post()
        given = form.get("token")
        if not auth.required:
            raise web.HTTPSeeOther("/")
        refused = self._check(request, auth, given.strip() if isinstance(given, str) else "")
        if refused is not None:
            return refused
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(COOKIE, auth.session, max_age=SESSION_S, httponly=True,
                            samesite="Strict", path="/")
        return response


def login_response(problem: str, status: int) -> web.Response:
    return web.Response(status=status, text=login_page(problem), content_type="text/html")
