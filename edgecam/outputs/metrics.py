"""Prometheus metrics: `/metrics` over HTTP, in the text format, with prometheus-client.

Counters and gauges are read from Stats when Prometheus scrapes (one source of
truth with the socket's stats messages, nothing counted twice). The two
histograms are fed from Stats as well: it hands every classified frame's
latency and inference time to an observer, so they cover every classified
frame, not only the emitted ones. As an output, this also sees each emitted
result, for the last label (with zones, also each zone's, labelled `zone`, as
are the zones' counters; nothing is labelled `zone` without zones). The
registry is private (nothing from other libraries leaks in) and has
prometheus-client's process collector: RSS, CPU seconds, open files, start
time.

One `edgecam-metrics` thread serves HTTP (a thread per request, capped, and
only for the Host names that name it: outputs.metrics_http); close() stops it
and frees the port, on daemon stop and when a reload removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from edgecam import __version__
from edgecam.common.hosts import HostCheck
from edgecam.common.worker import Worker
from edgecam.config import Config, split_listen
from edgecam.core.counters import COUNTERS, DROP_REASONS, GAUGES, MODEL_VERSION_METRIC, ZONE_COUNTERS
from edgecam.core.results import Result
from edgecam.core.stats import Stats
from edgecam.errors import EdgecamError, ListenError
from edgecam.outputs import metrics_http
from edgecam.outputs.base import Output

log = logging.getLogger(__name__)

INFERENCE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)

def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise EdgecamError("outputs.metrics needs prometheus-client: pip install 'edgecam[metrics]'"
                           ) from None
    return prometheus_client


class _StatsCollector:
    """Exports the Stats counters and gauges as they are at scrape time."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts, gauges = self._stats.values()
        for counter in COUNTERS:
            yield CounterMetricFamily(counter.metric, counter.help, value=counts.get(counter.key, 0))
        dropped = CounterMetricFamily("edgecam_frames_dropped", "Frames dropped, never classified",
                                      labels=["reason"])
        for reason in DROP_REASONS:
            dropped.add_metric([reason], counts.get(f"dropped_{reason}", 0))
        yield dropped
        for gauge in GAUGES:
            value = gauges.get(gauge.key, gauge.absent)
            if value is not None:
                yield GaugeMetricFamily(gauge.metric, gauge.help, value=value * gauge.factor)
        version = self._stats.model_version
        if version is not None:
            from prometheus_client.core import InfoMetricFamily

            yield InfoMetricFamily(MODEL_VERSION_METRIC, "The version of the model a fleet rollout "
                                   "installed", value={"version": version})
        zones = self._stats.zone_counts()
        if zones:
            for counter in ZONE_COUNTERS:
                family = CounterMetricFamily(counter.metric, counter.help, labels=["zone"])
                for zone, counts in zones.items():
                    family.add_metric([zone], counts[counter.key])
                yield family


class _ZoneResults:
    """Each configured zone's last emitted result, at scrape time (nothing without zones).

    `emit` (the dispatcher thread) sets one entry, `set_zones` (a reload) replaces both
    attributes, `collect` (an HTTP thread) copies them once: each step is atomic, so no lock.
    A zone a reload removed is left out, even if a result of it was still on its way.
    """

    def __init__(self) -> None:
        self.zones: tuple[str, ...] = ()
        self.last: dict[str, Result] = {}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

        last, zones = dict(self.last), self.zones
        shown = [(zone, last[zone]) for zone in zones if zone in last]
        if not shown:
            return
        info = InfoMetricFamily("edgecam_zone_last_result", "Each zone's last emitted result's "
                                "top label", labels=["zone"])
        score = GaugeMetricFamily("edgecam_zone_last_result_score",
                                  "Each zone's last emitted result's top score", labels=["zone"])
        when = GaugeMetricFamily("edgecam_zone_last_result_timestamp_seconds",
                                 "Capture time of each zone's last emitted result", labels=["zone"])
        for zone, result in shown:
            info.add_metric([zone], {"label": result.top.label, "index": str(result.top.index)})
            score.add_metric([zone], result.top.score)
            when.add_metric([zone], result.ts)
        yield from (info, score, when)


class MetricsOutput(Output):
    """Serves /metrics at `listen`; start() binds (one clear line if it cannot), close() unbinds."""

    name = "metrics"
    stats_interval_s = 0.0

    def __init__(self, listen: str, stats: Stats, allowed_hosts: tuple[str, ...] = ()) -> None:
        prometheus = _prometheus()
        self.listen = listen
        self._stats = stats
        self._hosts = HostCheck(split_listen(listen)[0], allowed_hosts)
        registry = self.registry = prometheus.CollectorRegistry(auto_describe=False)
        prometheus.ProcessCollector(registry=registry)
        prometheus.PlatformCollector(registry=registry)
        registry.register(_StatsCollector(stats))
        self._zones = _ZoneResults()
        registry.register(self._zones)
        prometheus.Info("edgecam_build", "edgecam's version", registry=registry).info(
            {"version": __version__})
        self._inference = prometheus.Histogram(
            "edgecam_inference_seconds", "Preprocessing plus inference, per classified frame",
            buckets=INFERENCE_BUCKETS_S, registry=registry)
        self._latency = prometheus.Histogram(
            "edgecam_latency_seconds", "Capture to result (end-to-end), per classified frame",
            buckets=LATENCY_BUCKETS_S, registry=registry)
        # With zones: the last result of any zone (each zone's own: _ZoneResults).
        self._last = prometheus.Info("edgecam_last_result", "The last emitted result's top label",
                                     registry=registry)
        self._last_score = prometheus.Gauge("edgecam_last_result_score",
                                            "The last emitted result's top score", registry=registry)
        self._last_time = prometheus.Gauge("edgecam_last_result_timestamp_seconds",
                                           "Capture time of the last emitted result",
                                           registry=registry)
        self._server: metrics_http.MetricsServer | None = None
        self._worker: Worker | None = None

    def start(self) -> None:
        self._serve(self.listen)
        self._stats.observe(self._observe)

    def reusable(self, config: Config) -> bool:
        # Another address is a new exporter: it binds while this one still serves, so a port
        # that cannot be bound refuses the reload and this one goes on.
        return config.outputs.metrics.listen == self.listen

    def reconfigure(self, config: Config) -> None:
        self._hosts = HostCheck(split_listen(self.listen)[0], config.outputs.metrics.allowed_hosts)

    # -- the Output protocol -----------------------------------------------------------------

    def set_zones(self, zones: tuple[str, ...]) -> None:
        self._zones.last = {zone: r for zone, r in self._zones.last.items() if zone in zones}
        self._zones.zones = zones

    def emit(self, result: Result) -> None:
        top = result.top
        self._last.info({"label": top.label, "index": str(top.index)})
        self._last_score.set(top.score)
        self._last_time.set(result.ts)
        if result.zone in self._zones.zones:
            self._zones.last[result.zone] = result

    def stats(self, figures: dict[str, Any]) -> None:
        """Nothing to push: Prometheus pulls."""

    def close(self) -> None:
        self._stats.unobserve(self._observe)
        self._unserve()

    # -- internals ---------------------------------------------------------------------------

    def _observe(self, latency_ms: float, inference_ms: float) -> None:
        self._latency.observe(latency_ms / 1000)
        self._inference.observe(inference_ms / 1000)

    def _serve(self, listen: str) -> None:
        host, port = split_listen(listen)
        handler = metrics_http.handler_class(_prometheus().MetricsHandler, self.registry)
        try:
            server = metrics_http.bind(host, port, handler, self._stats, lambda: self._hosts)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ListenError(f"outputs.metrics.listen: cannot serve on {listen}: {reason}") from None
        self._server = server
        self._worker = Worker("edgecam-metrics", lambda _stop: server.serve_forever(poll_interval=0.5))
        self._worker.start()
        log.info("metrics: serving http://%s/metrics", listen)

    def _unserve(self) -> None:
        server, worker, self._server, self._worker = self._server, self._worker, None, None
        if server is None:
            return
        server.shutdown()  # serve_forever returns
        server.server_close()
        if worker is not None:
            worker.stop(1.0)
