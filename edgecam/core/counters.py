"""The one table of what the daemon counts, and where each figure is reported.

The socket's (and MQTT's) `stats` message, STATUS=, the journal's stats
line and Prometheus' /metrics are all derived from these tables, so a new
counter is added once, here, and cannot be forgotten by one of them
(tests/unit/test_counters.py checks every one is exported). Stats refuses to
count a name that is not in the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Counted:
    """A counter: its Stats key, its place in the stats message and its Prometheus name."""

    key: str
    section: str  # "frames", "source", "outputs", "board", "fleet" or "zones" in the stats message
    field: str
    metric: str  # without the _total suffix
    help: str


@dataclass(frozen=True)
class Gauge:
    """A gauge: like Counted, plus the factor to the metric's unit and the absent value."""

    key: str
    section: str
    field: str
    metric: str
    help: str
    factor: float = 1.0
    #: reported while nobody set it (an output that is off, a source that cannot tell): None is null
    absent: float | None = None
    #: the value as the stats message shows it
    shown: Callable[[float], Any] = float


#: why frames were not classified: `dropped_<reason>` in Stats, frames.dropped_by_reason in the message
#: sensor_skipped: frames the AI Camera delivered without a result (its sensor had none for them)
#: still: frames motion gating kept from the model, nothing in them having moved (pipeline.motion)
DROP_REASONS = ("overwritten", "undecoded", "skipped_to_keyframe", "stale", "bad_frame", "sensor_skipped",
                "still")

COUNTERS = (
    Counted("captured", "frames", "captured", "edgecam_frames_captured", "Frames the source delivered"),
    Counted("classified", "frames", "classified", "edgecam_frames_classified", "Frames classified"),
    Counted("stalls", "source", "stalls", "edgecam_source_stalls",
            "Times the source delivered nothing for camera.stall_timeout_s"),
    Counted("source_lost", "source", "source_lost", "edgecam_source_lost",
            "Times the source ended or failed and was reopened"),
    Counted("reconnects", "source", "reconnects", "edgecam_source_reconnects",
            "Attempts to reopen the source (each one, successful or not)"),
    Counted("source_errors", "source", "source_errors", "edgecam_source_errors",
            "Failed attempts to open the source"),
    Counted("abandoned_reads", "source", "abandoned_reads", "edgecam_source_abandoned_reads",
            "Reads that never returned, left behind"),
    Counted("emitted", "outputs", "emitted", "edgecam_results_emitted", "Results sent to the outputs"),
    Counted("socket_clients_dropped", "outputs", "socket_clients_dropped", "edgecam_socket_clients_dropped",
            "Socket clients disconnected for not reading"),
    Counted("socket_messages_dropped", "outputs", "socket_messages_dropped",
            "edgecam_socket_messages_dropped",
            "Socket messages a client did not get: it was disconnected for not reading"),
    Counted("socket_rebinds", "outputs", "socket_rebinds", "edgecam_socket_rebinds",
            "Times the socket file was recreated after its folder or file went away"),
    Counted("output_queue_dropped", "outputs", "queue_dropped", "edgecam_output_queue_dropped",
            "Results dropped because the outputs fell behind"),
    Counted("output_errors", "outputs", "output_errors", "edgecam_output_errors",
            "Failures inside an output"),
    Counted("mqtt_published", "outputs", "mqtt_published", "edgecam_mqtt_published",
            "Results published to the MQTT broker"),
    Counted("mqtt_dropped", "outputs", "mqtt_dropped", "edgecam_mqtt_dropped",
            "Results not published: the broker was away or too slow (oldest first)"),
    Counted("mqtt_reconnects", "outputs", "mqtt_reconnects", "edgecam_mqtt_reconnects",
            "Reconnections to the MQTT broker"),
    # Snapshots (edgecam/snapshots): every label change with snapshots on is one of these three.
    Counted("snapshots_saved", "outputs", "snapshots_saved", "edgecam_snapshots_saved",
            "Label changes whose frame was saved (a JPEG and its sidecar)"),
    Counted("snapshots_dropped", "outputs", "snapshots_dropped", "edgecam_snapshots_dropped",
            "Label changes not saved: frames were waiting for the writer already (or it was stopping, "
            "or the frame was cut to the model's input before a reload turned snapshots on)"),
    Counted("snapshots_failed", "outputs", "snapshots_failed", "edgecam_snapshots_failed",
            "Label changes not saved: the write failed (a full or read-only disk, no permission)"),
    Counted("snapshots_refused", "outputs", "snapshots_refused", "edgecam_snapshots_refused",
            "Snapshots the status page did not list or serve: a sidecar that does not check out (cut, "
            "garbage, not finite) or a JPEG that is empty or not a regular file (a symlink)"),
    # The status page (edgecam/web): its preview is encoded only while someone watches.
    Counted("web_preview_encoded", "outputs", "web_preview_encoded", "edgecam_web_preview_encoded",
            "Preview frames encoded for the status page (resized, zones drawn, JPEG)"),
    Counted("web_preview_dropped", "outputs", "web_preview_dropped",
            "edgecam_web_preview_frames_dropped",
            "Preview frames a /preview.mjpeg viewer did not get: it was still receiving the one before"),
    Counted("web_viewers_refused", "outputs", "web_viewers_refused", "edgecam_web_viewers_refused",
            "/preview.mjpeg viewers turned away (503): the most allowed were watching already"),
    Counted("web_viewers_stalled", "outputs", "web_viewers_stalled", "edgecam_web_viewers_stalled",
            "/preview.mjpeg viewers disconnected for taking no frame for a long while"),
    # Hostile neighbours (common.fds, web.guard, web.gate, common.hosts): what was turned away.
    Counted("web_connections_refused", "outputs", "web_connections_refused",
            "edgecam_web_connections_refused",
            "Connections to the status page turned away (503): the most allowed were all in use"),
    Counted("web_connections_dropped", "outputs", "web_connections_dropped",
            "edgecam_web_connections_dropped",
            "Connections to the status page closed before a request: none came in time, or a newer "
            "connection needed the place"),
    Counted("web_hosts_refused", "outputs", "web_hosts_refused", "edgecam_web_hosts_refused",
            "Status page requests refused (421): their Host named another site (DNS rebinding)"),
    Counted("web_logins_failed", "outputs", "web_logins_failed", "edgecam_web_logins_failed",
            "Wrong tokens given to the status page (the login form or a Bearer header)"),
    Counted("web_logins_limited", "outputs", "web_logins_limited", "edgecam_web_logins_limited",
            "Token checks refused (429): too many wrong tokens from that address, or in all"),
    Counted("socket_clients_refused", "outputs", "socket_clients_refused",
            "edgecam_socket_clients_refused",
            "Socket clients closed at once: the most allowed were connected"),
    Counted("metrics_requests_refused", "outputs", "metrics_requests_refused",
            "edgecam_metrics_requests_refused",
            "/metrics connections closed at once (the most allowed were open) or refused (421: "
            "their Host named another site)"),
    Counted("accept_failures", "outputs", "accept_failures", "edgecam_accept_failures",
            "Connections the socket, the page or /metrics could not accept: the process or the "
            "system was out of file descriptors (EMFILE, ENFILE)"),
    # The fleet (edgecam/fleet): what other members sent that this one did not use.
    Counted("fleet_heads_refused", "fleet", "heads_refused", "edgecam_fleet_heads_refused",
            "Members' heads not merged: another embedding extractor, or not a head"),
    Counted("fleet_rollouts_failed", "fleet", "rollouts_failed", "edgecam_fleet_rollouts_failed",
            "Model rollouts that did not switch: a checksum, a file that is not a model, a load"),
)

#: what each zone counts, with zones only: Stats.count_zone's kinds, the stats message's
#: zones.<name>.<field>, and /metrics' <metric>_total{zone="<name>"}
ZONE_COUNTERS = (
    Counted("classified", "zones", "classified", "edgecam_zone_frames_classified",
            "Frames in which this zone was classified"),
    Counted("emitted", "zones", "emitted", "edgecam_zone_results_emitted",
            "This zone's results sent to the outputs"),
    Counted("still", "zones", "still", "edgecam_zone_frames_still",
            "Frames in which this zone was due but not classified: nothing in it moved (motion gating)"),
)

GAUGES = (
    Gauge("socket_clients", "outputs", "socket_clients", "edgecam_socket_clients",
          "Clients connected to the results socket", absent=0, shown=int),
    Gauge("web_viewers", "outputs", "web_viewers", "edgecam_web_viewers",
          "Viewers of the status page's /preview.mjpeg stream", absent=0, shown=int),
    Gauge("web_connections", "outputs", "web_connections", "edgecam_web_connections",
          "Connections open to the status page", absent=0, shown=int),
    Gauge("mqtt_connected", "outputs", "mqtt_connected", "edgecam_mqtt_connected",
          "1 while connected to the MQTT broker, else 0 (absent without MQTT)", shown=bool),
    Gauge("behind_ms", "source", "behind_ms", "edgecam_source_behind_live_seconds",
          "How far behind live the last frame read from a live stream was", factor=0.001,
          shown=lambda ms: round(ms, 1)),
    # The board (daemon/board_watch.py): absent where it does not report them (flags: off a Pi).
    Gauge("temperature_c", "board", "temperature_c", "edgecam_cpu_temperature_celsius",
          "The CPU's temperature", shown=lambda c: round(c, 1)),
    Gauge("under_voltage", "board", "under_voltage", "edgecam_board_under_voltage",
          "1 while the Pi's firmware reports under-voltage (a weak power supply), else 0", shown=bool),
    Gauge("freq_capped", "board", "freq_capped", "edgecam_board_frequency_capped",
          "1 while the Pi's firmware caps the ARM frequency, else 0", shown=bool),
    Gauge("throttled", "board", "throttled", "edgecam_board_throttled",
          "1 while the Pi's firmware throttles the CPU, else 0", shown=bool),
    Gauge("soft_temp_limit", "board", "soft_temp_limit", "edgecam_board_soft_temperature_limit",
          "1 while the Pi is at its soft temperature limit, else 0", shown=bool),
    Gauge("fleet_members", "fleet", "members", "edgecam_fleet_members",
          "Other members whose heads this device merges (absent without the fleet)", shown=int),
)

#: the version of the model a fleet rollout installed (`model_version` in the stats message,
#: STATUS=, /metrics' edgecam_model_info{version=...}); null while the config's own model runs
MODEL_VERSION_METRIC = "edgecam_model"

KNOWN_COUNTERS = frozenset({c.key for c in COUNTERS} | {f"dropped_{r}" for r in DROP_REASONS})
KNOWN_GAUGES = frozenset(g.key for g in GAUGES)
KNOWN_ZONE_COUNTERS = frozenset(c.key for c in ZONE_COUNTERS)
