"""The YAML node tree the config is read from: every node knows its line, for `FILE:LINE:` errors.

The config is walked as nodes (config.tree), not as the plain parsed dict, so
that each problem can point at the line a Pi user must edit.
"""

from __future__ import annotations

import yaml

from edgecam.errors import ConfigError


def compose(text: str, filename: str) -> yaml.Node | None:
    """The YAML node tree of `text` (None when empty), each node with its line; ConfigError else."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
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


def kind_of(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a section"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def value_at(mapping: yaml.Node, key: str) -> yaml.Node | None:
    """The value node of `key` in a mapping node, if there."""
    if isinstance(mapping, yaml.MappingNode):
        for key_node, value_node in mapping.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node
    return None


def problem_node(node: yaml.Node, key: str, key_nodes: dict[str, yaml.Node]) -> yaml.Node:
    """The node a section's problem about `key` points at; a dotted key (camera.source) is
    looked for inside the nested section, else the nearest section written in the file."""
    first, _, rest = key.partition(".")
    found = key_nodes.get(first, node)
    if rest:
        inner = value_at(node, first)
        for part in rest.split("."):
            for key_node, _value in (inner.value if isinstance(inner, yaml.MappingNode) else ()):
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                    found = key_node
            inner = value_at(inner, part) if inner is not None else None
    return found


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def is_plain_name(key: str) -> bool:
    """A key that can be shown unquoted in `FILE:LINE: key.path: problem`: no blanks, printable."""
    return bool(key) and len(key) <= 100 and key.isprintable() and " " not in key
