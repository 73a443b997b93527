"""`edgecam doctor` as a user runs it: the real model on the real photos, real sockets, a real daemon.

Each case breaks one thing a first set-up gets wrong and expects the doctor to
exit non-zero naming that check, with every other required check still ✓. The
unreadable socket folder is unreadable for real: the doctor runs as `nobody`
(setpriv), since for root permission bits stop nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_edgecam
from harness import DEFAULT_MODEL, IMAGES, MODELS, base_config, clean_environment, write_config

from edgecam.doctor import ORDER
from edgecam.doctor.check import ADVISORY

REQUIRED = [name for name in ORDER if name not in ADVISORY]
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def doctor(config: Path, *args: str, env: dict[str, str] | None = None,
           prefix: list[str] | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Runs `edgecam doctor -c CONFIG --json`; the result and its checks by name."""
    command = [*(prefix or []), sys.executable, "-m", "edgecam", "doctor", "-c", str(config), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            env={**clean_environment(), **(env or {})})
    assert "Traceback" not in result.stderr, result.stderr
    checks = json.loads(result.stdout)
    assert [check["check"] for check in checks] == list(ORDER)
    return result, {check["check"]: check for check in checks}


def assert_only_failing(checks: dict[str, Any], name: str) -> dict[str, Any]:
    """`name` failed with a fix, and it is the only required check that did."""
    failing = [n for n in REQUIRED if not checks[n]["ok"]]
    assert failing == [name], {n: checks[n] for n in failing}
    assert checks[name]["fix"], checks[name]
    return checks[name]


def write(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    return write_config(tmp_path / "edgecam.yaml", base_config(tmp_path, **sections))


def test_a_good_config_passes_every_required_check_and_exits_0(tmp_path: Path) -> None:
    config = write(tmp_path)
    result = run_edgecam("doctor", "-c", config, env=clean_environment())
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in REQUIRED:
        assert any(line.startswith(f"✓ {name}: ") for line in lines), (name, result.stdout)
    for line in lines:
        if line.startswith("✗ "):  # only advisory checks may fail, each with its fix
            assert line.split(":")[0][2:] in ADVISORY and " — " in line, line
    assert "advisory (edgecam runs without these):" in lines
    assert lines[-1].startswith("ready: everything needed to run passes"), lines[-1]
    # The first photo of the folder (cat.bmp), really read and classified by the real model.
    camera = next(line for line in lines if line.startswith("✓ camera: "))
    assert "512x341 frames" in camera and " fps" in camera, camera
    model = next(line for line in lines if line.startswith("✓ model: "))
    assert "1001 labels" in model and "Egyptian cat" in model, model


def test_json_is_the_list_of_checks_with_their_four_keys(tmp_path: Path) -> None:
    result, checks = doctor(write(tmp_path))
    assert result.returncode == 0, result.stdout
    for check in checks.values():
        assert set(check) == {"check", "ok", "detail", "fix"}
        assert isinstance(check["ok"], bool) and check["detail"]
        assert (check["fix"] is None) == check["ok"], check
    assert all(checks[name]["ok"] for name in REQUIRED)


def test_a_missing_model_fails_the_model_check(tmp_path: Path) -> None:
    result, checks = doctor(write(tmp_path, model={"path": str(tmp_path / "missing.tflite")}))
    assert result.returncode != 0
    model = assert_only_failing(checks, "model")
    assert "not found" in model["detail"] and "fetch-model" in model["fix"]


def test_a_labels_file_of_the_wrong_length_fails_the_model_check(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(10)))
    result, checks = doctor(write(tmp_path, model={"labels": str(labels)}))
    assert result.returncode != 0
    model = assert_only_failing(checks, "model")
    assert "10 labels but the model has 1001 outputs" in model["detail"]
    assert "model.labels" in model["fix"]


def test_a_head_config_is_checked_with_its_extractor_and_classes(tmp_path: Path) -> None:
    extractor = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
    head = tmp_path / "default.head"
    learned = run_edgecam("learn", "add", "my cat", IMAGES / "cat.bmp", "--head", head,
                          "--model", extractor)
    assert learned.returncode == 0, learned.stderr
    result, checks = doctor(write(tmp_path, model={"path": str(extractor), "head": str(head)}))
    assert result.returncode == 0, checks["model"]
    assert "with the head default.head: 224x224 input, 1 class(es)" in checks["model"]["detail"]
    assert checks["model"]["detail"].endswith(": my cat 1.00"), checks["model"]
    assert checks["disk"]["detail"].endswith(f"free for {tmp_path}"), checks["disk"]


@pytest.mark.parametrize("source", ["/dev/video9", "missing.jpg"])
def test_a_camera_that_cannot_open_fails_the_camera_check(tmp_path: Path, source: str) -> None:
    result, checks = doctor(write(tmp_path, camera={"source": source}))
    assert result.returncode != 0
    camera = assert_only_failing(checks, "camera")
    assert "camera.source" in camera["detail"]
    # The model is still timed, on a blank frame.
    assert "a blank frame classified in" in checks["model"]["detail"]


def test_a_socket_folder_that_is_a_file_fails_the_socket_folder_check(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("not a folder\n")
    result, checks = doctor(write(tmp_path))
    assert result.returncode != 0
    folder = assert_only_failing(checks, "socket folder")
    assert "is a file, not a folder" in folder["detail"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder `nobody` may read (tmp_path is inside root's private pytest folder)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the doctor as nobody")
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c",
                            f"import edgecam; open({str(DEFAULT_MODEL)!r}, 'rb').close()"],
                           capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot read the checkout or the model: {probe.stderr[-200:]!r}")
    folder = Path(tempfile.mkdtemp(prefix="edgecam-doctor-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_socket_folder_the_user_cannot_read_fails_the_socket_folder_check(shared_dir: Path) -> None:
    config = write(shared_dir)
    config.chmod(0o644)
    closed = shared_dir / "run"
    closed.mkdir(mode=0o700)
    result, checks = doctor(config, prefix=AS_NOBODY)
    assert result.returncode != 0
    folder = assert_only_failing(checks, "socket folder")
    assert f"nobody cannot read {closed}" in folder["detail"] and "0700" in folder["detail"]
    assert "edgecam" in folder["fix"]
    # root may read anything: the same folder passes for root.
    result, checks = doctor(config)
    assert result.returncode == 0 and checks["socket folder"]["ok"], checks["socket folder"]


def test_a_running_daemon_holds_the_camera_which_is_skipped_with_its_fps(tmp_path: Path, daemons) -> None:
    daemon = daemons(base_config(tmp_path))
    daemon.wait_socket()
    result, checks = doctor(daemon.config_path)
    assert result.returncode == 0, checks
    camera = checks["camera"]
    assert camera["ok"], camera
    assert camera["detail"].startswith("the daemon is running and holds the camera: its stats say ")
    assert " fps captured" in camera["detail"], camera
    assert "a blank frame classified in" in checks["model"]["detail"]


def test_a_32_bit_arm_os_is_the_first_line_and_says_why(tmp_path: Path) -> None:
    result = run_edgecam("doctor", "-c", write(tmp_path), env={**clean_environment(),
                                                              "EDGECAM_ARCH": "armv7l"})
    assert result.returncode != 0
    first = result.stdout.splitlines()[0]
    assert first.startswith("✗ platform: edgecam needs a 64-bit OS") and "armv7l" in first, first
    assert "LiteRT, has no 32-bit wheel" in first
    assert result.stdout.splitlines()[-1].startswith("not ready: platform must pass"), result.stdout


def test_an_invalid_config_names_its_line_and_checks_nothing_that_needs_it(tmp_path: Path) -> None:
    config = tmp_path / "edgecam.yaml"
    config.write_text("camera:\n  fps: 999\n")
    result, checks = doctor(config)
    assert result.returncode != 0
    assert not checks["config"]["ok"]
    assert checks["config"]["detail"].startswith(f"{config}:2: camera.fps:"), checks["config"]
    assert checks["model"]["detail"] == "not checked: the config does not load"
    assert checks["runtime"]["ok"] and checks["platform"]["ok"]


def test_the_model_check_shows_what_threads_auto_chose_and_why(tmp_path: Path) -> None:
    _, checks = doctor(write(tmp_path, model={"threads": "auto"}))
    detail = checks["model"]["detail"]
    assert checks["model"]["ok"], detail
    assert "on LiteRT, threads: auto chose " in detail and "1: " in detail and " ms per frame" in detail


def test_the_model_check_runs_an_onnx_model_on_onnx_runtime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="edgecam[onnx] (onnxruntime) is not installed")
    onnx = MODELS / "mobilenet_v2_1.0_224_quant.onnx"
    _, checks = doctor(write(tmp_path, model={"path": str(onnx), "threads": 1}))
    detail = checks["model"]["detail"]
    assert checks["model"]["ok"], detail
    assert "mobilenet_v2_1.0_224_quant.onnx" in detail and "on ONNX Runtime " in detail
    assert "1 thread" in detail
