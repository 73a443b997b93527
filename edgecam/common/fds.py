"""The daemon's file-descriptor budget: how many connections each server may hold, and the limit.

Every accepted connection costs a descriptor, and once the process has none
left (EMFILE) nothing works: not the page, not the socket, not a snapshot, not
a reconnecting camera. So each server caps its connections, and the caps add
up to well under the soft RLIMIT_NOFILE, leaving RESERVE for everything else
(the models, the camera, snapshots, MQTT, the threads' pipes; a running daemon
uses about 40). The page's cap counts twice: a connection may be sending a
snapshot file as well.

The limit is not raised past 1024, systemd's default soft limit and the units'
LimitNOFILE=: paho-mqtt waits with select(), which cannot watch a descriptor
above 1023, so a higher limit would trade one failure for another. It is only
raised to that (up to the hard limit) when a shell or a container set it lower.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

PAGE_CONNECTIONS = 128
SOCKET_CLIENTS = 64
METRICS_CONNECTIONS = 16
RESERVE = 512
NEEDED = 2 * PAGE_CONNECTIONS + SOCKET_CLIENTS + METRICS_CONNECTIONS + RESERVE
SELECT_LIMIT = 1024  # FD_SETSIZE


def fit_limit() -> int:
    """Raises the soft NOFILE limit to what the caps need if it is lower (not past SELECT_LIMIT
    nor the hard limit); warns, in one line, if it stays lower. Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= NEEDED:
        return soft
    target = SELECT_LIMIT if hard == resource.RLIM_INFINITY else min(hard, SELECT_LIMIT)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("descriptor limit raised from %d to %d", soft, target)
        soft = target
    if soft < NEEDED:
        log.warning("the descriptor limit is %d, below the %d the connection caps assume: a flood "
                    "of connections may exhaust it (set LimitNOFILE=1024)", soft, NEEDED)
    return soft
