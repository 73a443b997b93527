"""The schema's building blocks: `setting()` fields and the value parsers they use.

A parser turns a raw YAML value into the setting's value or raises ValueError
with the problem; the loader (config.loader) adds the file, line and key path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/edgecam/edgecam.yaml")
#: where the daemon keeps its state (models, heads, snapshots, the fleet's files): every default
#: path below /var/lib/edgecam derives from this one
STATE_DIR = Path("/var/lib/edgecam")
#: the units' RuntimeDirectory=, which every instance shares (sockets, claims)
RUNTIME_DIR = Path("/run/edgecam")
#: the longest string a config value may be: PATH_MAX, ample for a URL too
MAX_STRING = 4096


def setting(
    default: Any,
    doc: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[Any], Any] | None = None,
    path: bool | Callable[[str], bool] = False,
    check: Callable[[Any], None] | None = None,
    labels: bool = False,
) -> Any:
    """A schema field: default, description, and the checks the loader applies.

    `parse` converts or rejects a raw YAML value (raising ValueError with the
    problem); `path` marks a file path resolved against the config file's folder
    (a predicate: only values for which it is true are paths); `check` vets the
    final value, a path once resolved (raising ValueError: a file that must exist).
    `labels` marks a list of labels, or a mapping keyed by label, whose labels must be
    the model's (checked against its labels file once the whole config is read). A list
    field is a `tuple[str, ...]`, a mapping a `dict[str, float]` (min/max bound its values),
    a fixed list of numbers a `tuple[float, float, ...]` (min/max bound each), a list of
    sections a `tuple[Section, ...]`. None in a zone's field means "as the top level's".
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "parse": parse, "path": path,
            "check": check, "labels": labels}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """A nested section whose defaults are its own fields' defaults."""
    return field(default_factory=cls)


def parse_mode(value: Any) -> str:
    """A file mode as four octal digits; YAML 1.1 reads an unquoted 0660 as the int 432."""
    if isinstance(value, bool):
        raise ValueError("expected an octal file mode such as \"0660\"")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value, 8)
        except ValueError:
            raise ValueError(f"{value!r} is not an octal file mode such as \"0660\"") from None
    else:
        raise ValueError("expected an octal file mode such as \"0660\"")
    if not 0 <= number <= 0o777:
        raise ValueError(f"{value!r} is not a file mode (0000..0777)")
    return f"{number:04o}"


_PICAMERA = re.compile(r"picamera2(?::(\d+))?")


def picamera_number(source: str) -> int | None:
    """The Pi camera `picamera2:N` selects (`picamera2` alone: camera 0), or None if another source."""
    match = _PICAMERA.fullmatch(source)
    if match is None:
        return None
    return int(match.group(1) or 0)


def picamera_source(number: int) -> str:
    """The camera.source naming Pi camera `number`, as a user writes it (camera 0: `picamera2`)."""
    return "picamera2" if number == 0 else f"picamera2:{number}"


def source_is_path(source: str) -> bool:
    """Whether a camera source names a file or folder (not picamera2, an index or a URL)."""
    return picamera_number(source) is None and not source.isdigit() and "://" not in source


def parse_source(value: Any) -> str:
    """A camera source; an unquoted device index such as 0 arrives as an int."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a source such as picamera2, /dev/video0, 0, rtsp://… or a file")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if text.startswith("picamera2:") and picamera_number(text) is None:
        raise ValueError(f"{text!r}: a Pi camera is picamera2 (camera 0) or picamera2:N, N its number "
                         "(0 or 1 on a Raspberry Pi 5)")
    return text


MAX_THREADS = 64


def parse_threads(value: Any) -> int | str:
    """`auto` (measured at start, models.threads) or a count; 0 = one per CPU core."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected auto or a whole number, got {value!r}")
    if not 0 <= value <= MAX_THREADS:
        raise ValueError(f"{value!r} is out of range (auto, or 0..{MAX_THREADS})")
    return value


def parse_head_path(value: Any) -> str:
    """A head file path; null (no head) never reaches here."""
    if not isinstance(value, str):
        raise ValueError(f"expected the path of a head file, got {value!r}")
    if not value.strip():
        raise ValueError("must not be empty (leave the key out, or null, for no head)")
    return value


def parse_folder(value: Any) -> str:
    """A folder the daemon writes in: an empty one would silently be the config file's own folder."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected the path of a folder, got {value!r}")
    return value.strip()


_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_HOST_V6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def _host(text: str) -> str:
    """A host name, an IPv4 address or an IPv6 address (brackets allowed); ValueError if not."""
    if "://" in text:
        raise ValueError(f"{text!r} is a URL; give the host name or address alone")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if _HOST_V6.fullmatch(bare) or (bare == text and _HOST_NAME.fullmatch(text)):
        return bare
    raise ValueError(f"{text!r} is not a host name or address")


def parse_host(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a host name or address such as mqtt.local or 192.168.1.10")
    return _host(value.strip())


def split_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:9464` for IPv6, `:9464` for every interface) as (host, port)."""
    if "://" in text:
        raise ValueError(f"{text!r} is a URL; give HOST:PORT alone")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or (host and ":" in host and not host.startswith("[")):
        raise ValueError(f"{text!r} is not HOST:PORT (for IPv6: [ADDRESS]:PORT)")
    number = int(port)
    if not 1 <= number <= 65535:
        raise ValueError(f"port {number} is out of range (1..65535)")
    return (_host(host) if host else "0.0.0.0"), number


def is_loopback(host: str) -> bool:
    """Whether `host` (as split_listen gives it) is this machine only: localhost or 127.0.0.0/8, ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT such as \"127.0.0.1:9464\"")
    host, port = split_listen(value.strip())
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_topic(value: Any, *, empty_ok: bool) -> str:
    """An MQTT topic prefix: levels without wildcards; a trailing slash is dropped."""
    if not isinstance(value, str):
        raise ValueError("expected a topic such as edgecam/kitchen")
    text = value.strip().removesuffix("/")
    if not text:
        if empty_ok:
            return ""
        raise ValueError("must not be empty")
    if any(char in text for char in "+#\0") or text.startswith("$"):
        raise ValueError(f"{text!r} may not contain + or # and may not start with $")
    if "" in text.split("/"):
        raise ValueError(f"{text!r} has an empty level (a leading or double /)")
    return text


def parse_topic_prefix(value: Any) -> str:
    return _parse_topic(value, empty_ok=True)


def parse_discovery_prefix(value: Any) -> str:
    return _parse_topic(value, empty_ok=False)


def parse_client_id(value: Any) -> str:
    if not isinstance(value, str) or (value and not value.isprintable()) or " " in value:
        raise ValueError("expected a client id without blanks")
    return value


_ZONE_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def parse_zone_name(value: Any) -> str:
    """A zone's name: it becomes an MQTT topic level, a journal field and a file name."""
    if not isinstance(value, str) or not _ZONE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a zone name: 1 to 32 of a-z, 0-9, _ and -")
    return value


def check_crop(crop: tuple[float, ...]) -> None:
    """x, y, width, height as fractions of the frame: a non-empty rectangle inside it."""
    x, y, width, height = crop
    if min(crop) < 0 or max(crop) > 1:
        raise ValueError(f"{list(crop)}: every value is a fraction of the frame (0..1)")
    if width <= 0 or height <= 0:
        raise ValueError(f"{list(crop)}: an empty crop (width and height must be more than 0)")
    if x + width > 1 + 1e-9 or y + height > 1 + 1e-9:
        raise ValueError(f"{list(crop)}: reaches outside the frame (x + width and y + height "
                         "must be at most 1)")
