"""`edgecam check-config` as a user runs it: the effective config, or every error as FILE:LINE: key: problem.

The loader itself is tested in process in tests/unit/test_config.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import run_edgecam

from edgecam.config import load_config
from edgecam.errors import EX_CONFIG


def write(tmp_path: Path, text: str, name: str = "edgecam.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_prints_the_effective_config(tmp_path: Path) -> None:
    path = write(tmp_path, "camera:\n  source: photos\n  fps: 2\nmodel:\n  top_k: 5\n")
    result = run_edgecam("check-config", "-c", path)
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    # (through JSON: YAML has no tuples, the schema's lists are tuples)
    assert printed == json.loads(json.dumps(dataclasses.asdict(load_config(path))))
    assert printed["camera"]["source"] == str(tmp_path.resolve() / "photos")
    assert printed["model"]["top_k"] == 5
    assert "Traceback" not in result.stderr


def test_check_config_lists_every_error_and_exits_78(tmp_path: Path) -> None:
    """The exit code tells a bad config (EX_CONFIG) from a crash; systemd units rely on it."""
    path = write(tmp_path, "camera:\n  fps: -1\nmodel:\n  top_kk: 3\nlog_level: [debug]\n")
    result = run_edgecam("check-config", "-c", path)
    assert result.returncode == EX_CONFIG == 78
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:2", "camera.fps"], [f"{path}:4", "model.top_kk"], [f"{path}:5", "log_level"]]
    assert all(re.match(rf"^{re.escape(str(path))}:\d+: \S+: .+", line) for line in lines)
    assert result.stdout == ""


def test_check_config_quiet_prints_nothing_when_valid_and_every_error_when_not(tmp_path: Path) -> None:
    """What the unit's ExecStartPre runs: silent on each start, FILE:LINE lines when broken."""
    good = write(tmp_path, "camera:\n  fps: 2\n")
    result = run_edgecam("check-config", "--quiet", "-c", good)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    bad = write(tmp_path, "camera:\n  fps: -1\n", name="bad.yaml")
    result = run_edgecam("check-config", "-q", "-c", bad)
    assert result.returncode == 78
    assert result.stdout == ""
    assert result.stderr.startswith(f"{bad}:2: camera.fps: ")


def test_check_config_with_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    result = run_edgecam("check-config", "-c", path)
    assert result.returncode == 78
    assert result.stderr.splitlines() == [f"{path}:1: (file): not found"]


@pytest.mark.parametrize(("text", "problem"), [
    ("model:\n  head: ''\n", "model.head: must not be empty"),
    ("model:\n  head: 3\n", "model.head: expected the path of a head file"),
    ("model:\n  head_min_similarity: 1.5\n", "model.head_min_similarity: 1.5 is out of range (0..1)"),
    ("model:\n  head_min_similarity: high\n", "model.head_min_similarity: expected a number"),
])
def test_bad_head_config_is_reported_with_its_line(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "edgecam.yaml"
    config.write_text(text)
    result = run_edgecam("check-config", "-c", config)
    assert result.returncode == 78
    assert f"{config}:2: {problem}" in result.stderr
