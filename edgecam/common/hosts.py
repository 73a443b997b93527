"""Which Host headers the daemon's HTTP servers (the status page, /metrics) answer.

DNS rebinding: a page at http://evil.example/ in a browser on the LAN (or on
the Pi, or at the end of an `ssh -L` tunnel) points evil.example at 127.0.0.1
or the Pi's address once loaded; its scripts then reach the daemon as the same
origin and read the preview. The request still says `Host: evil.example`, so a
server answers only Hosts that name it:

- localhost, 127.0.0.1, ::1, and the address it listens on;
- when it listens on every interface (0.0.0.0, ::): any IP address, since a
  browser that sends one is at that address, which no DNS answer can rebind
  (a Prometheus scraping http://192.168.1.20:9464/ just works);
- this machine's host name, and that name with .local (what Raspberry Pi OS
  announces over mDNS: http://raspberrypi.local:8080/);
- the names the config lists (web.allowed_hosts, outputs.metrics.allowed_hosts),
  for a name from the LAN's DNS, a reverse proxy or a tunnel.

The port is not compared (`ssh -L 9000:localhost:8080` sends `Host: localhost:9000`),
nor is case, nor a final dot. A request without a Host (HTTP/1.0) is served: every
browser sends one, so it cannot be a rebinding.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

_WILDCARDS = ("0.0.0.0", "::", "")


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def bare_host(header: str) -> str | None:
    """`name:port`, `[v6]:port` or `v4` → the name or address alone, lower case; None if malformed."""
    text = header.strip().lower()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        if rest and (rest[0] != ":" or not port.isdigit()):
            return None
    else:
        host, sep, port = text.partition(":")
        if sep and not port.isdigit():
            return None
    host = host.rstrip(".")
    return host or None


class HostCheck:
    """The Hosts a server listening on `listen_host` answers, with the `allowed` names too."""

    def __init__(self, listen_host: str, allowed: Iterable[str] = ()) -> None:
        listen = listen_host.strip("[]").lower()
        self._any_address = listen in _WILDCARDS
        name = socket.gethostname().lower()
        self._names = frozenset({"localhost", "127.0.0.1", "::1", name, f"{name}.local",
                                 *(host.lower().rstrip(".") for host in allowed)}
                                | ({listen} if not self._any_address else set()))

    def allows(self, header: str | None) -> bool:
        if header is None:
            return True
        host = bare_host(header)
        if host is None:
            return False
        return host in self._names or (self._any_address and _address(host))
