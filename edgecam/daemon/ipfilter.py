"""The service's IP address filter, derived from the config.

The unit allows localhost only (`IPAddressDeny=any`, `IPAddressAllow=localhost`):
the default config (the Pi camera, the journal, the socket) reaches nothing
beyond this machine. A config that does (a network camera, an MQTT broker on
another machine, metrics scraped from one, the status page read from a phone)
needs more, and a unit file cannot read the YAML, so `make install` writes the
drop-in `edgecam ip-filter` prints from the config, again on every install.

Only an address written in the config can be allowed alone. A host name's
addresses are known only when it is resolved (DHCP leases, mDNS and the DNS
servers of the moment all change), and a listener (metrics on a non-loopback
address, a stream the camera pushes) hears from addresses the config does not
name: either opens the filter to any address. So does the fleet (fleet.enabled):
a rollout downloads from the URLs its manifest names, which no config knows.

The filter drops packets without a word (a TCP connect just times out), so the
unit also tells the daemon what it allows (EDGECAM_IP_ALLOW), and the daemon says
in one line when an edited config reaches further than that.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from edgecam.config import SINGLE, Camera, Config, is_loopback, split_listen

ENV = "EDGECAM_IP_ALLOW"
ANY = "any"
LOCALHOST = "localhost"
_LISTENER = "a listener: its peers are not in the config"


@dataclass(frozen=True)
class Reach:
    """A place the config reaches beyond localhost."""

    key: str
    value: str
    address: str | None  # the one address to allow; None: any address
    why: str = ""  # why any address, when it must be

    def describe(self) -> str:
        return f"{self.key} {self.value}" + (f" ({self.why})" if self.why else "")


def _peer(key: str, host: str) -> Reach | None:
    """What connecting to (or hearing from) `host` needs; None if it is this machine."""
    if is_loopback(host):
        return None
    try:
        # The filter matches addresses, not interfaces: a link-local address's %zone goes.
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return Reach(key, host, None, "a name: its addresses are known only once it is resolved")
    if address.is_unspecified or address.is_multicast:
        return Reach(key, host, None, _LISTENER)
    return Reach(key, host, str(address))


def _source_host(source: str) -> str | None:
    """The host a stream URL names (never its user or password); None if it is no stream."""
    if "://" not in source:
        return None
    try:
        url = urlsplit(source)
        host = url.hostname
    except ValueError:  # a malformed IPv6 URL: it will not open either
        return None
    return None if url.scheme.lower() == "file" else host or ""


def reaches(config: Config) -> list[Reach]:
    """Every place `config` reaches beyond localhost, in config order."""
    found: list[Reach | None] = []
    host = _source_host(config.camera.source)
    if host == "":  # udp://@:1234, rtsp://:554/...: the stream is pushed here from anywhere
        found.append(Reach("camera.source", config.camera.source, None, _LISTENER))
    elif host is not None:
        found.append(_peer("camera.source", host))
    mqtt, metrics, web = config.outputs.mqtt, config.outputs.metrics, config.web
    if mqtt.enabled:
        found.append(_peer("outputs.mqtt.host", mqtt.host))
    if metrics.enabled and not is_loopback(split_listen(metrics.listen)[0]):
        found.append(Reach("outputs.metrics.listen", metrics.listen, None,
                           "scraped from addresses the config does not name"))
    if web.enabled and not is_loopback(split_listen(web.listen)[0]):
        found.append(Reach("web.listen", web.listen, None,
                           "the status page, read from addresses the config does not name"))
    if config.fleet.enabled:
        found.append(Reach("fleet.model_topic", config.fleet.model_topic, None,
                           "rollouts download from the URLs its manifest names"))
    return [reach for reach in found if reach is not None]


def allowed(found: list[Reach]) -> list[str]:
    """The IPAddressAllow= entries beyond localhost: none, `any`, or the addresses."""
    if any(reach.address is None for reach in found):
        return [ANY]
    return sorted({reach.address for reach in found if reach.address is not None})


def dropin(config: Config, source: str, camera: Camera = SINGLE) -> str:
    """The drop-in that lets the service reach what `config` (read from `source`) names."""
    found = reaches(config)
    entries = allowed(found)
    install = camera.install_command
    lines = [f"# Written by `{install}` (edgecam ip-filter) from {source}: after editing",
             f"# the config, run `{install}` again rather than editing this file.",
             "[Service]"]
    if not entries:
        lines.append("# The config reaches nothing beyond localhost: the unit's filter stands.")
        return "\n".join([*lines, ""])
    allow = [ANY] if entries == [ANY] else [LOCALHOST, *entries]
    lines += ["# What the config reaches beyond localhost:",
              *(f"#   {reach.describe()}" for reach in found),
              f"IPAddressAllow={' '.join(entries)}",
              "# The same for the daemon, which says so when an edited config reaches further.",
              f'Environment="{ENV}={" ".join(allow)}"']
    return "\n".join([*lines, ""])


def blocked(config: Config, allow: str) -> list[Reach]:
    """What `config` reaches that a filter allowing `allow` (EDGECAM_IP_ALLOW's words) blocks."""
    words = set(allow.split())
    if ANY in words:
        return []
    return [reach for reach in reaches(config) if reach.address not in words]


def check(config: Config, camera: Camera = SINGLE) -> str | None:
    """One line saying what the service's filter blocks; None if nothing, or not under the unit."""
    allow = os.environ.get(ENV)
    if allow is None:
        return None
    found = blocked(config, allow)
    if not found:
        return None
    return (f"the service's IP filter (IPAddressAllow={allow}) blocks "
            f"{'; '.join(reach.describe() for reach in found)}: run `{camera.install_command}` again, "
            "which derives the filter from the config")
