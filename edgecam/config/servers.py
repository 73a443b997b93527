"""The schema of the daemon's two HTTP servers: the status page (web) and Prometheus' /metrics.

Both answer only the Host names that name them (edgecam.common.hosts: DNS
rebinding is refused); `allowed_hosts` adds the names a user reaches them by
that the daemon cannot know (a name in the LAN's DNS, a reverse proxy's).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecam.config.fields import is_loopback, parse_host, parse_listen, setting, split_listen
from edgecam.config.files import secret_file

_HOSTS_DOC = ("besides localhost, the listen address, this machine's name (and name.local) and, "
              "listening on every interface, any IP address; others get 421 (DNS rebinding)")


def host_problems(hosts: tuple[str, ...]) -> list[tuple[str, str]]:
    """allowed_hosts' items that are not a host name or address (no port, no URL)."""
    found = []
    for host in hosts:
        try:
            parse_host(host)
        except ValueError as exc:
            found.append(("allowed_hosts", f"{exc} (a name or address alone, without a port)"))
    return found


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = setting(False, "serve Prometheus metrics over HTTP at /metrics")
    listen: str = setting("127.0.0.1:9464", "HOST:PORT to serve on (:9464 = every interface)",
                          parse=parse_listen)
    allowed_hosts: tuple[str, ...] = setting((), f"host names /metrics answers to {_HOSTS_DOC}")

    def problems(self) -> list[tuple[str, str]]:
        return host_problems(self.allowed_hosts)


@dataclass(frozen=True)
class WebConfig:
    """The status page (edgecam.web): the live preview, the labels, the figures; read-only."""

    enabled: bool = setting(False, "serve the status page over HTTP (needs the `web` extra)")
    listen: str = setting("127.0.0.1:8080", "HOST:PORT to serve on (:8080 = every interface, which "
                          "needs token_file)", parse=parse_listen)
    token_file: str = setting("", "file whose first line is the token the page asks for; required "
                              "when listen is not a loopback address", path=bool, check=secret_file)
    preview_fps: float = setting(5.0, "most frames per second the preview is encoded at",
                                 min=0.2, max=30)
    preview_width: int = setting(640, "the preview's width in pixels (its height follows)",
                                 min=64, max=4096)
    allowed_hosts: tuple[str, ...] = setting((), f"host names the page answers to {_HOSTS_DOC}")

    def problems(self) -> list[tuple[str, str]]:
        found = host_problems(self.allowed_hosts)
        if not self.token_file and not is_loopback(split_listen(self.listen)[0]):
            found.append(("listen", f"{self.listen} is reachable from other machines: set token_file, "
                          "or listen on 127.0.0.1"))
        return found
