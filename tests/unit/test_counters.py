"""One table of counters: the stats message and /metrics both report every entry, nothing else is counted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgecam.core.counters import (
    COUNTERS,
    DROP_REASONS,
    GAUGES,
    KNOWN_COUNTERS,
    KNOWN_GAUGES,
    ZONE_COUNTERS,
)
from edgecam.core.stats import Stats
from edgecam.outputs.metrics import _StatsCollector

PACKAGE = Path(__file__).resolve().parents[2] / "edgecam"


def counted_stats() -> Stats:
    stats = Stats()
    for n, counter in enumerate(COUNTERS, 1):
        stats.count(counter.key, n)
    for n, reason in enumerate(DROP_REASONS, 1):
        stats.count(f"dropped_{reason}", 100 * n)
    for n, gauge in enumerate(GAUGES, 1):
        stats.set_gauge(gauge.key, n)
    return stats


def test_every_counter_and_gauge_is_in_the_stats_message() -> None:
    figures = counted_stats().figures()
    for n, counter in enumerate(COUNTERS, 1):
        assert figures[counter.section][counter.field] == n, counter
    assert figures["frames"]["dropped_by_reason"] == {r: 100 * n for n, r in enumerate(DROP_REASONS, 1)}
    assert figures["frames"]["dropped"] == sum(100 * n for n in range(1, len(DROP_REASONS) + 1))
    for n, gauge in enumerate(GAUGES, 1):
        assert figures[gauge.section][gauge.field] == gauge.shown(n), gauge


def test_every_counter_and_gauge_is_exported_to_prometheus() -> None:
    families = {family.name: family for family in _StatsCollector(counted_stats()).collect()}
    for n, counter in enumerate(COUNTERS, 1):
        assert families[counter.metric].samples[0].value == n, counter  # exported as <metric>_total
    dropped = {s.labels["reason"]: s.value for s in families["edgecam_frames_dropped"].samples}
    assert dropped == {r: 100 * n for n, r in enumerate(DROP_REASONS, 1)}
    for n, gauge in enumerate(GAUGES, 1):
        assert families[gauge.metric].samples[0].value == pytest.approx(n * gauge.factor), gauge


def test_gauges_nobody_set_are_reported_as_absent() -> None:
    figures = Stats().figures()
    for gauge in GAUGES:
        assert figures[gauge.section][gauge.field] == gauge.absent
    names = {family.name for family in _StatsCollector(Stats()).collect()}
    assert {g.metric for g in GAUGES if g.absent is None}.isdisjoint(names)


def zoned_stats() -> Stats:
    stats = Stats()
    stats.set_zones(["door", "feeder"])
    for n, counter in enumerate(ZONE_COUNTERS, 1):
        for _ in range(n):
            stats.count_zone("door", counter.key)
        for _ in range(10 * n):
            stats.count_zone("feeder", counter.key)
    return stats


def test_every_zone_counter_is_in_the_stats_message_and_exported_with_a_zone_label() -> None:
    stats = zoned_stats()
    figures = stats.figures()
    families = {family.name: family for family in _StatsCollector(stats).collect()}
    for n, counter in enumerate(ZONE_COUNTERS, 1):
        assert figures[counter.section]["door"][counter.field] == n, counter
        assert figures[counter.section]["feeder"][counter.field] == 10 * n, counter
        assert {s.labels["zone"]: s.value for s in families[counter.metric].samples} == {
            "door": n, "feeder": 10 * n}, counter


def test_without_zones_nothing_is_counted_or_exported_per_zone() -> None:
    stats = counted_stats()
    assert "zones" not in stats.figures()
    names = {family.name for family in _StatsCollector(stats).collect()}
    assert names.isdisjoint(c.metric for c in ZONE_COUNTERS)


def test_a_zone_a_reload_removed_is_no_longer_counted_or_exported() -> None:
    stats = zoned_stats()
    stats.set_zones(["door"])
    stats.count_zone("feeder", "emitted")  # a result still on its way
    assert set(stats.figures()["zones"]) == {"door"}
    families = {family.name: family for family in _StatsCollector(stats).collect()}
    assert {s.labels["zone"] for c in ZONE_COUNTERS for s in families[c.metric].samples} == {"door"}
    stats.set_zones(["door", "feeder"])
    assert stats.figures()["zones"]["feeder"] == {c.field: 0 for c in ZONE_COUNTERS}


def test_a_name_outside_the_table_is_refused() -> None:
    with pytest.raises(KeyError, match=r"core\.counters"):
        Stats().count("socket_rebind")  # a typo must not count silently, unreported
    with pytest.raises(KeyError, match=r"core\.counters"):
        Stats().set_gauge("behind", 1.0)
    with pytest.raises(KeyError, match=r"core\.counters"):
        Stats().count_zone("door", "classifed")


def test_every_name_the_code_counts_is_in_the_table() -> None:
    calls = re.compile(r"\.(count|drop|set_gauge|clear_gauge)\(\s*\"([a-z_]+)\"")
    found = {(kind, name) for path in PACKAGE.rglob("*.py")
             for kind, name in calls.findall(path.read_text())}
    assert found, "the pattern finds the calls"
    for kind, name in found:
        if kind == "count":
            assert name in KNOWN_COUNTERS, name
        elif kind == "drop":
            assert name in DROP_REASONS, name
        else:
            assert name in KNOWN_GAUGES, name
