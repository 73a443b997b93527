"""Files the user names, checked before they are read: a FIFO, a device, a sparse 4 GB file, a
huge string (issue 24, item 2).

A FIFO nobody writes to would block open() forever and /dev/zero or a sparse
file would be read into memory; each must be refused in one line, at once,
by check-config (a stat) and by the reader (on the open file). Every read
here runs in a thread with a hang bound, so a regression fails instead of
hanging the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgecam.common.files import (
    MAX_LABELS_BYTES,
    read_user_file,
    read_user_text,
    set_aside,
    user_file_problem,
)
from edgecam.config import parse_config
from edgecam.config.files import read_token, source_override
from edgecam.core.labels import read_labels
from edgecam.errors import ConfigError, EdgecamError, MissingFileError, ModelError

HANG_S = 15.0


def bounded(call: Callable[[], Any]) -> Any:
    """`call()` in a thread: its result, or its exception re-raised; fails if it hangs."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_S)
    assert not thread.is_alive(), "the read hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_fifo_a_device_and_a_sparse_4gb_file_are_refused_in_one_line_at_once(
        fifo: Path, sparse: Path) -> None:
    for path, problem in ((fifo, "not a regular file (a FIFO)"), (Path("/dev/zero"), "(a device)"),
                          (sparse, "4294.97 MB, more than the 1 MB")):
        with pytest.raises(ModelError) as caught:
            bounded(lambda path=path: read_labels(path))
        message = str(caught.value)
        assert "\n" not in message and message.startswith(f"{path}: cannot be the labels file: ")
        assert problem in message, message
        assert problem.split(" (")[0] in (user_file_problem(path, MAX_LABELS_BYTES) or ""), path


def test_a_folder_a_missing_file_and_one_past_its_cap(tmp_path: Path) -> None:
    with pytest.raises(EdgecamError, match=r"not a regular file \(a folder\)"):
        read_user_file(tmp_path, "head file")
    with pytest.raises(MissingFileError, match=r"head file not found: .*gone"):
        read_user_file(tmp_path / "gone", "head file")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 4097)
    with pytest.raises(EdgecamError, match="4097 bytes, more than the 4096 bytes"):
        read_user_text(big, "token file", max_bytes=4096)
    assert read_user_text(big, "token file", max_bytes=4097) == "x" * 4097
    assert user_file_problem(tmp_path / "gone", 10) == "no such file"
    assert user_file_problem(big, 10) is not None and user_file_problem(big, 5000) is None


def test_a_symlink_to_a_regular_file_the_user_names_is_followed(tmp_path: Path) -> None:
    """The user's own files may be links (/etc/edgecam/token -> a secrets folder); only what
    they point at is checked."""
    (tmp_path / "real").write_text("cat\ndog\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_labels(tmp_path / "link") == ["cat", "dog"]


def test_a_token_file_that_is_a_fifo_or_dev_zero_is_one_line(fifo: Path) -> None:
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ValueError, match="not a regular file") as caught:
            bounded(lambda path=path: read_token(str(path)))
        assert "\n" not in str(caught.value)


def config_errors(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        bounded(lambda: parse_config(text, "e.yaml", tmp_path))
    return caught.value.lines


@pytest.mark.parametrize("key", ["model.labels", "model.head", "model.path"])
def test_check_config_refuses_a_fifo_or_dev_zero_as_a_model_file(key: str, fifo: Path,
                                                               tmp_path: Path) -> None:
    section, name = key.split(".")
    for path in (fifo, "/dev/zero"):
        lines = config_errors(f"{section}:\n  {name}: {path}\n", tmp_path)
        assert lines == [f"e.yaml:2: {key}: {path}: not a regular file "
                         f"({'a FIFO' if path == fifo else 'a device'})"]


def test_check_config_refuses_a_sparse_4gb_labels_file(sparse: Path, tmp_path: Path) -> None:
    lines = config_errors(f"model:\n  labels: {sparse}\n", tmp_path)
    assert lines == [f"e.yaml:2: model.labels: {sparse}: 4294.97 MB, more than the 1 MB such a "
                     "file may be"]


def test_check_config_refuses_secret_and_tls_files_that_are_not_regular_or_too_big(
        fifo: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.pw"
    big.write_bytes(b"p" * 70_000)
    text = (f"outputs:\n  mqtt:\n    username: u\n    password_file: {big}\n"
            f"    tls:\n      ca_file: {fifo}\n"
            f"web:\n  token_file: /dev/zero\n")
    lines = config_errors(text, tmp_path)
    assert lines == [f"e.yaml:4: outputs.mqtt.password_file: {big}: 70000 bytes, more than the "
                     "65536 bytes such a file may be",
                     f"e.yaml:6: outputs.mqtt.tls.ca_file: {fifo}: not a regular file (a FIFO)",
                     "e.yaml:8: web.token_file: /dev/zero: not a regular file (a device)"]


def test_a_zone_model_s_files_are_checked_too(fifo: Path, tmp_path: Path) -> None:
    text = f"zones:\n  - name: door\n    model:\n      labels: {fifo}\n"
    assert config_errors(text, tmp_path) == [
        f"e.yaml:4: zones[0].model.labels: {fifo}: not a regular file (a FIFO)"]


def test_a_camera_source_that_is_a_fifo_is_refused_a_device_is_not(fifo: Path,
                                                                   tmp_path: Path) -> None:
    assert config_errors(f"camera:\n  source: {fifo}\n", tmp_path) == [
        f"e.yaml:2: camera.source: {fifo}: not a regular file (a FIFO): a camera source is a file, "
        "a folder of photos or a camera device"]
    assert parse_config("camera:\n  source: /dev/null\n", "e.yaml", tmp_path).camera.source == "/dev/null"


def test_a_huge_string_value_is_one_line(tmp_path: Path) -> None:
    long = "a" * 5000
    assert config_errors(f"camera:\n  source: {long}\n", tmp_path) == [
        "e.yaml:2: camera.source: 5,000 characters long (at most 4,096)"]
    lines = config_errors(f"outputs:\n  labels_allow: [{long}]\n", tmp_path)
    assert lines == ["e.yaml:2: outputs.labels_allow: each item must be a label (a non-empty string "
                     "of at most 4,096 characters)"]
    # Under the length cap but with a 300-character folder name: the system refuses the name.
    named = "/tmp/" + "b" * 300 + "/clip.mp4"
    (line,) = config_errors(f"camera:\n  source: {named}\n", tmp_path)
    assert line.startswith("e.yaml:2: camera.source: /tmp/bbb") and "File name too long" in line


def test_a_huge_source_on_the_command_line_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        source_override("a" * 100_000)
    assert caught.value.lines == ["--source: 100,000 characters long (at most 4,096)"]
    assert source_override(" picamera2 ") == "picamera2"


def test_set_aside_renames_to_corrupt_in_one_warning_line(tmp_path: Path, caplog) -> None:
    bad = tmp_path / "default.head"
    bad.write_bytes(b"\0" * 10)
    assert set_aside(bad, "garbage") == tmp_path / "default.head.corrupt"
    assert not bad.exists() and (tmp_path / "default.head.corrupt").read_bytes() == b"\0" * 10
    assert [r.getMessage() for r in caplog.records] == [
        f"{bad}: garbage; set aside as {tmp_path / 'default.head.corrupt'}"]
    assert set_aside(tmp_path / "gone", "garbage") is None  # cannot be renamed: said, and left
