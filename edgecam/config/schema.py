"""The configuration schema: frozen dataclasses whose fields carry defaults, bounds and descriptions.

These classes *are* the schema (DESIGN.md, habit 6): `edgecam check-config`
prints them back, config/edgecam.yaml matches their defaults (a test holds it),
and the loader checks every YAML key against them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgecam.config.backends import BACKENDS, backend_mismatch, camera_problems
from edgecam.config.fields import (
    STATE_DIR,
    check_crop,
    parse_client_id,
    parse_discovery_prefix,
    parse_folder,
    parse_head_path,
    parse_host,
    parse_mode,
    parse_source,
    parse_threads,
    parse_topic_prefix,
    parse_zone_name,
    section,
    setting,
    source_is_path,
)
from edgecam.config.files import head_file, labels_file, model_file, pem_file, secret_file, source_file
from edgecam.config.fleet_schema import FleetConfig
from edgecam.config.motion import MotionConfig, ZoneMotionConfig, zone_motion
from edgecam.config.servers import MetricsConfig, WebConfig


@dataclass(frozen=True)
class CameraConfig:
    source: str = setting(
        "picamera2",
        "picamera2 | picamera2:1 | /dev/video0 | 0 | rtsp://… | http://… | tcp://… | clip.mp4 | photo.jpg | "
        "photos/",
        parse=parse_source,
        path=source_is_path, check=source_file,
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
    path: str = setting(str(STATE_DIR / "models" / "mobilenet_v2_1.0_224_quant.tflite"),
                        "the image classifier: .tflite (LiteRT), .onnx (ONNX Runtime), .rpk (the AI "
                        "Camera's IMX500) or .hef (an AI Kit / AI HAT+'s Hailo)", path=True, check=model_file)
    labels: str = setting(str(STATE_DIR / "models" / "imagenet_labels.txt"),
                          "labels file, one label a line (an .rpk's own labels are used unless this "
                          "is changed from the default)", path=True, check=labels_file)
    backend: str = setting("auto", "what runs the model; auto: chosen from model.path's suffix",
                           choices=BACKENDS)
    providers: tuple[str, ...] = setting(
        (), "ONNX Runtime execution providers, in order of preference (empty: CPUExecutionProvider); "
        "on a Jetson: [TensorrtExecutionProvider, CUDAExecutionProvider]")
    threads: int | str = setting("auto", "inference threads on the CPU: auto = measured at start; "
                                 "0 = one per CPU core", parse=parse_threads)
    top_k: int = setting(3, "labels reported per result", min=1, max=100)
    resize: str = setting("crop", "crop: keep the aspect ratio, cut the sides; stretch: squash",
                          choices=("crop", "stretch"))
    head: str | None = setting(
        None, "classes learned with `edgecam learn` (a head file); model.path is then the embedding "
        "extractor the head was learned with, and model.labels is not used",
        parse=parse_head_path, path=True, check=head_file)
    head_min_similarity: float = setting(
        0.6, "with a head: an image whose cosine similarity to every class is lower is `unknown`",
        min=0, max=1)

    def problems(self) -> list[tuple[str, str]]:
        mismatch = backend_mismatch(self.backend, self.path)
        return [("backend", mismatch)] if mismatch else []


@dataclass(frozen=True)
class PipelineConfig:
    max_frame_age_ms: float = setting(200.0, "older frames are dropped, never classified",
                                      min=1, max=60_000)
    max_fps: float = setting(0.0, "cap on classifications per second; 0 = as fast as the model allows",
                             min=0, max=1000)
    motion: MotionConfig = section(MotionConfig)


@dataclass(frozen=True)
class JournalConfig:
    enabled: bool = setting(True, "write each emitted result to the systemd journal")


@dataclass(frozen=True)
class SocketConfig:
    enabled: bool = setting(True, "serve results as JSON lines on a Unix socket")
    path: str = setting("/run/edgecam/results.sock", "socket file", path=True)
    mode: str = setting("0660", "socket file permissions (octal, quoted)", parse=parse_mode)


@dataclass(frozen=True)
class MqttTlsConfig:
    ca_file: str = setting("", "CA certificate(s), PEM, the broker's certificate is checked against;"
                           " setting it turns TLS on", path=bool, check=pem_file)
    cert_file: str = setting("", "client certificate, PEM (brokers that require one)", path=bool,
                             check=pem_file)
    key_file: str = setting("", "the client certificate's private key, PEM (if not in cert_file)",
                            path=bool, check=pem_file)

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
    host: str = setting("localhost", "the broker's host name or address", parse=parse_host)
    port: int = setting(1883, "the broker's port (1883; 8883 is usual with TLS)", min=1, max=65535)
    username: str = setting("", "user name; empty = anonymous")
    password_file: str = setting("", "file holding the password (read at start, never in this file)",
                                 path=bool, check=secret_file)
    tls: MqttTlsConfig = section(MqttTlsConfig)
    client_id: str = setting("", "MQTT client id; empty = the topic prefix with - for /",
                             parse=parse_client_id)
    topic_prefix: str = setting("", "topics start with this; empty = edgecam/<hostname>",
                                parse=parse_topic_prefix)
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
                                    parse=parse_discovery_prefix)

    def problems(self) -> list[tuple[str, str]]:
        if self.password_file and not self.username:
            return [("password_file", "a password needs a username (outputs.mqtt.username)")]
        return []


@dataclass(frozen=True)
class OutputsConfig:
    min_score: float = setting(0.3, "results whose best score is lower are not emitted", min=0, max=1)
    labels_allow: tuple[str, ...] = setting(
        (), "only these labels are emitted (empty: all); the best of them among the model.top_k "
        "labels becomes the result's top label", labels=True)
    labels_deny: tuple[str, ...] = setting(
        (), "never these labels: they are taken out of every result's labels", labels=True)
    thresholds: dict[str, float] = setting(
        {}, "per-label minimum score in place of min_score, e.g. {\"cat\": 0.6}", labels=True,
        min=0, max=1)
    emit: str = setting("on_change", "on_change: when the top label changes; every_frame: always",
                        choices=("on_change", "every_frame"))
    heartbeat_s: float = setting(10.0, "with on_change, repeat the current result at least this often;"
                                 " 0 = never", min=0, max=86_400)
    journal: JournalConfig = section(JournalConfig)
    socket: SocketConfig = section(SocketConfig)
    mqtt: MqttConfig = section(MqttConfig)
    metrics: MetricsConfig = section(MetricsConfig)


@dataclass(frozen=True)
class ZoneModelConfig:
    """A zone's own model; each key left out is the top-level model's."""

    path: str | None = setting(None, "the .tflite classifier (or embedding extractor)", path=True,
                               check=model_file)
    labels: str | None = setting(None, "its labels file", path=True, check=labels_file)
    head: str | None = setting(None, "classes learned for this zone (`edgecam learn add --zone`)",
                               parse=parse_head_path, path=True, check=head_file)


@dataclass(frozen=True)
class ZoneConfig:
    """A part of the picture classified on its own, with its own rules (null: the outputs')."""

    name: str = setting("", "[a-z0-9_-]{1,32}, unique; in topics, journal fields and messages",
                        parse=parse_zone_name)
    crop: tuple[float, float, float, float] = setting(
        (0.0, 0.0, 1.0, 1.0), "x, y, width, height as fractions of the frame", min=0, max=1,
        check=check_crop)
    interval_s: float = setting(0.0, "classify at most this often (0: every frame the model takes)",
                                min=0, max=86_400)
    model: ZoneModelConfig = section(ZoneModelConfig)
    motion: ZoneMotionConfig = section(ZoneMotionConfig)
    min_score: float | None = setting(None, "as outputs.min_score", min=0, max=1)
    emit: str | None = setting(None, "as outputs.emit", choices=("on_change", "every_frame"))
    labels_allow: tuple[str, ...] | None = setting(None, "as outputs.labels_allow", labels=True)
    labels_deny: tuple[str, ...] | None = setting(None, "as outputs.labels_deny", labels=True)
    thresholds: dict[str, float] | None = setting(None, "as outputs.thresholds", labels=True,
                                                  min=0, max=1)


@dataclass(frozen=True)
class SnapshotsConfig:
    """The full frame of each label change, saved as a JPEG with a JSON sidecar (edgecam.snapshots)."""

    enabled: bool = setting(False, "save the frame of each emitted label change (not heartbeats)")
    dir: str = setting(str(STATE_DIR / "snapshots"), "the folder; one subfolder per zone (`frame` "
                       "without zones)", parse=parse_folder, path=True)
    max_files: int = setting(500, "snapshots kept (a JPEG and its sidecar are one); the oldest are "
                             "removed first", min=1, max=1_000_000)
    max_mb: float = setting(200.0, "megabytes (10^6 bytes) the JPEGs and sidecars may take; the "
                            "oldest are removed first", min=0.1, max=1_000_000)
    quality: int = setting(85, "JPEG quality", min=1, max=100)


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = section(CameraConfig)
    model: ModelConfig = section(ModelConfig)
    pipeline: PipelineConfig = section(PipelineConfig)
    outputs: OutputsConfig = section(OutputsConfig)
    zones: tuple[ZoneConfig, ...] = setting(
        (), "parts of the picture classified on their own (empty: the whole frame)")
    snapshots: SnapshotsConfig = section(SnapshotsConfig)
    web: WebConfig = section(WebConfig)
    fleet: FleetConfig = section(FleetConfig)
    log_level: str = setting("info", "debug | info | warning | error",
                             choices=("debug", "info", "warning", "error"))

    def problems(self) -> list[tuple[str, str]]:
        """What the model's back-end asks of the camera and the zones (config.backends)."""
        return camera_problems(self.model.backend, self.model.path, self.camera.source,
                               tuple(zone.model.path for zone in self.zones))

    def zone_model(self, zone: ZoneConfig) -> ModelConfig:
        """The model a zone classifies with: its own keys, the rest the top level's."""
        own = {key: value for key, value in dataclasses.asdict(zone.model).items()
               if value is not None}
        return dataclasses.replace(self.model, **own) if own else self.model

    def zone_outputs(self, zone: ZoneConfig) -> OutputsConfig:
        """The rules a zone's results go through: its own, the rest the outputs'."""
        own = {key: getattr(zone, key) for key in _ZONE_RULES if getattr(zone, key) is not None}
        return dataclasses.replace(self.outputs, **own) if own else self.outputs

    def zone_motion(self, zone: ZoneConfig) -> MotionConfig:
        """The motion gate of a zone: its own keys, the rest pipeline.motion's."""
        return zone_motion(self.pipeline.motion, zone.motion)


_ZONE_RULES = ("min_score", "emit", "labels_allow", "labels_deny", "thresholds")
