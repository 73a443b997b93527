"""Loading the configuration: a file's text, its YAML with lines (config.yaml_nodes), walked
against the schema (config.tree), then the checks across sections.

Every problem is reported as `FILE:LINE: key.path: problem`, all at once.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

import yaml

from edgecam.common.files import MAX_CONFIG_BYTES, read_user_text
from edgecam.config.fields import DEFAULT_CONFIG_PATH
from edgecam.config.instance import SINGLE, Camera
from edgecam.config.labels import unknown_labels
from edgecam.config.schema import Config
from edgecam.config.tree import TreeLoader
from edgecam.config.yaml_nodes import compose, value_at
from edgecam.errors import ConfigError, EdgecamError, MissingFileError


def parse_config(text: str, filename: str, base_dir: Path | None = None) -> Config:
    """Parses config text; raises ConfigError listing every problem."""
    loader = TreeLoader(filename, base_dir or Path.cwd())
    root = compose(text, filename)
    config = loader.build(Config, root, "")
    if "model" not in loader.failed:  # a model that did not parse has no labels to check against
        for ref, problem in unknown_labels(config, loader.labels):
            loader.error(ref.node, ref.keypath, problem)
    if config.fleet.enabled and not config.outputs.mqtt.enabled:
        fleet = value_at(root, "fleet")
        loader.error(value_at(fleet, "enabled") if fleet is not None else root, "fleet.enabled",
                     "the fleet talks over the MQTT broker: set outputs.mqtt.enabled too")
    _check_fleet_names(loader, root, config)
    if loader.errors:
        # In file order: a section's cross-field problems come after its nested sections.
        raise ConfigError(sorted(loader.errors,
                                 key=lambda line: int(line[len(filename) + 1:].split(":", 1)[0])))
    return config


def _check_fleet_names(loader: TreeLoader, root: yaml.Node, config: Config) -> None:
    """A member named `fleet` (topic_prefix's last level, as fleet/topics.py reads it) would
    publish where the fleet's head is; an aggregator merges with its own head's extractor."""
    fleet, mqtt = config.fleet, config.outputs.mqtt
    if not fleet.enabled:
        return
    section = value_at(root, "fleet")
    if (mqtt.topic_prefix or f"edgecam/{socket.gethostname()}").rsplit("/", 1)[-1] == "fleet":
        outputs = value_at(root, "outputs")
        node = value_at(outputs, "mqtt") if outputs is not None else None
        loader.error((value_at(node, "topic_prefix") if node is not None else None) or root,
                     "outputs.mqtt.topic_prefix", "a fleet member cannot be named `fleet` "
                     "(<topic_root>/fleet/head is the fleet's head): end topic_prefix otherwise")
    if fleet.aggregate and config.model.head is None and section is not None:
        loader.error(value_at(section, "aggregate") or section, "fleet.aggregate",
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
