"""The configuration: a strict schema (config.schema) loaded from YAML with line numbers (config.loader)."""

from edgecam.config.fields import DEFAULT_CONFIG_PATH, source_is_path, split_listen
from edgecam.config.loader import load_config, parse_config, to_yaml
from edgecam.config.schema import (
    CameraConfig,
    Config,
    FleetConfig,
    JournalConfig,
    MetricsConfig,
    ModelConfig,
    MqttConfig,
    MqttTlsConfig,
    OutputsConfig,
    PipelineConfig,
    SnapshotsConfig,
    SocketConfig,
    ZoneConfig,
    ZoneModelConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "CameraConfig",
    "Config",
    "FleetConfig",
    "JournalConfig",
    "MetricsConfig",
    "ModelConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "OutputsConfig",
    "PipelineConfig",
    "SnapshotsConfig",
    "SocketConfig",
    "ZoneConfig",
    "ZoneModelConfig",
    "load_config",
    "parse_config",
    "source_is_path",
    "split_listen",
    "to_yaml",
]
