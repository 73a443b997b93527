"""Prometheus metrics from the real daemon: scraped over HTTP, parsed with prometheus-client's parser.

Waits only bound hangs; no assertion measures speed.
"""

from __future__ import annotations

import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from brokers import free_port
from conftest import run_edgecam
from harness import EXPECTED_TOP1, base_config, wait_for, write_config

from edgecam.core.stats import DROP_REASONS
from edgecam.errors import EX_CONFIG, EX_UNAVAILABLE

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families


def metrics_config(tmp_path: Path, port: int, **outputs: Any) -> dict[str, Any]:
    return base_config(tmp_path, outputs={"metrics": {"enabled": True, "listen": f"127.0.0.1:{port}"},
                                          **outputs})


def get(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


class Scrape:
    """One /metrics page, parsed."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}

    def value(self, sample_name: str, **labels: str) -> float:
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        raise KeyError(f"{sample_name} {labels or ''} is not in the scrape")

    def type(self, family: str) -> str:
        return self.families[family].type


def scrape(port: int) -> Scrape:
    status, content_type, text = get(port)
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    return Scrape(text)


def serving(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def test_metrics_move_during_a_run_and_parse(tmp_path: Path, daemons) -> None:
    """min_score 0.99 lets only the macaw through: the histograms must still count every frame."""
    port = free_port()
    daemon = daemons(metrics_config(tmp_path, port, min_score=0.99, emit="on_change"))
    client = daemon.client()
    client.messages("classification", 1)
    wait_for(lambda: serving(port), 30, "the metrics server")
    wait_for(lambda: scrape(port).value("edgecam_socket_clients") == 1, 30, "the socket client counted")
    first = scrape(port)
    second = wait_for(lambda: (lambda s: s if s.value("edgecam_frames_classified_total")
                               > first.value("edgecam_frames_classified_total") + 10 else None)(
        scrape(port)), 60, "the classified counter to move")

    for name in ("edgecam_frames_captured", "edgecam_frames_classified", "edgecam_frames_dropped",
                 "edgecam_results_emitted", "edgecam_source_stalls", "edgecam_source_reconnects",
                 "edgecam_mqtt_dropped", "process_cpu_seconds"):
        assert second.type(name) == "counter", name
    for name in ("edgecam_inference_seconds", "edgecam_latency_seconds"):
        assert second.type(name) == "histogram", name
    assert second.value("edgecam_frames_captured_total") > first.value("edgecam_frames_captured_total")
    assert {s.labels["reason"] for s in second.families["edgecam_frames_dropped"].samples} == set(
        DROP_REASONS)

    # Every classified frame is observed, not only the emitted ones (a third of them here).
    classified = second.value("edgecam_frames_classified_total")
    emitted = second.value("edgecam_results_emitted_total")
    for histogram in ("edgecam_inference_seconds", "edgecam_latency_seconds"):
        count = second.value(f"{histogram}_count")
        assert abs(count - classified) <= 5, (histogram, count, classified)
        assert count > emitted
        assert second.value(f"{histogram}_bucket", le="+Inf") == count
        assert 0 < second.value(f"{histogram}_sum") < count * 60
    assert second.value("edgecam_last_result_info", label="macaw", index="89") == 1
    assert 0.99 <= second.value("edgecam_last_result_score") <= 1
    assert second.value("edgecam_socket_clients") == 1
    assert "edgecam_mqtt_connected" not in second.families  # no MQTT output: not 0, absent
    assert not [name for name in second.families if name.startswith("edgecam_zone_")]  # no zones
    assert second.value("process_resident_memory_bytes") > 0
    assert second.value("process_cpu_seconds_total") > 0
    assert second.value("edgecam_build_info", version=__import__("edgecam").__version__) == 1

    assert get(port, "/elsewhere")[0] == 404
    assert get(port, "/")[0] == 200
    assert daemon.stop() == 0
    assert not serving(port), "the metrics server stops with the daemon"


def test_mqtt_connection_state(tmp_path: Path, daemons, mosquitto) -> None:
    pytest.importorskip("paho.mqtt.client")
    broker = mosquitto()
    port = free_port()
    config = metrics_config(tmp_path, port, mqtt={"enabled": True, "host": "127.0.0.1",
                                                  "port": broker.port, "keepalive_s": 2})
    daemon = daemons(config)
    daemon.wait_socket()
    wait_for(lambda: serving(port), 30, "the metrics server")
    # The MQTT output starts after the metrics server (last, as it replaces a connection): until
    # then the gauge is absent, which is not yet 0 or 1.
    wait_for(lambda: "edgecam_mqtt_connected" in scrape(port).families, 30, "the mqtt_connected gauge")
    wait_for(lambda: scrape(port).value("edgecam_mqtt_connected") == 1, 60, "mqtt_connected 1")
    wait_for(lambda: scrape(port).value("edgecam_mqtt_published_total") > 0, 60, "results published")
    broker.stop()
    wait_for(lambda: scrape(port).value("edgecam_mqtt_connected") == 0, 60, "mqtt_connected 0")
    assert daemon.stop() == 0


def test_reload_moves_removes_and_restores_the_server(tmp_path: Path, daemons) -> None:
    first, second, third = free_port(), free_port(), free_port()
    config = metrics_config(tmp_path, first)
    daemon = daemons(config)
    daemon.client().messages("classification", 1)
    wait_for(lambda: serving(first), 30, "the metrics server")

    def reload(listen: str | None, expect: str = "reloaded: outputs") -> None:
        if listen is None:
            config["outputs"]["metrics"] = {"enabled": False}
        else:
            config["outputs"]["metrics"] = {"enabled": True, "listen": listen}
        write_config(daemon.config_path, config)
        before = daemon.log().count(expect)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.log().count(expect) > before, 30, f"the reload ({expect})")

    reload(f"127.0.0.1:{second}")  # moved: the same instance, its histograms go on
    assert not serving(first)
    count = scrape(second).value("edgecam_latency_seconds_count")
    assert count > 0

    occupied = socket.socket()
    occupied.bind(("127.0.0.1", third))
    occupied.listen()
    try:
        reload(f"127.0.0.1:{third}", expect="reload refused")
        assert "outputs.metrics.listen: cannot serve on 127.0.0.1:" in daemon.log()
        assert scrape(second).value("edgecam_latency_seconds_count") >= count  # still where it was
    finally:
        occupied.close()

    reload(None)  # removed: the port is freed
    wait_for(lambda: not serving(second), 30, "the port to be freed")
    reload(f"127.0.0.1:{first}")
    wait_for(lambda: serving(first), 30, "the metrics server again")
    assert scrape(first).value("edgecam_frames_classified_total") > 0
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()


def test_a_port_in_use_stops_the_start_with_one_line(tmp_path: Path, daemons) -> None:
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        port = occupied.getsockname()[1]
        daemon = daemons(metrics_config(tmp_path, port))
        assert daemon.proc.wait(60) == EX_UNAVAILABLE
    log = daemon.log()
    assert f"outputs.metrics.listen: cannot serve on 127.0.0.1:{port}: Address already in use" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(("listen", "problem"), [
    ("localhost", "is not HOST:PORT"),
    ("127.0.0.1:99999", "port 99999 is out of range (1..65535)"),
    ("::1:9464", "for IPv6: [ADDRESS]:PORT"),
    ("http://x:80", "is a URL"),
])
def test_bad_listen_addresses_are_config_errors(tmp_path: Path, listen: str, problem: str) -> None:
    path = tmp_path / "edgecam.yaml"
    path.write_text(f"outputs:\n  metrics:\n    enabled: true\n    listen: \"{listen}\"\n")
    result = run_edgecam("check-config", "-c", path)
    assert result.returncode == EX_CONFIG
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{path}:4: outputs.metrics.listen: ") and problem in line, line


ZONES = [{"name": "door", "crop": [0.0, 0.0, 1.0, 1.0]},
         {"name": "feeder", "crop": [0.1, 0.1, 0.8, 0.8]}]
ZONE_FAMILIES = ("edgecam_zone_frames_classified", "edgecam_zone_results_emitted",
                 "edgecam_zone_last_result_info", "edgecam_zone_last_result_score",
                 "edgecam_zone_last_result_timestamp_seconds")


def zones_of(scrape: Scrape, family: str) -> set[str]:
    """The zones `family` has samples for; none while it is absent (no zone result reached the
    metrics output yet: it is fed by the dispatcher's thread, after the socket has the result)."""
    found = scrape.families.get(family)
    return {sample.labels["zone"] for sample in found.samples} if found is not None else set()


def test_zones_are_labelled_and_follow_a_reload(tmp_path: Path, daemons) -> None:
    port = free_port()
    config = metrics_config(tmp_path, port)
    config["zones"] = ZONES
    daemon = daemons(config)
    client = daemon.client()
    client.messages("classification", 1)
    wait_for(lambda: serving(port), 30, "the metrics server")
    first = wait_for(lambda: (lambda s: s if zones_of(s, "edgecam_zone_last_result_score") == {
        "door", "feeder"} else None)(scrape(port)), 60, "both zones' last results")
    assert first.type("edgecam_zone_frames_classified") == "counter"
    assert first.type("edgecam_zone_results_emitted") == "counter"
    for family in ZONE_FAMILIES:
        assert zones_of(first, family) == {"door", "feeder"}, family
    for zone in ("door", "feeder"):
        classified = first.value("edgecam_zone_frames_classified_total", zone=zone)
        emitted = first.value("edgecam_zone_results_emitted_total", zone=zone)
        assert classified >= emitted > 0
        assert classified <= first.value("edgecam_frames_classified_total") + 5
        assert 0 < first.value("edgecam_zone_last_result_score", zone=zone) <= 1
        assert first.value("edgecam_zone_last_result_timestamp_seconds", zone=zone) > 0
    [door] = [sample for sample in first.families["edgecam_zone_last_result_info"].samples
              if sample.labels["zone"] == "door"]
    assert door.labels["label"] in set(EXPECTED_TOP1.values()) and door.value == 1
    # Counters go on between two scrapes; the whole frame's counters are still there.
    later = wait_for(lambda: (lambda s: s if s.value("edgecam_zone_frames_classified_total", zone="door")
                              > first.value("edgecam_zone_frames_classified_total", zone="door")
                              else None)(scrape(port)), 60, "door's counter to move")
    assert later.value("edgecam_results_emitted_total") >= sum(
        later.value("edgecam_zone_results_emitted_total", zone=z) for z in ("door", "feeder")) - 5

    def reload(zones: list[dict[str, Any]]) -> Scrape:
        config["zones"] = zones
        write_config(daemon.config_path, config)
        before = daemon.log().count("reloaded: zones")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.log().count("reloaded: zones") > before, 30, "the reload")
        return scrape(port)

    fewer = reload(ZONES[:1])  # feeder goes from every zone family at once
    for family in ZONE_FAMILIES:
        assert zones_of(fewer, family) == {"door"}, family
    none = reload([])
    assert not [name for name in none.families if name.startswith("edgecam_zone_")]
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()
