"""The configuration: a strict schema, loaded from YAML with line numbers.

The frozen dataclasses below *are* the schema: each field carries its default,
bounds or choices and a description. Loading walks the YAML node tree (not the
plain parsed dict) so that every problem can be reported as
`FILE:LINE: key.path: problem`, and all problems are collected before failing:
a Pi user editing /etc/edgecam/edgecam.yaml over SSH should see every mistake
in one go, and a typo in a key must never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import stat
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgecam.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/edgecam/edgecam.yaml")


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
) -> Any:
    """A schema field: default, description, and the checks the loader applies.

    `parse` converts or rejects a raw YAML value (raising ValueError with the
    problem); `path` marks a file path resolved against the config file's folder
    (a predicate: only values for which it is true are paths); `check` vets the
    final value, a path once resolved (raising ValueError: a file that must exist).
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "parse": parse, "path": path,
            "check": check}
    return field(default=default, metadata=meta)


def section(cls: type) -> Any:
    """A nested section whose defaults are its own fields' defaults."""
    return field(default_factory=cls)


def _parse_mode(value: Any) -> str:
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


def source_is_path(source: str) -> bool:
    """Whether a camera source names a file or folder (not picamera2, an index or a URL)."""
    return source != "picamera2" and not source.isdigit() and "://" not in source


def _parse_source(value: Any) -> str:
    """A camera source; an unquoted device index such as 0 arrives as an int."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected a source such as picamera2, /dev/video0, 0, rtsp://… or a file")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _parse_head_path(value: Any) -> str:
    """A head file path; null (no head) never reaches here."""
    if not isinstance(value, str):
        raise ValueError(f"expected the path of a head file, got {value!r}")
    if not value.strip():
        raise ValueError("must not be empty (leave the key out, or null, for no head)")
    return value


@dataclass(frozen=True)
class CameraConfig:
    source: str = setting(
        "picamera2",
        "picamera2 | /dev/video0 | 0 | rtsp://… | http://… | tcp://… | clip.mp4 | photo.jpg | photos/",
        parse=_parse_source,
        path=source_is_path,
    )
    width: int = setting(640, "capture width in pixels", min=16, max=8192)
    height: int = setting(480, "capture height in pixels", min=16, max=8192)
    fps: float = setting(30.0, "frames per second asked of the camera; still images cycle at this rate",
                         min=0.1, max=240)
    realtime: bool = setting(True, "files play at their own frame rate, images at fps (false: as fast as "
                             "the model reads them, every frame classified)")
    loop: bool = setting(False, "video files start again at the end (image folders always cycle)")
    stall_timeout_s: float = setting(
        5.0, "a source that delivers no frame for this long is closed and reopened", min=0.5, max=600)


@dataclass(frozen=True)
class ModelConfig:
    path: str = setting("/var/lib/edgecam/models/mobilenet_v2_1.0_224_quant.tflite",
                        "the .tflite image classifier", path=True)
    labels: str = setting("/var/lib/edgecam/models/imagenet_labels.txt",
                          "labels file, one label a line", path=True)
    threads: int = setting(0, "inference threads; 0 = one per CPU core", min=0, max=64)
    top_k: int = setting(3, "labels reported per result", min=1, max=100)
    resize: str = setting("crop", "crop: keep the aspect ratio, cut the sides; stretch: squash",
                          choices=("crop", "stretch"))
    head: str | None = setting(
        None, "classes learned with `edgecam learn` (a head file); model.path is then the embedding "
        "extractor the head was learned with, and model.labels is not used",
        parse=_parse_head_path, path=True)
    head_min_similarity: float = setting(
        0.6, "with a head: an image whose cosine similarity to every class is lower is `unknown`",
        min=0, max=1)


@dataclass(frozen=True)
class PipelineConfig:
    max_frame_age_ms: float = setting(200.0, "older frames are dropped, never classified",
                                      min=1, max=60_000)
    max_fps: float = setting(0.0, "cap on classifications per second; 0 = as fast as the model allows",
                             min=0, max=1000)


@dataclass(frozen=True)
class JournalConfig:
    enabled: bool = setting(True, "write each emitted result to the systemd journal")


@dataclass(frozen=True)
class SocketConfig:
    enabled: bool = setting(True, "serve results as JSON lines on a Unix socket")
    path: str = setting("/run/edgecam/results.sock", "socket file", path=True)
    mode: str = setting("0660", "socket file permissions (octal, quoted)", parse=_parse_mode)


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


def _parse_host(value: Any) -> str:
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


def _parse_listen(value: Any) -> str:
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


def _parse_topic_prefix(value: Any) -> str:
    return _parse_topic(value, empty_ok=True)


def _parse_discovery_prefix(value: Any) -> str:
    return _parse_topic(value, empty_ok=False)


def _parse_client_id(value: Any) -> str:
    if not isinstance(value, str) or (value and not value.isprintable()) or " " in value:
        raise ValueError("expected a client id without blanks")
    return value


def _existing_file(value: str) -> None:
    """A file named in the config must be there (unless we may not look: the daemon reads it)."""
    if not value:
        return
    try:
        mode = os.stat(value).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ValueError(f"{value}: no such file") from None
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise ValueError(f"{value}: not a file")


@dataclass(frozen=True)
class MqttTlsConfig:
    ca_file: str = setting("", "CA certificate(s), PEM, the broker's certificate is checked against;"
                           " setting it turns TLS on", path=bool, check=_existing_file)
    cert_file: str = setting("", "client certificate, PEM (brokers that require one)", path=bool,
                             check=_existing_file)
    key_file: str = setting("", "the client certificate's private key, PEM (if not in cert_file)",
                            path=bool, check=_existing_file)

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.key_file and not self.cert_file:
            found.append(("key_file", "needs cert_file, the certificate it belongs to"))
        if (self.cert_file or self.key_file) and not self.ca_file:
            found.append(("cert_file" if self.cert_file else "key_file",
                          "a client certificate needs TLS: set ca_file too"))
        return found


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = setting(False, "publish results, state and stats to an MQTT broker")
    host: str = setting("localhost", "the broker's host name or address", parse=_parse_host)
    port: int = setting(1883, "the broker's port (1883; 8883 is usual with TLS)", min=1, max=65535)
    username: str = setting("", "user name; empty = anonymous")
    password_file: str = setting("", "file holding the password (read at start, never in this file)",
                                 path=bool, check=_existing_file)
    tls: MqttTlsConfig = section(MqttTlsConfig)
    client_id: str = setting("", "MQTT client id; empty = the topic prefix with - for /",
                             parse=_parse_client_id)
    topic_prefix: str = setting("", "topics start with this; empty = edgecam/<hostname>",
                                parse=_parse_topic_prefix)
    qos: int = setting(0, "MQTT quality of service for every message", min=0, max=2)
    retain: bool = setting(True, "the current label is retained, so a new subscriber gets it at once")
    keepalive_s: int = setting(60, "seconds between keepalives; the broker publishes the last will"
                               " (offline) after 1.5 times this without a word", min=1, max=65535)
    stats_interval_s: float = setting(30.0, "seconds between stats messages; 0 = none", min=0,
                                      max=86_400)
    queue_length: int = setting(100, "results kept while the broker is away; beyond that the oldest"
                                " are dropped (counted)", min=1, max=100_000)
    homeassistant: bool = setting(False, "announce a label sensor, a score sensor and a connectivity"
                                  " sensor to Home Assistant (MQTT discovery)")
    discovery_prefix: str = setting("homeassistant", "Home Assistant's discovery prefix",
                                    parse=_parse_discovery_prefix)

    def problems(self) -> list[tuple[str, str]]:
        if self.password_file and not self.username:
            return [("password_file", "a password needs a username (outputs.mqtt.username)")]
        return []


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = setting(False, "serve Prometheus metrics over HTTP at /metrics")
    listen: str = setting("127.0.0.1:9464", "HOST:PORT to serve on (:9464 = every interface)",
                          parse=_parse_listen)


@dataclass(frozen=True)
class OutputsConfig:
    min_score: float = setting(0.3, "results whose best score is lower are not emitted", min=0, max=1)
    emit: str = setting("on_change", "on_change: when the top label changes; every_frame: always",
                        choices=("on_change", "every_frame"))
    heartbeat_s: float = setting(10.0, "with on_change, repeat the current result at least this often;"
                                 " 0 = never", min=0, max=86_400)
    journal: JournalConfig = section(JournalConfig)
    socket: SocketConfig = section(SocketConfig)
    mqtt: MqttConfig = section(MqttConfig)
    metrics: MetricsConfig = section(MetricsConfig)


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = section(CameraConfig)
    model: ModelConfig = section(ModelConfig)
    pipeline: PipelineConfig = section(PipelineConfig)
    outputs: OutputsConfig = section(OutputsConfig)
    log_level: str = setting("info", "debug | info | warning | error",
                             choices=("debug", "info", "warning", "error"))


_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


class _Loader:
    """Walks a composed YAML tree against the schema, collecting every error."""

    def __init__(self, filename: str, base_dir: Path) -> None:
        self.filename = filename
        self.base_dir = base_dir
        self.errors: list[str] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def error(self, node: yaml.Node | None, keypath: str, problem: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.errors.append(f"{self.filename}:{line}: {keypath}: {problem}")

    def build(self, cls: type, node: yaml.Node | None, keypath: str) -> Any:
        if node is None or _is_null(node):
            return cls()
        if not isinstance(node, yaml.MappingNode):
            self.error(node, keypath or "(top)", f"expected a section of keys, got {_kind(node)}")
            return cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        seen: set[str] = set()
        key_nodes: dict[str, yaml.Node] = {}
        rejected = False
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            where = f"{keypath}.{key}" if keypath else str(key)
            if not isinstance(key, str):
                self.error(key_node, keypath or "(top)", "keys must be plain names")
                continue
            if not _is_plain_name(key):
                # Shown quoted at the section's path: a key with blanks would break `FILE:LINE: key: `.
                self.error(key_node, keypath or "(top)", f"keys must be plain names, got {key!r}")
                continue
            if key in seen:
                self.error(key_node, where, "duplicate key")
                continue
            seen.add(key)
            key_nodes[key] = key_node
            spec = fields.get(key)
            if spec is None:
                self.error(key_node, where, _unknown_key(key, fields))
                continue
            hint = hints[key]
            if dataclasses.is_dataclass(hint):
                values[key] = self.build(hint, value_node, where)
                continue
            ok, value = self.scalar(spec, hint, value_node, where)
            if ok:
                values[key] = value
            rejected = rejected or not ok
        built = cls(**values)
        # A section's own cross-field rules (`problems()`), once its fields are each valid.
        if hasattr(built, "problems") and not rejected:
            for key, problem in built.problems():
                self.error(key_nodes.get(key, node), f"{keypath}.{key}" if keypath else key, problem)
        return built

    def scalar(self, spec: dataclasses.Field, hint: Any, node: yaml.Node, where: str
               ) -> tuple[bool, Any]:
        meta = spec.metadata
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, where, f"expected {_describe(hint, meta)}, got {_kind(node)}")
            return False, None
        try:
            raw = self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.error(node, where, str(getattr(exc, "problem", exc)))
            return False, None
        except (ValueError, TypeError, KeyError, AttributeError):
            # PyYAML's constructors fail this way on explicit tags: `!!int abc`, `!!bool maybe`.
            self.error(node, where, f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}")
            return False, None
        if meta["parse"] is _parse_mode and type(raw) is int and node.style is None:
            # A mode's digits are octal as written: YAML 1.1 reads `0660` as octal but `440` as
            # decimal, which would silently become 0670.
            raw = node.value
        if raw is None and _allows_none(hint):
            return True, None
        try:
            value = meta["parse"](raw) if meta["parse"] else _check_type(raw, _base_type(hint), meta)
        except ValueError as exc:
            self.error(node, where, str(exc))
            return False, None
        is_path = meta["path"]
        if isinstance(value, str) and (is_path(value) if callable(is_path) else is_path):
            value = self.resolve(value)
        if meta.get("check") is not None:
            try:
                meta["check"](value)
            except ValueError as exc:
                self.error(node, where, str(exc))
                return False, None
        return True, value

    def resolve(self, value: str) -> str:
        path = Path(value).expanduser()
        return os.path.normpath(path if path.is_absolute() else self.base_dir / path)


def _check_type(raw: Any, kind: type, meta: Any) -> Any:
    """Checks a plain value's type, then its bounds or choices."""
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        raw = float(raw)
    if type(raw) is not kind:
        raise ValueError(f"expected {_describe(kind, meta)}, got {_value_kind(raw)} {raw!r}")
    if kind is float and math.isnan(raw):
        raise ValueError("expected a number, got NaN")
    if meta["choices"] is not None and raw not in meta["choices"]:
        raise ValueError(f"{raw!r} is not one of: {', '.join(meta['choices'])}")
    low, high = meta["min"], meta["max"]
    if (low is not None and raw < low) or (high is not None and raw > high):
        raise ValueError(f"{raw!r} is out of range ({_fmt(low)}..{_fmt(high)})")
    return raw


def _fmt(bound: float | None) -> str:
    if bound is None:
        return ""
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _base_type(hint: Any) -> type:
    if isinstance(hint, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _allows_none(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _describe(hint: Any, meta: Any) -> str:
    if meta.get("choices"):
        return "one of: " + ", ".join(meta["choices"])
    return _TYPE_NAMES.get(_base_type(hint), "a value")


def _value_kind(value: Any) -> str:
    return {bool: "boolean", int: "whole number", float: "number", str: "string"}.get(
        type(value), type(value).__name__)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a section"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _is_plain_name(key: str) -> bool:
    """A key that can be shown unquoted in `FILE:LINE: key.path: problem`: no blanks, printable."""
    return bool(key) and key.isprintable() and " " not in key


def _unknown_key(key: str, fields: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; known keys: {', '.join(fields)}"


def parse_config(text: str, filename: str, base_dir: Path | None = None) -> Config:
    """Parses config text; raises ConfigError listing every problem."""
    loader = _Loader(filename, base_dir or Path.cwd())
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{filename}:{line}: (yaml): {exc.problem or exc.context}"]) from None
    except yaml.reader.ReaderError as exc:
        # Not a MarkedYAMLError, and its str() spans two lines.
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError([f"{filename}:{line}: (yaml): unacceptable character #x{exc.character:04x}: "
                           f"{exc.reason}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{filename}:1: (yaml): {str(exc).splitlines()[0]}"]) from None
    except RecursionError:
        # PyYAML's composer recurses once per nesting level.
        raise ConfigError([f"{filename}:1: (yaml): nested too deeply"]) from None
    config = loader.build(Config, root, "")
    if loader.errors:
        # In file order: a section's cross-field problems come after its nested sections.
        raise ConfigError(sorted(loader.errors,
                                 key=lambda line: int(line[len(filename) + 1:].split(":", 1)[0])))
    return config


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Loads FILE, or /etc/edgecam/edgecam.yaml when it exists, else the built-in defaults."""
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = DEFAULT_CONFIG_PATH
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}:1: (file): not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{path}:1: (file): cannot read: {reason}"]) from None
    return parse_config(text, str(path), path.resolve().parent)


def to_yaml(config: Config) -> str:
    """The effective config as YAML, in schema order (what check-config prints)."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, default_flow_style=False)
