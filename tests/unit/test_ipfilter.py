"""The IP address filter derived from the config: what `edgecam ip-filter` writes, what is blocked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import run_edgecam

from edgecam.config import Config, parse_config
from edgecam.daemon import ipfilter


def config(text: str) -> Config:
    return parse_config(text, "edgecam.yaml")


def mqtt(host: str) -> str:
    return f"outputs:\n  mqtt:\n    enabled: true\n    host: \"{host}\"\n"


def metrics(listen: str) -> str:
    return f"outputs:\n  metrics:\n    enabled: true\n    listen: \"{listen}\"\n"


def web(listen: str) -> str:
    """The status page on `listen`, with a token (a page beyond loopback needs one)."""
    return f"web:\n  enabled: true\n  listen: \"{listen}\"\n  token_file: {__file__}\n"


def source(url: str) -> str:
    return f"camera:\n  source: \"{url}\"\n"


@pytest.mark.parametrize("text", [
    "",  # the defaults: the Pi camera, the journal, the socket
    source("/dev/video0"), source("0"), source("clip.mp4"), source("file:///srv/clip.mp4"),
    source("rtsp://localhost:8554/cam"), source("rtsp://127.0.0.2/cam"), source("http://[::1]:8080/"),
    mqtt("localhost"), mqtt("127.0.0.1"), mqtt("::1"),
    metrics("127.0.0.1:9464"), metrics("[::1]:9464"), metrics("localhost:9464"),
    web("127.0.0.1:8080"), web("localhost:8080"),
    "outputs:\n  mqtt:\n    host: broker.lan\n  metrics:\n    listen: \":9464\"\n",  # both disabled
])
def test_what_stays_on_this_machine_needs_nothing(text: str) -> None:
    assert ipfilter.reaches(config(text)) == []


def test_addresses_written_in_the_config_are_allowed_alone() -> None:
    text = source("rtsp://admin:secret@192.168.1.30:554/stream") + mqtt("fd00::5")
    found = ipfilter.reaches(config(text))
    assert [(r.key, r.value, r.address) for r in found] == [
        ("camera.source", "192.168.1.30", "192.168.1.30"), ("outputs.mqtt.host", "fd00::5", "fd00::5")]
    assert ipfilter.allowed(found) == ["192.168.1.30", "fd00::5"]
    assert all("secret" not in r.describe() for r in found), "never the stream's password"


def test_a_link_local_address_is_allowed_without_its_zone() -> None:
    found = ipfilter.reaches(config(source("rtsp://[fe80::1%25eth0]:554/cam")))
    assert ipfilter.allowed(found) == ["fe80::1"]


@pytest.mark.parametrize(("text", "key", "why"), [
    (mqtt("mqtt.local"), "outputs.mqtt.host", "a name"),
    (source("rtsp://camera.lan/stream"), "camera.source", "a name"),
    (source("udp://@:1234"), "camera.source", "a listener"),
    (source("tcp://0.0.0.0:5000?listen=1"), "camera.source", "a listener"),
    (source("udp://239.1.1.1:1234"), "camera.source", "a listener"),
    (metrics(":9464"), "outputs.metrics.listen", "scraped from"),
    (metrics("192.168.1.20:9464"), "outputs.metrics.listen", "scraped from"),
    (web(":8080"), "web.listen", "the status page"),
    (web("192.168.1.20:8080"), "web.listen", "the status page"),
])
def test_names_and_listeners_open_the_filter(text: str, key: str, why: str) -> None:
    found = ipfilter.reaches(config(text))
    assert [(r.key, r.address) for r in found] == [(key, None)]
    assert why in found[0].describe()
    assert ipfilter.allowed(found) == ["any"]


def test_a_fleet_opens_the_filter_for_its_rollouts() -> None:
    found = ipfilter.reaches(config(mqtt("127.0.0.1") + "fleet:\n  enabled: true\n"))
    assert [(r.key, r.address) for r in found] == [("fleet.model_topic", None)]
    assert "the URLs its manifest names" in found[0].describe()


def test_one_name_among_addresses_opens_the_filter() -> None:
    found = ipfilter.reaches(config(source("rtsp://192.168.1.30/cam") + mqtt("mqtt.local")))
    assert ipfilter.allowed(found) == ["any"]


def test_the_dropin_for_the_default_config_adds_nothing() -> None:
    text = ipfilter.dropin(config(""), "/etc/edgecam/edgecam.yaml")
    assert "[Service]" in text and "from /etc/edgecam/edgecam.yaml" in text
    assert [line for line in text.splitlines() if line and not line.startswith("#")] == ["[Service]"]


def test_the_dropin_allows_the_addresses_and_tells_the_daemon() -> None:
    text = ipfilter.dropin(config(source("rtsp://192.168.1.30/cam") + mqtt("192.168.1.5")), "F")
    directives = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert directives == ["[Service]", "IPAddressAllow=192.168.1.30 192.168.1.5",
                          'Environment="EDGECAM_IP_ALLOW=localhost 192.168.1.30 192.168.1.5"']
    assert "#   camera.source 192.168.1.30" in text and "#   outputs.mqtt.host 192.168.1.5" in text


def test_the_dropin_for_a_name_allows_any_address() -> None:
    text = ipfilter.dropin(config(mqtt("mqtt.local")), "F")
    directives = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert directives == ["[Service]", "IPAddressAllow=any", 'Environment="EDGECAM_IP_ALLOW=any"']
    assert "outputs.mqtt.host mqtt.local (a name" in text


def test_the_dropin_is_a_valid_unit_file(tmp_path: Path) -> None:
    """systemd-analyze verify reads the unit with the drop-in (where systemd is installed)."""
    analyze = Path("/usr/bin/systemd-analyze")
    if not analyze.exists():
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "ipfilter-test.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nIPAddressDeny=any\nIPAddressAllow=localhost\n")
    (tmp_path / "ipfilter-test.service.d").mkdir()
    (tmp_path / "ipfilter-test.service.d" / "network.conf").write_text(ipfilter.dropin(
        config(source("rtsp://[fe80::1%25eth0]/cam") + mqtt("192.168.1.5")), "F"))
    result = subprocess.run([str(analyze), "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and "network.conf" not in result.stderr, result.stderr


@pytest.mark.parametrize(("allow", "blocked"), [
    ("localhost", ["outputs.mqtt.host", "camera.source"]),
    ("localhost 192.168.1.5", ["camera.source"]),
    ("any", []),
])
def test_blocked_is_what_the_filter_does_not_allow(allow: str, blocked: list[str]) -> None:
    edited = config(source("rtsp://camera.lan/cam") + mqtt("192.168.1.5"))
    assert sorted(r.key for r in ipfilter.blocked(edited, allow)) == sorted(blocked)


def test_the_check_is_one_line_under_the_unit_only(monkeypatch: pytest.MonkeyPatch) -> None:
    edited = config(mqtt("mqtt.local"))
    monkeypatch.delenv(ipfilter.ENV, raising=False)
    assert ipfilter.check(edited) is None, "outside the unit there is no filter to speak of"
    monkeypatch.setenv(ipfilter.ENV, "localhost")
    assert ipfilter.check(config("")) is None
    line = ipfilter.check(edited)
    assert line is not None and "\n" not in line
    assert "IPAddressAllow=localhost" in line and "outputs.mqtt.host mqtt.local" in line
    assert "sudo make install" in line


def test_the_command_prints_the_dropin(tmp_path: Path) -> None:
    path = tmp_path / "edgecam.yaml"
    path.write_text(mqtt("192.168.1.5"))
    result = run_edgecam("ip-filter", "-c", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ipfilter.dropin(config(mqtt("192.168.1.5")), str(path))
    path.write_text("outputs:\n  mqtt:\n    port: 0\n")
    result = run_edgecam("ip-filter", "-c", path)
    assert result.returncode == 78 and "outputs.mqtt.port" in result.stderr
