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
) -> Any:
    """A schema field: default, description, and the checks the loader applies.

    `parse` converts or rejects a raw YAML value (raising ValueError with the
    problem); `path` marks a file path resolved against the config file's folder
    (a predicate: only values for which it is true are paths).
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "parse": parse, "path": path}
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
    realtime: bool = setting(True, "video files play at their own frame rate (false: as fast as possible)")
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


@dataclass(frozen=True)
class OutputsConfig:
    min_score: float = setting(0.3, "results whose best score is lower are not emitted", min=0, max=1)
    emit: str = setting("on_change", "on_change: when the top label changes; every_frame: always",
                        choices=("on_change", "every_frame"))
    heartbeat_s: float = setting(10.0, "with on_change, repeat the current result at least this often;"
                                 " 0 = never", min=0, max=86_400)
    journal: JournalConfig = section(JournalConfig)
    socket: SocketConfig = section(SocketConfig)


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
        return cls(**values)

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
        raise ConfigError(loader.errors)
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
