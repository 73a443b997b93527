"""Clock synchronisation, as the kernel knows it: a Pi has no real-time clock.

A Pi boots with the time it saved at the last shutdown (fake-hwclock, or
systemd-timesyncd's clock file) until NTP corrects it, so results stamped
before that carry a wrong `ts`. This asks the kernel with adjtimex(2) (modes
0: read only, no privilege needed), which is what every NTP client
disciplines (systemd-timesyncd, chrony, ntpd) and what systemd's own
NTPSynchronized reads: the clock counts as synchronised while the kernel's
maximum error estimate is below 16 s, the value it saturates at when nobody
corrects it. Unlike `timedatectl`, it needs neither systemd-timedated nor
D-Bus, so it also answers in containers and on systems using chrony or ntpd.
"""

from __future__ import annotations

import ctypes

from edgecam.doctor.check import Check, failed, passed

#: the kernel's NTP_PHASE_LIMIT in microseconds: maxerror is capped here while unsynchronised
UNSYNCHRONISED_US = 16_000_000
_FIX = "turn NTP on (sudo timedatectl set-ntp true) and check the network (timedatectl timesync-status)"


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex (sys/timex.h): longs and ints, then eleven reserved ints."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11),
    ]


def max_error_us() -> int | None:
    """The kernel's maximum clock error estimate in µs, None if adjtimex cannot be called."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols, libc's among them
        timex = _Timex()
        if libc.adjtimex(ctypes.byref(timex)) < 0:
            return None
    except (OSError, AttributeError):
        return None
    return int(timex.maxerror)


def check_clock() -> Check:
    error_us = max_error_us()
    if error_us is None:
        return failed("clock", "the kernel's clock state cannot be read (adjtimex)", _FIX)
    if error_us >= UNSYNCHRONISED_US:
        return failed("clock", "not synchronised: results' timestamps (ts) may be wrong, a Pi has no "
                               "real-time clock", _FIX)
    return passed("clock", f"synchronised (maximum error {error_us / 1000:.0f} ms)")
