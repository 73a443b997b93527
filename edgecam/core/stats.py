"""Pipeline statistics: counters, rates and latency percentiles, shared by every thread.

One lock guards everything; each update is a few dictionary operations, so
the capture and inference threads never wait on it for long. Rates are
measured over the last RATE_WINDOW_S seconds from samples the service loop
takes with `tick()`; percentiles over the last LATENCY_WINDOW results.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgecam.core.counters import (
    COUNTERS,
    DROP_REASONS,
    GAUGES,
    KNOWN_COUNTERS,
    KNOWN_GAUGES,
    KNOWN_ZONE_COUNTERS,
    ZONE_COUNTERS,
)

RATE_WINDOW_S = 10.0
BEHIND_STATUS_MS = 500.0  # a stream this far behind live is named in STATUS
LATENCY_WINDOW = 1000



class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._gauges: dict[str, float] = {}
        self._latency: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._inference: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._samples: deque[tuple[float, int, int]] = deque()
        #: called with (latency_ms, inference_ms) for every classified frame (the metrics' histograms)
        self._observers: tuple[Callable[[float, float], None], ...] = ()
        #: per zone, its classified and emitted results (only with zones: the stats' `zones`)
        self._zones: dict[str, Counter[str]] = {}
        self._model_version: str | None = None
        self.started = time.monotonic()

    def count(self, name: str, n: int = 1) -> None:
        if name not in KNOWN_COUNTERS:
            raise KeyError(f"{name!r} is not in core.counters: add it there, so it is reported")
        with self._lock:
            self._counts[name] += n

    def drop(self, reason: str) -> None:
        self.count(f"dropped_{reason}")

    def set_gauge(self, name: str, value: float) -> None:
        if name not in KNOWN_GAUGES:
            raise KeyError(f"{name!r} is not in core.counters: add it there, so it is reported")
        with self._lock:
            self._gauges[name] = value

    def set_zones(self, names: Sequence[str]) -> None:
        """The zones now configured (a reload may add or remove some; the others keep counting)."""
        with self._lock:
            self._zones = {name: self._zones.get(name, Counter()) for name in names}

    def count_zone(self, zone: str, kind: str) -> None:
        """A zone's result, `classified` or `emitted` (ZONE_COUNTERS). A zone no longer
        configured is not counted: a result in flight during a reload must not bring it back."""
        if kind not in KNOWN_ZONE_COUNTERS:
            raise KeyError(f"{kind!r} is not in core.counters: add it there, so it is reported")
        with self._lock:
            counter = self._zones.get(zone)
            if counter is not None:
                counter[kind] += 1

    def zone_counts(self) -> dict[str, dict[str, int]]:
        """Each configured zone's counts by ZONE_COUNTERS key (empty without zones)."""
        with self._lock:
            return {name: {c.key: kinds[c.key] for c in ZONE_COUNTERS}
                    for name, kinds in self._zones.items()}

    def set_model_version(self, version: str | None) -> None:
        """The rolled-out model's version now classifying (None: the config's own model)."""
        with self._lock:
            self._model_version = version

    @property
    def model_version(self) -> str | None:
        with self._lock:
            return self._model_version

    def clear_gauge(self, name: str) -> None:
        """Forgets a gauge (its output was removed): it is then reported as absent, not 0."""
        with self._lock:
            self._gauges.pop(name, None)

    def observe(self, observer: Callable[[float, float], None]) -> None:
        """Also hands every classified frame's (latency_ms, inference_ms) to `observer`."""
        with self._lock:
            self._observers = (*self._observers, observer)

    def unobserve(self, observer: Callable[[float, float], None]) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def classified(self, latency_ms: float, inference_ms: float) -> None:
        with self._lock:
            self._counts["classified"] += 1
            self._latency.append(latency_ms)
            self._inference.append(inference_ms)
            observers = self._observers
        for observer in observers:
            try:
                observer(latency_ms, inference_ms)
            except Exception:  # an output's bug must not reach the inference thread
                self.count("output_errors")

    def values(self) -> tuple[dict[str, int], dict[str, float]]:
        """Copies of every counter and gauge, read at once (what /metrics exports)."""
        with self._lock:
            return dict(self._counts), dict(self._gauges)

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def tick(self, now: float | None = None) -> None:
        """Samples the frame counters for the rates; call about once a second."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._samples.append((now, self._counts["captured"], self._counts["classified"]))
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
                self._samples.popleft()

    def figures(self) -> dict[str, Any]:
        """Everything, read at once, as the `stats` socket message carries it (without `type` and `ts`)."""
        with self._lock:
            counts = Counter(self._counts)
            latency = np.array(self._latency, dtype=np.float64)
            inference = np.array(self._inference, dtype=np.float64)
            samples = list(self._samples)
            gauges = dict(self._gauges)
            zones = {name: {c.field: kinds[c.key] for c in ZONE_COUNTERS}
                     for name, kinds in self._zones.items()}
            model_version = self._model_version
        input_fps = classified_fps = 0.0
        if len(samples) >= 2:
            (t0, cap0, cls0), (t1, cap1, cls1) = samples[0], samples[-1]
            if t1 > t0:
                input_fps, classified_fps = (cap1 - cap0) / (t1 - t0), (cls1 - cls0) / (t1 - t0)
        dropped = {reason: counts[f"dropped_{reason}"] for reason in DROP_REASONS}
        message: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - self.started, 1),
            "frames": {},
            "rates": {"input_fps": round(input_fps, 2), "classified_fps": round(classified_fps, 2)},
            "latency_ms": _percentiles(latency),
            "inference_ms": _percentiles(inference),
            "source": {},
            "outputs": {},
            "board": {},
            "fleet": {},
            "model_version": model_version,
        }
        for counter in COUNTERS:
            message[counter.section][counter.field] = counts[counter.key]
        message["frames"]["dropped"] = sum(dropped.values())
        message["frames"]["dropped_by_reason"] = dropped
        for gauge in GAUGES:
            value = gauges.get(gauge.key)
            message[gauge.section][gauge.field] = gauge.absent if value is None else gauge.shown(value)
        if zones:
            message["zones"] = zones
        return message


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if not values.size:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}


def status_line(figures: dict[str, Any], last_label: str | None) -> str:
    """The one-line summary `systemctl status edgecam` shows (sd_notify STATUS=)."""
    frames, rates = figures["frames"], figures["rates"]
    p99 = figures["latency_ms"]["p99"]
    parts = [f"{rates['classified_fps']:.1f} fps classified of {rates['input_fps']:.1f} captured",
             f"dropped {frames['dropped']}" + (f" ({still} still)" if (still := frames["dropped_by_reason"]
                                                                    .get("still")) else ""),
             f"p99 {p99:.0f} ms" if p99 is not None else "no results yet",
             f"{figures['outputs']['socket_clients']} client(s)"]
    behind = figures["source"].get("behind_ms")
    if behind is not None and behind >= BEHIND_STATUS_MS:
        parts.append(f"{behind / 1000:.1f} s behind live")
    if figures["outputs"].get("mqtt_connected") is False:
        parts.append("MQTT broker unreachable")
    parts += _board_troubles(figures["board"])
    if figures.get("model_version"):
        parts.append(f"model {figures['model_version']}")
    if last_label:
        parts.append(f"last: {last_label}")
    return ", ".join(parts)


def _board_troubles(board: dict[str, Any]) -> list[str]:
    """What slows the board down now, and then its temperature (which tells heat from power)."""
    troubles = [text for flag, text in (("under_voltage", "under-voltage"), ("throttled", "throttled"),
                                        ("soft_temp_limit", "soft temperature limit"))
                if board.get(flag)]
    if troubles and board.get("temperature_c") is not None:
        troubles.append(f"{board['temperature_c']:.0f} °C")
    return troubles
