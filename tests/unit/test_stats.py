"""Pipeline statistics (edgecam/core/stats.py): counts, drops, rates, percentiles, gauges, STATUS=.

Rates are driven by explicit `tick(now)` times, so nothing here depends on the clock.
"""

from __future__ import annotations

import threading

import pytest

from edgecam.core.stats import (
    BEHIND_STATUS_MS,
    DROP_REASONS,
    LATENCY_WINDOW,
    RATE_WINDOW_S,
    Stats,
    status_line,
)


def test_counts_show_up_in_their_sections_of_the_figures() -> None:
    stats = Stats()
    stats.count("captured", 7)
    stats.count("captured")
    stats.count("stalls", 2)
    stats.count("source_lost")
    stats.count("reconnects", 3)
    stats.count("emitted", 4)
    stats.count("output_queue_dropped", 5)
    stats.classified(10.0, 5.0)
    assert stats.get("captured") == 8 and stats.get("classified") == 1
    assert stats.get("source_errors") == 0, "a counter never counted is 0"
    figures = stats.figures()
    assert figures["frames"]["captured"] == 8 and figures["frames"]["classified"] == 1
    assert (figures["source"]["stalls"], figures["source"]["source_lost"],
            figures["source"]["reconnects"], figures["source"]["abandoned_reads"]) == (2, 1, 3, 0)
    assert figures["outputs"]["emitted"] == 4
    assert figures["outputs"]["queue_dropped"] == 5
    assert figures["uptime_s"] >= 0


def test_drops_are_counted_by_reason_and_in_total() -> None:
    stats = Stats()
    for reason, times in (("stale", 2), ("bad_frame", 1), ("overwritten", 4)):
        for _ in range(times):
            stats.drop(reason)
    assert stats.get("dropped_stale") == 2
    frames = stats.figures()["frames"]
    assert set(frames["dropped_by_reason"]) == set(DROP_REASONS)
    expected = {"stale": 2, "bad_frame": 1, "overwritten": 4}
    assert frames["dropped_by_reason"] == {reason: expected.get(reason, 0) for reason in DROP_REASONS}
    assert frames["dropped"] == 7


def test_counts_from_many_threads_are_exact() -> None:
    stats = Stats()

    def hammer() -> None:
        for _ in range(5000):
            stats.count("captured")
            stats.drop("overwritten")

    threads = [threading.Thread(target=hammer, name=f"test-hammer-{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert stats.get("captured") == stats.get("dropped_overwritten") == 40_000


def test_rates_come_from_the_ticks_over_the_rate_window() -> None:
    stats = Stats()
    assert stats.figures()["rates"] == {"input_fps": 0.0, "classified_fps": 0.0}
    stats.tick(now=1000.0)
    assert stats.figures()["rates"] == {"input_fps": 0.0, "classified_fps": 0.0}, "one sample: no rate"
    for second in range(1, 21):
        stats.count("captured", 30)
        for _ in range(10):
            stats.classified(50.0, 20.0)
        stats.tick(now=1000.0 + second)
    assert stats.figures()["rates"] == {"input_fps": 30.0, "classified_fps": 10.0}
    # The source stops: the rates fall as the window moves past the busy seconds.
    stats.tick(now=1020.0 + RATE_WINDOW_S / 2)
    halfway = stats.figures()["rates"]
    assert 0 < halfway["input_fps"] < 30.0 and 0 < halfway["classified_fps"] < 10.0
    stats.tick(now=1020.0 + 2 * RATE_WINDOW_S)
    stats.tick(now=1020.0 + 3 * RATE_WINDOW_S)
    assert stats.figures()["rates"] == {"input_fps": 0.0, "classified_fps": 0.0}


def test_latency_and_inference_percentiles() -> None:
    stats = Stats()
    empty = stats.figures()
    assert empty["latency_ms"] == empty["inference_ms"] == {"p50": None, "p99": None}
    for ms in range(1, 101):
        stats.classified(float(ms), float(ms) / 10)
    figures = stats.figures()
    assert figures["latency_ms"] == {"p50": 50.5, "p99": 99.01}
    assert figures["inference_ms"] == {"p50": 5.05, "p99": 9.9}


def test_percentiles_cover_only_the_latest_results() -> None:
    stats = Stats()
    for _ in range(LATENCY_WINDOW):
        stats.classified(1000.0, 1000.0)
    for _ in range(LATENCY_WINDOW):
        stats.classified(20.0, 10.0)
    figures = stats.figures()
    assert figures["latency_ms"] == {"p50": 20.0, "p99": 20.0}
    assert figures["inference_ms"] == {"p50": 10.0, "p99": 10.0}
    assert figures["frames"]["classified"] == 2 * LATENCY_WINDOW


def test_gauges_are_reported_while_set_and_absent_once_cleared() -> None:
    stats = Stats()
    figures = stats.figures()
    assert figures["source"]["behind_ms"] is None, "null where the source cannot tell"
    assert figures["outputs"]["mqtt_connected"] is None, "null without an MQTT output"
    assert figures["outputs"]["socket_clients"] == 0
    stats.set_gauge("behind_ms", 1234.5678)
    stats.set_gauge("mqtt_connected", 1)
    stats.set_gauge("socket_clients", 3)
    figures = stats.figures()
    assert figures["source"]["behind_ms"] == 1234.6
    assert figures["outputs"]["mqtt_connected"] is True
    assert figures["outputs"]["socket_clients"] == 3
    stats.set_gauge("mqtt_connected", 0)
    assert stats.figures()["outputs"]["mqtt_connected"] is False
    stats.clear_gauge("behind_ms")
    stats.clear_gauge("mqtt_connected")
    stats.clear_gauge("mqtt_connected")  # clearing twice is fine
    figures = stats.figures()
    assert figures["source"]["behind_ms"] is None and figures["outputs"]["mqtt_connected"] is None
    assert stats.values()[1] == {"socket_clients": 3}


def test_values_are_copies_read_at_once() -> None:
    stats = Stats()
    stats.count("captured", 2)
    counts, gauges = stats.values()
    stats.count("captured")
    assert counts["captured"] == 2 and stats.get("captured") == 3
    assert gauges == {}


def test_observers_see_every_classified_frame_and_cannot_break_it() -> None:
    stats = Stats()
    seen: list[tuple[float, float]] = []

    def broken(latency_ms: float, inference_ms: float) -> None:
        raise RuntimeError("histogram bug")

    stats.observe(lambda latency_ms, inference_ms: seen.append((latency_ms, inference_ms)))
    stats.observe(broken)
    stats.classified(12.0, 3.0)
    assert seen == [(12.0, 3.0)]
    assert stats.get("classified") == 1 and stats.get("output_errors") == 1
    stats.unobserve(broken)
    stats.classified(13.0, 4.0)
    assert stats.get("output_errors") == 1 and len(seen) == 2


def _figures(**changes) -> dict:
    stats = Stats()
    stats.count("captured", 25)
    stats.drop("stale")
    stats.drop("overwritten")
    for ms in (40.0, 41.0, 42.0):
        stats.classified(ms, 30.0)
    stats.set_gauge("socket_clients", 2)
    for name, value in changes.items():
        stats.set_gauge(name, value)
    stats.tick(now=0.0)
    stats.count("captured", 25)
    stats.classified(43.0, 30.0)
    stats.tick(now=2.0)
    return stats.figures()


def test_status_line_summarises_the_figures() -> None:
    figures = _figures()
    p99 = figures["latency_ms"]["p99"]
    assert status_line(figures, "Egyptian cat") == (
        f"0.5 fps classified of 12.5 captured, dropped 2, p99 {p99:.0f} ms, 2 client(s), last: Egyptian cat")
    assert status_line(figures, None).endswith("2 client(s)")


def test_status_line_before_any_result() -> None:
    assert status_line(Stats().figures(), None) == (
        "0.0 fps classified of 0.0 captured, dropped 0, no results yet, 0 client(s)")


@pytest.mark.parametrize(("behind_ms", "shown"), [
    (BEHIND_STATUS_MS - 1, None),
    (BEHIND_STATUS_MS, "0.5 s behind live"),
    (3456.0, "3.5 s behind live"),
])
def test_status_line_names_a_stream_far_behind_live(behind_ms: float, shown: str | None) -> None:
    line = status_line(_figures(behind_ms=behind_ms), None)
    if shown is None:
        assert "behind live" not in line
    else:
        assert line.endswith(f", {shown}")


def test_status_line_names_an_unreachable_broker() -> None:
    line = status_line(_figures(mqtt_connected=0), "macaw")
    assert line.endswith(", MQTT broker unreachable, last: macaw")
    assert "MQTT" not in status_line(_figures(mqtt_connected=1), None)
    assert "MQTT" not in status_line(_figures(), None), "no MQTT output: nothing to say"


def test_status_line_names_what_slows_the_board_down() -> None:
    assert "°C" not in status_line(_figures(temperature_c=48.0, throttled=0), None), "healthy: quiet"
    line = status_line(_figures(temperature_c=82.4, throttled=1, under_voltage=0), "macaw")
    assert line.endswith(", throttled, 82 °C, last: macaw")
    line = status_line(_figures(temperature_c=61.0, under_voltage=1, throttled=1, soft_temp_limit=1), None)
    assert line.endswith(", under-voltage, throttled, soft temperature limit, 61 °C")
    assert status_line(_figures(under_voltage=1), None).endswith(", under-voltage"), "no temperature"
    assert "capped" not in status_line(_figures(freq_capped=1), None)
