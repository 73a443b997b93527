"""The status page's parts in process: its config, the token check, the preview encoder, its state."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import edgecam.web
from edgecam.config import Config, WebConfig, ZoneConfig, parse_config
from edgecam.core.latest import LatestFrame
from edgecam.core.results import Classification, Label, Result
from edgecam.core.stats import Stats
from edgecam.errors import ConfigError, EdgecamError
from edgecam.outputs.web import WebOutput
from edgecam.web.auth import COOKIE, Auth
from edgecam.web.page import PageSettings, PageState, model_name
from edgecam.web.preview import ZONE_BGR, Overlay, Preview, box, render


def result(label: str, zone: str | None = None, seq: int = 1) -> Result:
    return Result(seq, 1.0, 10.0, 5.0, Classification((Label(1, label, 0.9),), 5.0), zone)


# -- config -------------------------------------------------------------------------------------

@pytest.mark.parametrize("listen", [":8080", "0.0.0.0:8080", "192.168.1.20:8080", "pi.local:8080",
                                    "[::]:8080"])
def test_a_page_beyond_loopback_without_a_token_is_an_error_at_its_line(listen: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"log_level: info\nweb:\n  enabled: true\n  listen: \"{listen}\"\n", "e.yaml")
    [line] = raised.value.lines
    assert line.startswith("e.yaml:4: web.listen: ") and "set token_file" in line, line


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2:80"])
def test_a_page_on_loopback_needs_no_token(listen: str) -> None:
    assert parse_config(f"web:\n  enabled: true\n  listen: \"{listen}\"\n", "e.yaml").web.enabled


def test_a_token_file_allows_any_address_and_must_exist(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    config = parse_config(f"web:\n  listen: \":8080\"\n  token_file: {token}\n", "e.yaml")
    assert PageSettings.from_config(config).token == "secret"
    with pytest.raises(ConfigError, match=r"e\.yaml:2: web\.token_file: .*gone: no such file"):
        parse_config(f"web:\n  token_file: {tmp_path / 'gone'}\n", "e.yaml")


@pytest.mark.parametrize(("text", "problem"), [
    ("\n", "its first line, the token, is empty"),
    ("   \nsecret\n", "its first line, the token, is empty"),
])
def test_a_token_file_without_a_token_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    token = tmp_path / "token"
    token.write_text(text)
    config = parse_config(f"web:\n  token_file: {token}\n", "e.yaml")
    with pytest.raises(EdgecamError) as raised:
        PageSettings.from_config(config)
    assert str(raised.value) == f"web.token_file: {token}: {problem}"


def test_the_model_is_named_by_its_file_and_head() -> None:
    config = Config()
    assert model_name(config) == "mobilenet_v2_1.0_224_quant.tflite"
    headed = dataclasses.replace(config, model=dataclasses.replace(
        config.model, path="/m/extractor.tflite", head="/h/birds.head"))
    assert model_name(headed) == "birds.head (learned on extractor.tflite)"


# -- auth ---------------------------------------------------------------------------------------

def test_without_a_token_everything_is_allowed() -> None:
    assert Auth(None).allows({}, {}) and not Auth(None).required


def test_the_token_is_asked_for_as_a_bearer_header_or_the_session_cookie() -> None:
    auth = Auth("s3cret")
    assert not auth.allows({}, {})
    assert auth.allows({"Authorization": "Bearer s3cret"}, {})
    assert auth.allows({"Authorization": "bearer  s3cret "}, {})
    for wrong in ("Bearer s3cre", "Bearer s3cretx", "Bearer ", "Basic s3cret", "s3cret"):
        assert not auth.allows({"Authorization": wrong}, {}), wrong
    assert auth.allows({}, {COOKIE: auth.session})
    assert "s3cret" not in auth.session
    assert not auth.allows({}, {COOKIE: "s3cret"})
    assert not auth.allows({}, {COOKIE: ""})
    assert Auth("other").session != auth.session, "a new token logs every browser out"


# -- the preview --------------------------------------------------------------------------------

def frame(height: int = 480, width: int = 640, value: int = 40) -> np.ndarray:
    image = np.full((height, width, 3), value, np.uint8)
    image.flags.writeable = False
    return image


def test_render_scales_to_the_width_and_draws_zones_on_a_copy() -> None:
    image = frame()
    crop = (0.5, 0.25, 0.25, 0.5)
    drawn = render(image, 320, [Overlay("door", crop, "door: cat 0.90")])
    assert drawn.shape == (240, 320, 3)
    assert (image == 40).all(), "the pipeline's frame is never drawn on"
    left, top, right, bottom = box(crop, (320, 240))
    assert (left, top, right, bottom) == (160, 60, 240, 180)
    assert tuple(drawn[bottom - 1, (left + right) // 2]) == ZONE_BGR, "its bottom edge"
    assert tuple(drawn[(top + bottom) // 2, right - 1]) == ZONE_BGR, "its right edge"
    assert tuple(drawn[(top + bottom) // 2 + 20, (left + right) // 2]) == (40, 40, 40), "its inside"


@pytest.mark.parametrize("shape", [(480, 640), (480, 640, 4)])
def test_render_takes_gray_and_bgra_frames(shape: tuple[int, ...]) -> None:
    assert render(np.zeros(shape, np.uint8), 160, []).shape == (120, 160, 3)


def test_the_preview_is_encoded_at_most_fps_times_a_second_and_only_for_a_new_frame() -> None:
    latest, stats = LatestFrame(), Stats()
    preview = Preview(latest, stats)
    assert preview.jpeg(0.0, 5, 320, []) is None, "nothing classified yet"
    latest.put(1, 100.0, frame())
    first = preview.jpeg(0.0, 5, 320, [])
    assert first is not None and first.seq == 1 and first.jpeg[:2] == b"\xff\xd8"
    latest.put(2, 100.1, frame(value=200))
    assert preview.jpeg(0.1, 5, 320, []) is first, "within 1/fps: the last one again"
    second = preview.jpeg(0.2, 5, 320, [])
    assert second is not None and second.seq == 2
    assert preview.jpeg(1.0, 5, 320, []) is second, "no newer frame: nothing encoded"
    zoned = preview.jpeg(1.2, 5, 320, [Overlay("door", (0, 0, 1, 1), "door: cat 0.90")])
    assert zoned is not None and zoned is not second, "a zone's new label is drawn"
    assert stats.get("web_preview_encoded") == 3


# -- what the page shows ------------------------------------------------------------------------

def test_the_page_shows_each_zones_last_result_in_config_order(tmp_path: Path) -> None:
    config = Config(zones=(ZoneConfig("door", (0.5, 0, 0.5, 1)), ZoneConfig("feeder")))
    state = PageState(PageSettings.from_config(config), Stats())
    state.set_zones(("door", "feeder"))
    state.emit(result("bird", "feeder"))
    state.emit(result("cat", "door"))
    state.emit(result("dog", "door", 2))
    assert [(r.zone, r.top.label) for r in state.last_results()] == [("door", "dog"), ("feeder", "bird")]
    assert [o.text for o in state.overlays()] == ["door: dog 0.90", "feeder: bird 0.90"]
    status = state.status(0.0, 1, 4)
    assert [m["zone"] for m in status["results"]] == ["door", "feeder"]
    assert status["stats"]["type"] == "stats" and "latency_ms" in status["stats"]
    assert status["zones"][0] == {"name": "door", "crop": [0.5, 0, 0.5, 1]}
    assert status["snapshots"] == [], "snapshots off"
    state.set_zones(("feeder",))
    assert [r.zone for r in state.last_results()] == ["feeder"]


def test_without_zones_the_page_shows_the_frames_last_result() -> None:
    state = PageState(PageSettings.from_config(Config()), Stats())
    state.emit(result("cat"))
    assert [r.top.label for r in state.last_results()] == ["cat"] and state.overlays() == []


def test_without_aiohttp_the_page_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if the `web` extra were not installed
    monkeypatch.delitem(sys.modules, "edgecam.web.server", raising=False)
    monkeypatch.delattr(edgecam.web, "server", raising=False)
    config = Config(web=WebConfig(enabled=True))
    with pytest.raises(EdgecamError, match=r"^web needs aiohttp: .*pip install 'edgecam\[web\]'"):
        WebOutput(config, Stats(), LatestFrame())
