"""Loading the configuration from YAML, with line numbers, against the schema (config.schema).

Loading walks the YAML node tree (not the
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
import socket
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from edgecam.common.files import MAX_CONFIG_BYTES, read_user_text
from edgecam.config.fields import DEFAULT_CONFIG_PATH, MAX_STRING, parse_mode
from edgecam.config.instance import SINGLE, Camera
from edgecam.config.labels import LabelRef, unknown_labels
from edgecam.config.schema import Config
from edgecam.errors import ConfigError, EdgecamError, MissingFileError

_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


class _Loader:
    """Walks a composed YAML tree against the schema, collecting every error."""

    def __init__(self, filename: str, base_dir: Path) -> None:
        self.filename = filename
        self.base_dir = base_dir
        self.errors: list[str] = []
        self.failed: set[str] = set()  # the top-level sections with an error
        #: every label the config names (a `labels` field's items or keys), checked at the end
        self.labels: list[LabelRef] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def error(self, node: yaml.Node | None, keypath: str, problem: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.errors.append(f"{self.filename}:{line}: {keypath}: {problem}")
        self.failed.add(keypath.split(".", 1)[0])

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
                self.error(key_node, keypath or "(top)", f"keys must be plain names, got {key[:100]!r}")
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
            if isinstance(hint, type) and dataclasses.is_dataclass(hint):
                values[key] = self.build(hint, value_node, where)
                continue
            value: Any
            kind = _base_type(hint)
            if typing.get_origin(kind) in (tuple, dict) and _is_null(value_node) and _allows_none(hint):
                ok, value = True, None  # a zone's rule left as the top level's
            elif typing.get_origin(kind) is dict:
                ok, value = self.numbers(spec, value_node, where)
            elif typing.get_origin(kind) is tuple:
                ok, value = self.sequence(spec, typing.get_args(kind), value_node, where)
            else:
                ok, value = self.scalar(spec, hint, value_node, where)
            if ok:
                values[key] = value
            rejected = rejected or not ok
        built = cls(**values)
        # A section's own cross-field rules (`problems()`), once its fields are each valid.
        if hasattr(built, "problems") and not rejected:
            for key, problem in built.problems():
                self.error(_key_node(node, key, key_nodes), f"{keypath}.{key}" if keypath else key,
                           problem)
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
        if meta["parse"] is parse_mode and type(raw) is int and node.style is None:
            # A mode's digits are octal as written: YAML 1.1 reads `0660` as octal but `440` as
            # decimal, which would silently become 0670.
            raw = node.value
        if raw is None and _allows_none(hint):
            return True, None
        if isinstance(raw, str) and len(raw) > MAX_STRING:
            self.error(node, where, f"{len(raw):,} characters long (at most {MAX_STRING:,})")
            return False, None
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

    def sequence(self, spec: dataclasses.Field, args: tuple[Any, ...], node: yaml.Node, where: str
                 ) -> tuple[bool, tuple[Any, ...]]:
        """A list field, by its item type: sections, strings, or a fixed number of numbers."""
        if args[-1] is not Ellipsis:
            return self.fixed_numbers(spec, len(args), node, where)
        if isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
            return True, self.sections(args[0], node, where)
        return self.strings(spec, node, where)

    def sections(self, cls: type, node: yaml.Node, where: str) -> tuple[Any, ...]:
        """A list of sections (zones), each checked as a section, each with a unique `name`."""
        if _is_null(node):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, where, f"expected a list of sections (\"- name: ...\"), got {_kind(node)}")
            return ()
        built = []
        named: dict[str, int] = {}
        for index, item in enumerate(node.value):
            value = self.build(cls, item, f"{where}[{index}]")
            name = getattr(value, "name", "")
            if isinstance(item, yaml.MappingNode) and _value_node(item, "name") is None:
                self.error(item, f"{where}[{index}].name", "missing: each one needs a name")
            elif name in named:
                self.error(_value_node(item, "name") or item, f"{where}[{index}].name",
                           f"{name!r} is already the name of {where}[{named[name]}]")
            elif name:
                named[name] = index
            built.append(value)
        return tuple(built)

    def fixed_numbers(self, spec: dataclasses.Field, count: int, node: yaml.Node, where: str
                      ) -> tuple[bool, tuple[float, ...]]:
        """Exactly `count` numbers within the field's bounds, then the field's own check."""
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if items is None or len(items) != count:
            self.error(node, where, f"expected a list of {count} numbers, got "
                       f"{f'{len(items)} item(s)' if items is not None else _kind(node)}")
            return False, ()
        numbers = []
        for item in items:
            raw = self._constructor.construct_object(item) if isinstance(item, yaml.ScalarNode) else None
            try:
                numbers.append(_check_type(raw, float, spec.metadata))
            except ValueError as exc:
                self.error(item, where, str(exc))
                return False, ()
        if spec.metadata.get("check") is not None:
            try:
                spec.metadata["check"](tuple(numbers))
            except ValueError as exc:
                self.error(node, where, str(exc))
                return False, ()
        return True, tuple(numbers)

    def strings(self, spec: dataclasses.Field, node: yaml.Node, where: str
                ) -> tuple[bool, tuple[str, ...]]:
        """A list of non-empty strings (`[]` or null: none); each bad item reported at its line."""
        if _is_null(node):
            return True, ()
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, where, f"expected a list such as [cat, dog], got {_kind(node)}")
            return False, ()
        items: list[str] = []
        ok = True
        for item in node.value:
            text = self.label(spec, item, where, "each item")
            if text is None:
                ok = False
            elif text in items:
                self.error(item, where, f"{text!r} is listed twice")
                ok = False
            else:
                items.append(text)
        return ok, tuple(items)

    def numbers(self, spec: dataclasses.Field, node: yaml.Node, where: str
                ) -> tuple[bool, dict[str, float]]:
        """A mapping of names to numbers within the field's bounds (`{}` or null: none)."""
        if _is_null(node):
            return True, {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, where, f"expected a mapping such as {{cat: 0.6}}, got {_kind(node)}")
            return False, {}
        values: dict[str, float] = {}
        ok = True
        for key_node, value_node in node.value:
            name = self.label(spec, key_node, where, "each key")
            if name is None:
                ok = False
                continue
            if name in values:
                self.error(key_node, where, f"{name!r} is given twice")
                ok = False
                continue
            raw = (self._constructor.construct_object(value_node)
                   if isinstance(value_node, yaml.ScalarNode) else None)
            try:
                values[name] = _check_type(raw, float, spec.metadata)
            except ValueError as exc:
                self.error(value_node, where, f"{name!r}: {exc}")
                ok = False
        return ok, values

    def label(self, spec: dataclasses.Field, node: yaml.Node, where: str, what: str) -> str | None:
        """One name of a list or mapping, noted for the label check if the field holds labels."""
        raw = node.value if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") else None
        if raw is None or not raw.strip() or len(raw) > MAX_STRING:
            self.error(node, where, f"{what} must be a label (a non-empty string of at most "
                       f"{MAX_STRING:,} characters)")
            return None
        text = raw.strip()
        if spec.metadata.get("labels"):
            self.labels.append(LabelRef(node, where, text))
        return text

    def resolve(self, value: str) -> str:
        path = Path(value).expanduser()
        return os.path.normpath(path if path.is_absolute() else self.base_dir / path)


def _check_type(raw: Any, kind: type, meta: Any) -> Any:
    """Checks a plain value's type, then its bounds or choices."""
    if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        raw = float(raw)
    if type(raw) is not kind:
        raise ValueError(f"expected {_describe(kind, meta)}, got {_value_kind(raw)} {raw!r}")
    if isinstance(raw, float) and math.isnan(raw):
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


def _value_node(mapping: yaml.Node, key: str) -> yaml.Node | None:
    """The value node of `key` in a mapping node, if there."""
    if isinstance(mapping, yaml.MappingNode):
        for key_node, value_node in mapping.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node
    return None


def _key_node(node: yaml.Node, key: str, key_nodes: dict[str, yaml.Node]) -> yaml.Node:
    """The node a section's problem about `key` points at; a dotted key (camera.source) is
    looked for inside the nested section, else the nearest section written in the file."""
    first, _, rest = key.partition(".")
    found = key_nodes.get(first, node)
    if rest:
        inner = _value_node(node, first)
        for part in rest.split("."):
            for key_node, _value in (inner.value if isinstance(inner, yaml.MappingNode) else ()):
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                    found = key_node
            inner = _value_node(inner, part) if inner is not None else None
    return found


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _is_plain_name(key: str) -> bool:
    """A key that can be shown unquoted in `FILE:LINE: key.path: problem`: no blanks, printable."""
    return bool(key) and len(key) <= 100 and key.isprintable() and " " not in key


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
    if "model" not in loader.failed:  # a model that did not parse has no labels to check against
        for ref, problem in unknown_labels(config, loader.labels):
            loader.error(ref.node, ref.keypath, problem)
    if config.fleet.enabled and not config.outputs.mqtt.enabled:
        fleet = _value_node(root, "fleet")
        loader.error(_value_node(fleet, "enabled") if fleet is not None else root, "fleet.enabled",
                     "the fleet talks over the MQTT broker: set outputs.mqtt.enabled too")
    _check_fleet_names(loader, root, config)
    if loader.errors:
        # In file order: a section's cross-field problems come after its nested sections.
        raise ConfigError(sorted(loader.errors,
                                 key=lambda line: int(line[len(filename) + 1:].split(":", 1)[0])))
    return config


def _check_fleet_names(loader: _Loader, root: yaml.Node, config: Config) -> None:
    """A member named `fleet` (topic_prefix's last level, as fleet/topics.py reads it) would
    publish where the fleet's head is; an aggregator merges with its own head's extractor."""
    fleet, mqtt = config.fleet, config.outputs.mqtt
    if not fleet.enabled:
        return
    section = _value_node(root, "fleet")
    if (mqtt.topic_prefix or f"edgecam/{socket.gethostname()}").rsplit("/", 1)[-1] == "fleet":
        outputs = _value_node(root, "outputs")
        node = _value_node(outputs, "mqtt") if outputs is not None else None
        loader.error((_value_node(node, "topic_prefix") if node is not None else None) or root,
                     "outputs.mqtt.topic_prefix", "a fleet member cannot be named `fleet` "
                     "(<topic_root>/fleet/head is the fleet's head): end topic_prefix otherwise")
    if fleet.aggregate and config.model.head is None and section is not None:
        loader.error(_value_node(section, "aggregate") or section, "fleet.aggregate",
                     "an aggregator merges the heads learned with its own embedding extractor: "
                     "set model.head too")


def load_config(path: str | os.PathLike[str] | None, camera: Camera = SINGLE) -> Config:
    """Loads FILE, else the camera's (/etc/edgecam/NAME.yaml, which must exist), else
    /etc/edgecam/edgecam.yaml when it exists, else the built-in defaults; then the paths
    left at their single-camera defaults become the camera's own (Camera.localize)."""
    if path is None:
        if not camera.name and not DEFAULT_CONFIG_PATH.exists():
            return Config()
        path = camera.config_path
    path = Path(path)
    try:
        text = read_user_text(path, "config file", max_bytes=MAX_CONFIG_BYTES)
    except MissingFileError:
        hint = f" (sudo make install NAME={camera.name} writes it)" if camera.name else ""
        raise ConfigError([f"{path}:1: (file): not found{hint}"]) from None
    except EdgecamError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ConfigError([f"{path}:1: (file): {reason}"]) from None
    return camera.localize(parse_config(text, str(path), path.resolve().parent))


def to_yaml(config: Config) -> str:
    """The effective config as YAML, in schema order (what check-config prints)."""
    return yaml.safe_dump(_plain(dataclasses.asdict(config)), sort_keys=False,
                          default_flow_style=False)


def _plain(value: Any) -> Any:
    """Tuples as lists, all the way down: YAML's safe dumper has no tuples."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
