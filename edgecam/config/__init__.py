"""The configuration: a strict schema (config.schema) loaded from YAML with line numbers (config.loader)."""

from edgecam.config.fields import (
    DEFAULT_CONFIG_PATH,
    is_loopback,
    picamera_number,
    picamera_source,
    source_is_path,
    split_listen,
)
from edgecam.config.files import read_token
from edgecam.config.instance import SINGLE, Camera
from edgecam.config.loader import load_config, parse_config, to_yaml
from edgecam.config.motion import MotionConfig
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
    WebConfig,
    ZoneConfig,
    ZoneModelConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "SINGLE",
    "Camera",
    "CameraConfig",
    "Config",
    "FleetConfig",
    "JournalConfig",
    "MetricsConfig",
    "ModelConfig",
    "MotionConfig",
    "MqttConfig",
    "MqttTlsConfig",
    "OutputsConfig",
    "PipelineConfig",
    "SnapshotsConfig",
    "SocketConfig",
    "WebConfig",
    "ZoneConfig",
    "ZoneModelConfig",
    "is_loopback",
    "load_config",
    "parse_config",
    "picamera_number",
    "picamera_source",
    "read_token",
    "source_is_path",
    "split_listen",
    "to_yaml",
]
