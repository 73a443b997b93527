"""Camera instances (config.instance) and what each holds alone (daemon.claims)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

from edgecam.cli import main
from edgecam.config import SINGLE, Camera, load_config, parse_config, picamera_number
from edgecam.daemon.claims import ClaimError, Claims
from edgecam.errors import EX_UNAVAILABLE, ConfigError, EdgecamError
from edgecam.models.fewshot.learn import find_target

SHIPPED = REPO / "config" / "edgecam.yaml"


def test_an_instance_takes_the_shipped_configs_paths_as_its_own() -> None:
    """`make install NAME=garage` copies config/edgecam.yaml, which spells out the single-camera paths."""
    config = load_config(SHIPPED, Camera.named("garage"))
    assert config.outputs.socket.path == "/run/edgecam/garage.sock"
    assert config.snapshots.dir == "/var/lib/edgecam/garage/snapshots"
    assert config.fleet.state_dir == "/var/lib/edgecam/garage"  # its merged heads and models
    assert config.outputs.mqtt.topic_prefix == f"edgecam/{socket.gethostname()}-garage"
    single = load_config(SHIPPED)
    assert single.outputs.socket.path == "/run/edgecam/results.sock"
    assert single.outputs.mqtt.topic_prefix == ""  # edgecam/<hostname>, as before instances


def test_paths_the_user_chose_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "garage.yaml"
    path.write_text("outputs:\n  socket:\n    path: /run/edgecam/mine.sock\n  mqtt:\n"
                    "    topic_prefix: home/garage\nsnapshots:\n  dir: /srv/shots\n")
    config = load_config(path, Camera.named("garage"))
    assert config.outputs.socket.path == "/run/edgecam/mine.sock"
    assert config.outputs.mqtt.topic_prefix == "home/garage"
    assert config.snapshots.dir == "/srv/shots"


def test_a_camera_without_its_config_file_says_how_to_make_it(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setattr("edgecam.config.instance.CONFIG_DIR", tmp_path)
    with pytest.raises(ConfigError) as excinfo:
        load_config(None, Camera.named("garage"))
    assert excinfo.value.lines == [f"{tmp_path}/garage.yaml:1: (file): not found "
                                   "(sudo make install NAME=garage writes it)"]
    (tmp_path / "garage.yaml").write_text("log_level: debug\n")
    assert load_config(None, Camera.named("garage")).log_level == "debug"


@pytest.mark.parametrize("name", ["", "Garage", "-x", "a/b", "x" * 33, "a.b"])
def test_camera_names_that_cannot_name_a_file_a_topic_and_a_unit_are_refused(name: str) -> None:
    if not name:
        assert Camera.named(name) == SINGLE
        return
    with pytest.raises(EdgecamError, match="a camera name is 1 to 32 of a-z, 0-9, _ and -"):
        Camera.named(name)


def test_the_cli_refuses_a_bad_camera_name_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["check-config", "--camera", "Front Door"])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("edgecam check-config: error: argument --camera: ")
    assert "a camera name is 1 to 32 of a-z" in err


def test_learn_puts_an_instances_heads_in_its_own_state_folder() -> None:
    config = load_config(SHIPPED, Camera.named("garage"))
    target = find_target(config, None, heads_dir=Camera.named("garage").heads_dir)
    assert target.head_path == Path("/var/lib/edgecam/garage/heads/default.head")
    assert find_target(load_config(SHIPPED), None).head_path == Path("/var/lib/edgecam/heads/default.head")


def test_picamera2_n_names_a_camera_by_number(tmp_path: Path) -> None:
    assert [picamera_number(s) for s in ("picamera2", "picamera2:0", "picamera2:1", "/dev/video0",
                                         "picamera2x", "0")] == [0, 0, 1, None, None, None]
    with pytest.raises(ConfigError) as excinfo:
        parse_config("camera:\n  source: picamera2:left\n", "front.yaml", tmp_path)
    assert excinfo.value.lines[0].startswith("front.yaml:2: camera.source: 'picamera2:left': a Pi "
                                             "camera is picamera2 (camera 0) or picamera2:N")


# -- claims ---------------------------------------------------------------------------------------


def config_with(tmp_path: Path, text: str):
    return parse_config(text, "x.yaml", tmp_path)


@pytest.fixture
def a_and_b(tmp_path: Path) -> Iterator[tuple[Claims, Claims]]:
    """The claims of cameras a and b, meeting in one folder; both let go at teardown."""
    folder = tmp_path / "claims"
    a, b = Claims(Camera.named("a"), None, folder), Claims(Camera.named("b"), None, folder)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_second_instance_is_refused_what_the_first_holds_and_told_who(tmp_path: Path) -> None:
    folder = tmp_path / "claims"
    shared = config_with(tmp_path, f"outputs:\n  socket:\n    path: {tmp_path}/same.sock\n")
    first = Claims(Camera.named("a"), "/etc/edgecam/a.yaml", folder)
    second = Claims(Camera.named("b"), "/etc/edgecam/b.yaml", folder)
    try:
        first.hold(shared)
        with pytest.raises(ClaimError) as excinfo:
            second.hold(shared)
        assert excinfo.value.exit_code == EX_UNAVAILABLE
        message = str(excinfo.value)
        assert "\n" not in message
        assert message.startswith(f"/etc/edgecam/b.yaml: outputs.socket.path: {tmp_path}/same.sock is "
                                  "already used by camera a (/etc/edgecam/a.yaml, pid ")
        first.close()  # a's claims go with it (a process that dies lets go the same way)
        second.hold(shared)
    finally:
        first.close()
        second.close()


def test_metrics_ports_collide_whatever_the_address(tmp_path: Path) -> None:
    folder = tmp_path / "claims"
    a = config_with(tmp_path, "outputs:\n  socket:\n    enabled: false\n  metrics:\n    enabled: true\n"
                    "    listen: 127.0.0.1:9464\n")
    b = config_with(tmp_path, "outputs:\n  socket:\n    enabled: false\n  metrics:\n    enabled: true\n"
                    "    listen: :9464\n")
    first, second = Claims(SINGLE, None, folder), Claims(Camera.named("b"), None, folder)
    try:
        first.hold(a)
        with pytest.raises(ClaimError, match=r"outputs\.metrics\.listen: TCP port 9464 is already used "
                                             r"by the default camera \(/etc/edgecam/edgecam\.yaml"):
            second.hold(b)
    finally:
        first.close()
        second.close()


def test_the_same_pi_camera_is_refused_with_69(tmp_path: Path, a_and_b: tuple[Claims, Claims]) -> None:
    front = config_with(tmp_path, "camera:\n  source: picamera2\noutputs:\n  socket:\n    enabled: false\n")
    also_zero = config_with(tmp_path, "camera:\n  source: picamera2:0\noutputs:\n  socket:\n"
                            "    enabled: false\n")
    other = config_with(tmp_path, "camera:\n  source: picamera2:1\noutputs:\n  socket:\n    enabled: false\n")
    a, b = a_and_b
    a.hold(front)
    with pytest.raises(ClaimError) as excinfo:
        b.hold(also_zero)
    assert excinfo.value.exit_code == EX_UNAVAILABLE
    assert "camera.source: picamera2 camera 0 is already used by camera a" in str(excinfo.value)
    b.hold(other)  # the other port's camera is free


def test_a_reload_takes_the_new_before_letting_go_of_the_old(tmp_path: Path,
                                                             a_and_b: tuple[Claims, Claims]) -> None:
    """hold(new) then keep_only(new); a refused reload keep_only(old): nothing new stays held."""
    photos = f"camera:\n  source: {tmp_path}\n"  # not the Pi camera, which both would claim too
    old = config_with(tmp_path, f"{photos}outputs:\n  socket:\n    path: {tmp_path}/old.sock\n")
    new = config_with(tmp_path, f"{photos}outputs:\n  socket:\n    path: {tmp_path}/new.sock\n")
    mine, other = a_and_b
    mine.hold(old)
    mine.hold(new)
    mine.keep_only(old)  # the reload was refused
    other.hold(new)  # so new.sock is free again
    other.close()
    with pytest.raises(ClaimError):
        other.hold(old)  # and old.sock still mine
    mine.hold(new)
    mine.keep_only(new)
    other.hold(old)


# -- every command takes --camera ---------------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["check-config"], ["tail"], ["classify", "x.jpg"],
                                     ["learn", "add", "cat"], ["learn", "list"], ["learn", "remove", "cat"],
                                     ["snapshots"], ["doctor"], ["ip-filter"],
                                     ["fleet", "status"]])
def test_every_command_takes_camera(command: list[str]) -> None:
    from edgecam.cli import _parser

    assert _parser().parse_args([*command, "--camera", "garage"]).camera == Camera("garage")


def test_commands_use_the_cameras_socket_and_state(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--camera", "garage", "-c", str(SHIPPED)]) == 0
    assert "path: /run/edgecam/garage.sock" in capsys.readouterr().out
    assert main(["tail", "--camera", "garage", "-c", str(SHIPPED)]) == EX_UNAVAILABLE
    assert "cannot connect to /run/edgecam/garage.sock" in capsys.readouterr().err
    main(["learn", "list", "--camera", "garage", "-c", str(SHIPPED)])
    assert "/var/lib/edgecam/garage/heads/default.head" in capsys.readouterr().err
    assert main(["ip-filter", "--camera", "garage", "-c", str(SHIPPED)]) == 0
    assert "`sudo make install NAME=garage`" in capsys.readouterr().out


def test_a_status_page_port_collides_with_another_instances_page_or_metrics(
        tmp_path: Path, a_and_b: tuple[Claims, Claims]) -> None:
    page = config_with(tmp_path, "camera:\n  source: /srv\noutputs:\n  socket:\n    enabled: false\n"
                       "web:\n  enabled: true\n  listen: 127.0.0.1:9464\n")
    metrics = config_with(tmp_path, "camera:\n  source: /srv\noutputs:\n  socket:\n    enabled: false\n"
                          "  metrics:\n    enabled: true\n    listen: 127.0.0.1:9464\n")
    a, b = a_and_b
    a.hold(page)
    with pytest.raises(ClaimError, match=r"outputs\.metrics\.listen: TCP port 9464 is already used "
                                         r"by camera a"):
        b.hold(metrics)
    with pytest.raises(ClaimError, match=r"web\.listen: TCP port 9464 is already used by camera a"):
        b.hold(page)


def test_a_snapshot_folder_is_one_instances_whatever_the_path_says(
        tmp_path: Path, a_and_b: tuple[Claims, Claims]) -> None:
    """Two instances writing one snapshot folder would prune each other's snapshots (max_mb):
    the second is refused, also when its path reaches the folder another way (a symlink)."""
    (tmp_path / "shots").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "shots")
    text = "camera:\n  source: /srv\noutputs:\n  socket:\n    enabled: false\nsnapshots:\n" \
           "  enabled: true\n  dir: {}\n"
    direct = config_with(tmp_path, text.format(tmp_path / "shots"))
    linked = config_with(tmp_path, text.format(tmp_path / "link"))
    a, b = a_and_b
    a.hold(direct)
    with pytest.raises(ClaimError, match=rf"snapshots\.dir: {tmp_path}/shots is already used by "
                                         r"camera a"):
        b.hold(linked)
