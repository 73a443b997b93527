"""The config loader: strict schema, every error as `FILE:LINE: key.path: problem`, all at once."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from heads import make_head
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecam.config import Config, load_config, parse_config
from edgecam.errors import ConfigError

ERROR_LINE = re.compile(r"^[^:]+:\d+: \S+: .+")


def write(tmp_path: Path, text: str, name: str = "edgecam.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_errors(path: Path) -> list[str]:
    """The error lines loading `path` gives (the test fails if it loads)."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "\n".join(caught.value.lines)
    return caught.value.lines


def only_error(path: Path) -> str:
    lines = config_errors(path)
    assert len(lines) == 1, lines
    return lines[0]


# --- one test per kind of mistake: each names the file, the line and the key path -----------------


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    """A typo must never be silently ignored, and the fix should be obvious."""
    path = write(tmp_path, "camera:\n  width: 640\n  hieght: 480\n")
    line = only_error(path)
    assert line.startswith(f"{path}:3: camera.hieght: unknown key")
    assert "did you mean 'height'?" in line


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  top_k: three\n")
    line = only_error(path)
    assert line.startswith(f"{path}:2: model.top_k: ")
    assert "whole number" in line and "'three'" in line


def test_a_boolean_is_not_a_number(tmp_path: Path) -> None:
    """YAML's `yes` is a boolean; it must not sneak in as 1."""
    path = write(tmp_path, "pipeline:\n  max_fps: yes\n")
    assert only_error(path).startswith(f"{path}:2: pipeline.max_fps: expected a number")


def test_out_of_range_value(tmp_path: Path) -> None:
    path = write(tmp_path, "camera:\n  source: 0\n  fps: 500\n")
    line = only_error(path)
    assert line.startswith(f"{path}:3: camera.fps: ")
    assert "out of range (0.1..240)" in line


def test_bad_choice(tmp_path: Path) -> None:
    path = write(tmp_path, "outputs:\n  emit: sometimes\n")
    line = only_error(path)
    assert line.startswith(f"{path}:2: outputs.emit: ")
    assert "on_change, every_frame" in line


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert only_error(path) == f"{path}:1: (file): not found"


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "camera:\n  width: 640\nmodel:\n  top_k: 3: 4\n")
    line = only_error(path)
    assert line.startswith(f"{path}:4: (yaml): ")
    assert "mapping values are not allowed" in line


def test_duplicate_key(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys; an edit that shadows another must be caught."""
    path = write(tmp_path, "camera:\n  width: 640\n  height: 480\n  width: 800\n")
    assert only_error(path) == f"{path}:4: camera.width: duplicate key"


def test_section_given_as_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "outputs:\n  socket:\n    - path: /run/x.sock\n")
    line = only_error(path)
    assert line.startswith(f"{path}:3: outputs.socket: expected a section of keys")
    assert "a list" in line


def test_every_error_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    """A user editing over SSH should see all mistakes in one go, top to bottom."""
    path = write(tmp_path, (
        "camera:\n"  # 1
        "  widht: 640\n"  # 2 unknown key
        "  fps: 0\n"  # 3 out of range
        "model:\n"  # 4
        "  top_k: many\n"  # 5 wrong type
        "  resize: fit\n"  # 6 bad choice
        "pipeline: [1, 2]\n"  # 7 a section as a list
        "outputs:\n"  # 8
        "  socket:\n"  # 9
        "    mode: rw\n"  # 10 not an octal mode
        "log_level: loud\n"  # 11 bad choice
        "camera: {}\n"  # 12 duplicate section
    ))
    lines = config_errors(path)
    expected = [(2, "camera.widht"), (3, "camera.fps"), (5, "model.top_k"), (6, "model.resize"),
                (7, "pipeline"), (10, "outputs.socket.mode"), (11, "log_level"), (12, "camera")]
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:{number}", key] for number, key in expected]
    assert all(ERROR_LINE.match(line) for line in lines)


def test_every_snapshots_key_is_checked_each_error_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "snapshots:\n"  # 1
        "  enabled: maybe\n"  # 2 not a boolean
        "  dir: \"\"\n"  # 3 empty: would be the config file's folder
        "  max_files: 0\n"  # 4 out of range
        "  max_mb: 0\n"  # 5 out of range (must be more than 0)
        "  quality: 101\n"  # 6 out of range
        "  max_file: 5\n"  # 7 unknown key
    ))
    lines = config_errors(path)
    expected = [(2, "snapshots.enabled", "true or false"), (3, "snapshots.dir", "path of a folder"),
                (4, "snapshots.max_files", "out of range (1..1000000)"),
                (5, "snapshots.max_mb", "out of range (0.1..1000000)"),
                (6, "snapshots.quality", "out of range (1..100)"),
                (7, "snapshots.max_file", "did you mean 'max_files'?")]
    assert len(lines) == len(expected), lines
    for line, (number, key, problem) in zip(lines, expected, strict=True):
        assert line.startswith(f"{path}:{number}: {key}: ") and problem in line, line
        assert ERROR_LINE.match(line) and "\n" not in line
    path = write(tmp_path, "snapshots:\n  dir: [a, b]\n  quality: high\n  max_mb: .inf\n")
    assert [line.split(": ", 2)[:2] for line in config_errors(path)] == [
        [f"{path}:2", "snapshots.dir"], [f"{path}:3", "snapshots.quality"], [f"{path}:4", "snapshots.max_mb"]]


def test_the_snapshots_folder_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "snapshots:\n  enabled: true\n  dir: snaps\n  max_mb: 1\n"))
    assert config.snapshots.dir == str(tmp_path / "snaps") and config.snapshots.max_mb == 1.0


# --- what a valid file becomes ----------------------------------------------------------------------


def test_shipped_config_is_exactly_the_builtin_defaults() -> None:
    """The README promises config/edgecam.yaml shows the defaults; the two must not drift apart."""
    assert load_config(REPO / "config" / "edgecam.yaml") == Config()


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file_gives_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text)) == Config()


def test_empty_section_gives_its_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "camera:\nmodel: {}\n"))
    assert config == Config()


def test_unquoted_octal_mode_stays_the_mode_meant(tmp_path: Path) -> None:
    """YAML 1.1 reads an unquoted 0660 as the int 432; the socket must still get rw-rw----."""
    config = load_config(write(tmp_path, "outputs:\n  socket:\n    mode: 0660\n"))
    assert config.outputs.socket.mode == "0660"
    quoted = load_config(write(tmp_path, "outputs:\n  socket:\n    mode: \"0640\"\n", "q.yaml"))
    assert quoted.outputs.socket.mode == "0640"


@pytest.mark.parametrize(("written", "expected"), [("440", "0440"), ("644", "0644"), ("600", "0600"),
                                                   ("'660'", "0660")])
def test_mode_digits_are_octal_even_without_the_leading_zero(tmp_path: Path, written: str, expected: str
                                                             ) -> None:
    """YAML reads `440` as decimal 440 (= 0o670): read literally, it would grant group write."""
    config = load_config(write(tmp_path, f"outputs:\n  socket:\n    mode: {written}\n"))
    assert config.outputs.socket.mode == expected


@pytest.mark.parametrize("written", ["999", "1777", "rw", "yes", "-1", "[6, 6, 0]"])
def test_bad_modes_are_errors(tmp_path: Path, written: str) -> None:
    path = write(tmp_path, f"outputs:\n  socket:\n    mode: {written}\n")
    assert only_error(path).startswith(f"{path}:3: outputs.socket.mode: ")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """`edgecam run -c` from any working directory must find the same model and photos."""
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, (
        "camera:\n  source: photos/\n"
        "model:\n  path: models/m.tflite\n  labels: /abs/labels.txt\n"
        "outputs:\n  socket:\n    path: run/results.sock\n"
    ))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "etc" / "edgecam.yaml")
    base = folder.resolve()
    assert config.camera.source == str(base / "photos")
    assert config.model.path == str(base / "models" / "m.tflite")
    assert config.model.labels == "/abs/labels.txt"
    assert config.outputs.socket.path == str(base / "run" / "results.sock")
    assert Path(config.camera.source).is_absolute()
    assert path.parent == folder


@pytest.mark.parametrize(("written", "expected"), [
    ("0", "0"),
    ("\"2\"", "2"),
    ("picamera2", "picamera2"),
    ("rtsp://cam.local:554/stream", "rtsp://cam.local:554/stream"),
    ("http://10.0.0.2/video.mjpg", "http://10.0.0.2/video.mjpg"),
    ("/dev/video0", "/dev/video0"),
])
def test_sources_that_are_not_relative_files_are_left_alone(tmp_path: Path, written: str, expected: str
                                                           ) -> None:
    config = load_config(write(tmp_path, f"camera:\n  source: {written}\n"))
    assert config.camera.source == expected


# --- few-shot head keys -----------------------------------------------------------------------------


def test_head_config_keys(tmp_path: Path) -> None:
    assert Config().model.head is None
    assert 0 < Config().model.head_min_similarity < 1
    config = tmp_path / "etc" / "edgecam.yaml"
    config.parent.mkdir()
    config.write_text("model:\n  head: heads/my.head\n  head_min_similarity: 0.7\n")
    model = load_config(config).model
    assert model.head == str(tmp_path / "etc" / "heads" / "my.head")  # relative to the config file
    assert model.head_min_similarity == 0.7
    config.write_text("model:\n  head: null\n")
    assert load_config(config).model.head is None


# --- fuzzing: anything at all is a Config or a ConfigError of well-formed lines ---------------------

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])



def _schema_words(cls: type) -> set[str]:
    """Every key name in the schema, so fuzzing reaches past the top level."""
    words = set()
    for name, hint in typing.get_type_hints(cls).items():
        words.add(name)
        if dataclasses.is_dataclass(hint):
            words |= _schema_words(hint)
    return words


_SCHEMA_WORDS = sorted(_schema_words(Config))
_TOKENS = [*_SCHEMA_WORDS, ":", ": ", "\n", "\n  ", "\n    ", "- ", "[", "]", "{", "}", ",", "#", "&a ",
           "*a", "!!int ", "!!float ", "!!bool ", "!!str ", "!!binary ", "!!timestamp ", "!x ", "? ",
           "<<: ", "'", "\"", "|", ">", "---", "...", "0660", "0x1f", "1e3", ".nan", "-.inf", "~",
           "yes", "null", "2001-12-14", "\t", "\\", "%YAML 1.1\n", " ", "a b", "\x00", "\x85", "\ufeff"]


def assert_config_or_clean_error(text: str) -> None:
    try:
        config = parse_config(text, "fuzz.yaml", Path("/base"))
    except ConfigError as exc:
        assert exc.lines, "a ConfigError with no lines"
        for line in exc.lines:
            assert ERROR_LINE.match(line) and "\n" not in line, line
            assert line.startswith("fuzz.yaml:"), line
    else:
        assert isinstance(config, Config)


@FUZZ
@given(st.text())
def test_fuzz_any_text(text: str) -> None:
    assert_config_or_clean_error(text)


@FUZZ
@given(st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))
def test_fuzz_yaml_looking_text(text: str) -> None:
    assert_config_or_clean_error(text)


_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
            | st.sampled_from(["0660", "picamera2", "0", "crop", "every_frame", "debug"]))
_keys = st.sampled_from(_SCHEMA_WORDS) | st.text(max_size=10) | st.integers() | st.booleans()
_trees = st.recursive(_scalars, lambda children: st.lists(children, max_size=4)
                      | st.dictionaries(_keys, children, max_size=5), max_leaves=25)


@FUZZ
@given(st.dictionaries(st.sampled_from(_SCHEMA_WORDS) | st.text(max_size=10), _trees, max_size=6)
       | _trees)
def test_fuzz_any_structure(tree: object) -> None:
    assert_config_or_clean_error(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))


def test_deeply_nested_yaml_is_a_config_error() -> None:
    """PyYAML's composer recurses per nesting level; a pathological file must not crash the loader."""
    with pytest.raises(ConfigError) as caught:
        parse_config("camera: " + "[" * 5000, "deep.yaml")
    assert all(ERROR_LINE.match(line) for line in caught.value.lines)


MODEL_LINES = ("model:\n  path: ../shared/models/mobilenet_v2_1.0_224_quant.tflite\n"
               "  labels: {labels}\n")


def rules_config(tmp_path: Path, rules: str) -> Path:
    labels = REPO.parent / "shared" / "models" / "imagenet_labels.txt"
    return write(tmp_path, MODEL_LINES.format(labels=labels) + "outputs:\n" + rules)


def test_label_rules_load(tmp_path: Path) -> None:
    path = rules_config(tmp_path, "  labels_allow: [Egyptian cat, macaw]\n  labels_deny: []\n"
                                  "  thresholds: {macaw: 0.9, \"tabby, tabby cat\": 0.5}\n")
    outputs = load_config(path).outputs
    assert outputs.labels_allow == ("Egyptian cat", "macaw")
    assert outputs.labels_deny == ()
    assert outputs.thresholds == {"macaw": 0.9, "tabby, tabby cat": 0.5}


def test_label_rule_errors_name_their_lines(tmp_path: Path) -> None:
    path = rules_config(tmp_path, "  labels_allow: macaw\n"          # line 5
                                  "  labels_deny:\n"
                                  "    - Egyptian kat\n"              # line 7
                                  "    - [nested]\n"                  # line 8
                                  "    - macaw\n"
                                  "    - macaw\n"                     # line 10
                                  "  thresholds:\n"
                                  "    tabby: 0.5\n"                  # line 12
                                  "    macaw: 1.5\n"                  # line 13
                                  "    military uniform: high\n")    # line 14
    errors = config_errors(path)
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in errors] == [
        "5", "7", "8", "10", "12", "13", "14"], errors
    text = "\n".join(errors)
    assert "outputs.labels_allow: expected a list such as [cat, dog], got 'macaw'" in text
    assert "'Egyptian kat' is not a label of" in text and "(did you mean 'Egyptian cat'?)" in text
    assert "each item must be a label" in text
    assert "'macaw' is listed twice" in text
    assert "'tabby' is not a label of" in text and "(did you mean 'tabby, tabby cat'?)" in text
    assert "'macaw': 1.5 is out of range (0..1)" in text
    assert "'military uniform': expected a number" in text


def test_label_rules_are_checked_against_a_heads_classes(tmp_path: Path, embedder, train) -> None:
    head_file = tmp_path / "learned.head"
    make_head(embedder, train).save(head_file)
    path = write(tmp_path, f"model:\n  head: {head_file}\noutputs:\n  labels_allow: [cat, nope]\n")
    (error,) = config_errors(path)
    assert error.startswith(f"{path}:4: outputs.labels_allow: 'nope' is not a label of the head's")


def test_zones_load_and_inherit_the_top_level(tmp_path: Path) -> None:
    path = rules_config(tmp_path, "  min_score: 0.4\n  labels_deny: [macaw]\n"
                                  "zones:\n"
                                  "  - name: door\n"
                                  "    crop: [0.5, 0, 0.5, 1]\n"
                                  "    interval_s: 2\n"
                                  "    emit: every_frame\n"
                                  "    labels_deny: []\n"
                                  "    model:\n"
                                  "      head: heads/door.head\n"
                                  "  - name: feeder\n")
    config = load_config(path)
    door, feeder = config.zones
    assert (door.name, door.crop, door.interval_s) == ("door", (0.5, 0.0, 0.5, 1.0), 2.0)
    assert feeder.crop == (0.0, 0.0, 1.0, 1.0) and feeder.interval_s == 0
    assert config.zone_model(door).head == str(tmp_path / "heads" / "door.head")
    assert config.zone_model(door).path == config.model.path
    assert config.zone_model(feeder) == config.model
    rules = config.zone_outputs(door)
    assert (rules.min_score, rules.emit, rules.labels_deny) == (0.4, "every_frame", ())
    assert config.zone_outputs(feeder) == config.outputs


def test_every_zone_mistake_names_its_line(tmp_path: Path) -> None:
    path = rules_config(tmp_path, "  min_score: 0.3\n"
                                  "zones:\n"                          # line 6
                                  "  - name: Door\n"                  # line 7
                                  "    crop: [0.6, 0, 0.5, 1]\n"      # line 8
                                  "  - name: left\n"
                                  "    crop: [0, 0, 0, 1]\n"          # line 10
                                  "  - name: left\n"                  # line 11
                                  "    interval_s: -1\n"              # line 12
                                  "  - crop: [0, 0, 1]\n"             # line 13
                                  "    emit: sometimes\n"             # line 14
                                  "    labels_allow: [Egyptian kat]\n"  # line 15
                                  "    cropp: 1\n"                    # line 16
                                  "  - model: {pathh: x}\n"           # line 17
                                  "    name: ok\n")
    errors = config_errors(path)
    found = {(line.split(": ", 1)[0].rsplit(":", 1)[1], line.split(": ", 2)[1]) for line in errors}
    assert found >= {("7", "zones[0].name"), ("8", "zones[0].crop"), ("10", "zones[1].crop"),
                     ("11", "zones[2].name"), ("12", "zones[2].interval_s"),
                     ("13", "zones[3].crop"), ("13", "zones[3].name"), ("14", "zones[3].emit"),
                     ("16", "zones[3].cropp"), ("17", "zones[4].model.pathh")}, errors
    text = "\n".join(errors)
    assert "'Door' is not a zone name" in text
    assert "reaches outside the frame" in text and "an empty crop" in text
    assert "'left' is already the name of zones[1]" in text
    assert "expected a list of 4 numbers, got 3 item(s)" in text
    assert "missing: each one needs a name" in text
    assert all(ERROR_LINE.match(line) for line in errors)


def test_a_zones_labels_are_checked_against_its_own_model(tmp_path: Path, embedder, train) -> None:
    head_file = tmp_path / "door.head"
    make_head(embedder, train).save(head_file)
    path = rules_config(tmp_path, "  min_score: 0.3\n"
                                  "zones:\n"
                                  "  - name: door\n"
                                  f"    model: {{head: {head_file}}}\n"
                                  "    labels_allow: [cat, macaw]\n")  # line 9: macaw is ImageNet's
    (error,) = config_errors(path)
    assert error.startswith(f"{path}:9: zones[0].labels_allow: 'macaw' is not a label of the head's")
