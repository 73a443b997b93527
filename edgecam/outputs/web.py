"""The status page as an output: started, reconfigured and stopped like the others.

It sees each emitted result (the last of each zone is what the page and the
preview's zone labels show) and reads the stats when a page asks for them.
The server itself (edgecam.web.server, aiohttp) is imported only when the
page is on, so the `web` extra is needed only then. A reload that keeps
`web.listen` keeps the server (and its viewers) and swaps its settings; one
that moves it binds the new address while the old one still serves, so an
address that cannot be bound refuses the reload and the old page goes on.
"""

from __future__ import annotations

from typing import Any

from edgecam.config import Config, split_listen
from edgecam.core.latest import LatestFrame
from edgecam.core.results import Result
from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError
from edgecam.outputs.base import Output
from edgecam.web.page import PageSettings, PageState


def _server_module() -> Any:
    try:
        from edgecam.web import server
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith(("aiohttp", "multidict", "yarl")):
            raise
        raise EdgecamError("web needs aiohttp: sudo apt install python3-aiohttp (with a virtualenv "
                           "made with --system-site-packages), or pip install 'edgecam[web]'") from None
    return server


class WebOutput(Output):
    name = "web"

    def __init__(self, config: Config, stats: Stats, latest: LatestFrame) -> None:
        server = _server_module()
        self.listen = config.web.listen
        self._state = PageState(PageSettings.from_config(config), stats)
        self._server = server.WebServer(self._state, latest, stats)

    def start(self) -> None:
        host, port = split_listen(self.listen)
        self._server.start(host, port, self.listen)

    def reusable(self, config: Config) -> bool:
        if config.web.listen != self.listen:
            return False
        try:
            PageSettings.from_config(config)  # a token file that cannot be read: a new one says so
        except EdgecamError:
            return False
        return True

    def reconfigure(self, config: Config) -> None:
        self._state.settings = PageSettings.from_config(config)

    def set_zones(self, zones: tuple[str, ...]) -> None:
        self._state.set_zones(zones)

    def emit(self, result: Result) -> None:
        self._state.emit(result)

    def close(self) -> None:
        self._server.close()
