"""A piece that is not installed, in real virtualenvs: one line, its own exit code, no traceback.

Each virtualenv is made from Debian's /usr/bin/python3 (as `make install` and
a user on Raspberry Pi OS do) and gets edgecam from this checkout with only
some extras, by real pip. The checkout is built into a wheel once; the
virtualenvs are made when a test first needs them and removed at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import CLI_TIMEOUT_S, REPO
from harness import DEFAULT_MODEL, IMAGES, LABELS, MODELS, base_config, clean_environment

from edgecam.dependencies import CRYPTOGRAPHY, ONNXRUNTIME, OPENCV, PICAMERA2, RUNTIME
from edgecam.errors import (
    EX_NO_CRYPTOGRAPHY,
    EX_NO_ONNXRUNTIME,
    EX_NO_OPENCV,
    EX_NO_PAHO,
    EX_NO_PICAMERA2,
    EX_NO_RUNTIME,
)

DEBIAN_PYTHON = "/usr/bin/python3"
EXTRACTOR = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
PIP_TIMEOUT_S = 600

pytestmark = pytest.mark.skipif(not Path(DEBIAN_PYTHON).exists(), reason="needs Debian's /usr/bin/python3")


@dataclass(frozen=True)
class Venv:
    path: Path

    def pip(self, *args: str) -> None:
        result = subprocess.run([str(self.path / "bin" / "pip"), "--disable-pip-version-check", "-q",
                                 *args], capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                                env=_environment(), check=False)
        assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}{result.stderr}"

    def edgecam(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
        """The virtualenv's console script, with nothing of this checkout's on its path."""
        return subprocess.run([str(self.path / "bin" / "edgecam"), *map(str, args)],
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                              env={**_environment(), **env}, check=False)


def _environment() -> dict[str, str]:
    environment = clean_environment()
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):  # the test run's own, which would shadow the venv's
        environment.pop(name, None)
    return environment


def _make_venv(root: Path, name: str) -> Venv:
    path = root / name
    subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(path)], check=True, timeout=PIP_TIMEOUT_S,
                   capture_output=True)
    return Venv(path)


MakeVenv = Callable[[str, str, tuple[str, ...]], Venv]


@pytest.fixture(scope="session")
def make_venv(request: pytest.FixtureRequest) -> MakeVenv:
    """make_venv(NAME, EXTRAS, MORE): a virtualenv with edgecam[EXTRAS] and the MORE requirements."""
    root = Path(tempfile.mkdtemp(prefix="edgecam-venvs-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    wheels: list[Path] = []

    def make(name: str, extras: str, more: tuple[str, ...] = ()) -> Venv:
        venv = _make_venv(root, name)
        if not wheels:  # the checkout, built once for every virtualenv
            venv.pip("wheel", "--no-deps", "--wheel-dir", str(root / "wheels"), str(REPO))
            wheels.extend((root / "wheels").glob("edgecam-*.whl"))
        venv.pip("install", f"{wheels[0]}[{extras}]", *more)
        return venv

    return make


@pytest.fixture(scope="session")
def without_opencv(make_venv: MakeVenv) -> Venv:
    """`pip install 'edgecam[litert]'`: the runtime, no OpenCV."""
    return make_venv("litert", "litert", ())


@pytest.fixture(scope="session")
def without_runtime(make_venv: MakeVenv) -> Venv:
    """`pip install 'edgecam[opencv]'`: OpenCV, no runtime."""
    return make_venv("opencv", "opencv", ())


@pytest.fixture(scope="session")
def with_paho_1(make_venv: MakeVenv) -> Venv:
    """The runtime and OpenCV, paho-mqtt 1.6.1 (bookworm's python3-paho-mqtt), no picamera2."""
    return make_venv("paho1", "litert,opencv", ("paho-mqtt==1.6.1",))


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def daemon_config(tmp_path: Path, **sections: dict) -> Path:
    path = tmp_path / "edgecam.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, **sections), sort_keys=False))
    return path


def classify(venv: Venv, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty.yaml"  # built-in defaults: no /etc/edgecam/edgecam.yaml can interfere
    empty.write_text("")
    return venv.edgecam("classify", IMAGES / "cat.bmp", "-c", empty, "--model", DEFAULT_MODEL,
                        "--labels", LABELS, **env)


def test_classify_without_opencv_is_one_line(without_opencv: Venv, tmp_path: Path) -> None:
    line = one_line(classify(without_opencv, tmp_path), EX_NO_OPENCV)
    assert line == f"edgecam: {OPENCV.message}"
    assert "sudo apt install python3-opencv" in line and "pip install 'edgecam[opencv]'" in line


def test_run_without_opencv_is_one_line(without_opencv: Venv, tmp_path: Path) -> None:
    result = without_opencv.edgecam("run", "-c", daemon_config(tmp_path))
    assert one_line(result, EX_NO_OPENCV) == f"edgecam: {OPENCV.message}"


@pytest.mark.parametrize("command", ["classify", "run"])
def test_no_runtime_is_one_line(without_runtime: Venv, tmp_path: Path, command: str) -> None:
    if command == "classify":
        result = classify(without_runtime, tmp_path)
    else:
        result = without_runtime.edgecam("run", "-c", daemon_config(tmp_path))
    line = one_line(result, EX_NO_RUNTIME)
    assert line == f"edgecam: {RUNTIME.message}"
    assert "pip install 'edgecam[litert]'" in line


def test_no_runtime_on_a_32_bit_os_says_64_bit_is_needed(without_runtime: Venv, tmp_path: Path) -> None:
    line = one_line(classify(without_runtime, tmp_path, EDGECAM_ARCH="armv7l"), EX_NO_RUNTIME)
    assert line.startswith("edgecam: edgecam needs a 64-bit OS (on a Raspberry Pi, 64-bit Raspberry Pi OS)")
    assert "LiteRT, has no 32-bit wheel" in line


def test_paho_1_with_mqtt_enabled_is_one_line(with_paho_1: Venv, tmp_path: Path) -> None:
    config = daemon_config(tmp_path, outputs={"mqtt": {"enabled": True, "host": "127.0.0.1"}})
    result = with_paho_1.edgecam("run", "-c", config)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == EX_NO_PAHO, result.stderr
    # The daemon logs its start (the model it loaded) before it builds the outputs: those are
    # INFO lines; the error is one line, the last.
    errors = [line for line in result.stderr.splitlines() if not line.startswith("edgecam: INFO: ")]
    assert errors == [result.stderr.splitlines()[-1]], result.stderr
    assert errors[0].startswith("edgecam: outputs.mqtt needs paho-mqtt 2.x, found 1.6.1 ")
    assert "python3-paho-mqtt is 1.6" in errors[0] and errors[0].endswith(
        "pip install 'edgecam[mqtt]' into the virtualenv")


def test_picamera2_for_learning_from_the_camera_is_one_line(with_paho_1: Venv, tmp_path: Path) -> None:
    config = tmp_path / "edgecam.yaml"
    config.write_text(f"camera:\n  source: picamera2\nmodel:\n  path: {EXTRACTOR}\n"
                      f"  head: {tmp_path / 'my.head'}\n  threads: 1\n")
    result = with_paho_1.edgecam("learn", "add", "cat", "--from-camera", "1", "-c", config)
    line = one_line(result, EX_NO_PICAMERA2)
    assert line == f"edgecam: camera.source: {PICAMERA2.message}"
    assert "sudo apt install python3-picamera2" in line
    assert not (tmp_path / "my.head").exists()


def test_an_onnx_model_without_onnxruntime_is_one_line(with_paho_1: Venv, tmp_path: Path) -> None:
    """edgecam[litert,opencv] without the onnx extra: classify and run say what to install."""
    onnx = MODELS / "mobilenet_v2_1.0_224_quant.onnx"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    line = one_line(with_paho_1.edgecam("classify", IMAGES / "cat.bmp", "-c", empty, "--model", onnx,
                                        "--labels", LABELS), EX_NO_ONNXRUNTIME)
    assert line == f"edgecam: {ONNXRUNTIME.message}" and "pip install 'edgecam[onnx]'" in line
    config = daemon_config(tmp_path, model={"path": str(onnx)})
    assert one_line(with_paho_1.edgecam("run", "-c", config), EX_NO_ONNXRUNTIME) == line


def test_an_ai_camera_network_without_picamera2_is_one_line(with_paho_1: Venv, tmp_path: Path) -> None:
    rpk = tmp_path / "imx500_network_mobilenet_v2.rpk"
    rpk.write_bytes(b"9464" + b"\0" * 60)
    config = daemon_config(tmp_path, camera={"source": "picamera2"}, model={"path": str(rpk)})
    line = one_line(with_paho_1.edgecam("run", "-c", config), EX_NO_PICAMERA2)
    assert line == f"edgecam: model.path: {PICAMERA2.message}"


def test_signing_without_cryptography_is_one_line(with_paho_1: Venv, tmp_path: Path) -> None:
    """edgecam[litert,opencv] on Debian's Python without python3-cryptography: keygen and sign say
    what to install, and write nothing."""
    key = tmp_path / "fleet.key"
    line = one_line(with_paho_1.edgecam("fleet", "keygen", key), EX_NO_CRYPTOGRAPHY)
    assert line == f"edgecam: {CRYPTOGRAPHY.message}" and "pip install 'edgecam[fleet]'" in line
    assert list(tmp_path.iterdir()) == []
    key.write_text("not used\n")
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"version": "v1", "url": "https://nas.lan/m.tflite", "sha256": "'
                        + "a" * 64 + '", "labels_url": "https://nas.lan/l.txt", "labels_sha256": "'
                        + "b" * 64 + '"}')
    assert one_line(with_paho_1.edgecam("fleet", "sign", key, manifest), EX_NO_CRYPTOGRAPHY) == line
