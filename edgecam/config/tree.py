"""Walking the config's YAML node tree against the schema (config.schema), collecting every error.

All problems are collected before failing: a Pi user editing
/etc/edgecam/edgecam.yaml over SSH should see every mistake in one go, and a
typo in a key must never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from edgecam.config.fields import MAX_STRING, parse_mode
from edgecam.config.labels import LabelRef
from edgecam.config.values import allows_none, base_type, check_type, describe
from edgecam.config.yaml_nodes import is_null, is_plain_name, kind_of, problem_node, value_at


class TreeLoader:
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
        if node is None or is_null(node):
            return cls()
        if not isinstance(node, yaml.MappingNode):
            self.error(node, keypath or "(top)", f"expected a section of keys, got {kind_of(node)}")
            return cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        seen: set[str] = set()
        key_nodes: dict[str, yaml.Node] = {}
        rejected = False
        for key_node, value_node in node.value:
            key = self._key(key_node, keypath, seen)
            if key is None:
                continue
            seen.add(key)
            key_nodes[key] = key_node
            where = f"{keypath}.{key}" if keypath else key
            spec = fields.get(key)
            if spec is None:
                self.error(key_node, where, _unknown_key(key, fields))
                continue
            ok, value = self.field(spec, hints[key], value_node, where)
            if ok:
                values[key] = value
            rejected = rejected or not ok
        built = cls(**values)
        # A section's own cross-field rules (`problems()`), once its fields are each valid.
        if hasattr(built, "problems") and not rejected:
            for key, problem in built.problems():
                self.error(problem_node(node, key, key_nodes), f"{keypath}.{key}" if keypath else key,
                           problem)
        return built

    def _key(self, node: yaml.Node, keypath: str, seen: set[str]) -> str | None:
        """A section's key, if it is a plain name not given before (else its error, and None)."""
        key = node.value if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            self.error(node, keypath or "(top)", "keys must be plain names")
            return None
        if not is_plain_name(key):
            # Shown quoted at the section's path: a key with blanks would break `FILE:LINE: key: `.
            self.error(node, keypath or "(top)", f"keys must be plain names, got {key[:100]!r}")
            return None
        if key in seen:
            self.error(node, f"{keypath}.{key}" if keypath else key, "duplicate key")
            return None
        return key

    def field(self, spec: dataclasses.Field, hint: Any, node: yaml.Node, where: str
              ) -> tuple[bool, Any]:
        """One field's value by its type: a section, a mapping, a list or a plain value."""
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return True, self.build(hint, node, where)
        kind = base_type(hint)
        if typing.get_origin(kind) in (tuple, dict) and is_null(node) and allows_none(hint):
            return True, None  # a zone's rule left as the top level's
        if typing.get_origin(kind) is dict:
            return self.numbers(spec, node, where)
        if typing.get_origin(kind) is tuple:
            return self.sequence(spec, typing.get_args(kind), node, where)
        return self.scalar(spec, hint, node, where)

    def scalar(self, spec: dataclasses.Field, hint: Any, node: yaml.Node, where: str
               ) -> tuple[bool, Any]:
        meta = spec.metadata
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, where, f"expected {describe(hint, meta)}, got {kind_of(node)}")
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
        if raw is None and allows_none(hint):
            return True, None
        if isinstance(raw, str) and len(raw) > MAX_STRING:
            self.error(node, where, f"{len(raw):,} characters long (at most {MAX_STRING:,})")
            return False, None
        try:
            value = meta["parse"](raw) if meta["parse"] else check_type(raw, base_type(hint), meta)
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
        if is_null(node):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, where, f"expected a list of sections (\"- name: ...\"), got {kind_of(node)}")
            return ()
        built = []
        named: dict[str, int] = {}
        for index, item in enumerate(node.value):
            value = self.build(cls, item, f"{where}[{index}]")
            name = getattr(value, "name", "")
            if isinstance(item, yaml.MappingNode) and value_at(item, "name") is None:
                self.error(item, f"{where}[{index}].name", "missing: each one needs a name")
            elif name in named:
                self.error(value_at(item, "name") or item, f"{where}[{index}].name",
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
                       f"{f'{len(items)} item(s)' if items is not None else kind_of(node)}")
            return False, ()
        numbers = []
        for item in items:
            raw = self._constructor.construct_object(item) if isinstance(item, yaml.ScalarNode) else None
            try:
                numbers.append(check_type(raw, float, spec.metadata))
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
        if is_null(node):
            return True, ()
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, where, f"expected a list such as [cat, dog], got {kind_of(node)}")
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
        if is_null(node):
            return True, {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, where, f"expected a mapping such as {{cat: 0.6}}, got {kind_of(node)}")
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
                values[name] = check_type(raw, float, spec.metadata)
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



def _unknown_key(key: str, fields: dict[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; known keys: {', '.join(fields)}"
