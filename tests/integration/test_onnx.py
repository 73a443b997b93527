"""ONNX Runtime (edgecam/models/onnx.py) with the real MobileNet v2 converted to ONNX.

../shared/models/mobilenet_v2_1.0_224_quant.onnx is the default .tflite
converted with tflite2onnx (a QDQ graph, float NCHW input): it must give the
.tflite's top-1 on every photo, in `edgecam classify` and in the daemon end
to end, and the back-end checks must end with one line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import pytest
from conftest import run_edgecam
from harness import DEFAULT_MODEL, EXPECTED_TOP1, IMAGES, LABELS, MODELS, base_config, write_config

from edgecam.errors import EX_DATAERR, EX_UNAVAILABLE
from edgecam.models.classifier import Classifier

pytest.importorskip("onnxruntime", reason="edgecam[onnx] (onnxruntime) is not installed")

ONNX_MODEL = MODELS / "mobilenet_v2_1.0_224_quant.onnx"


def one_line(result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO: Created")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("photo", sorted(EXPECTED_TOP1))
def test_the_onnx_model_gives_the_tflite_top_1_on_every_photo(photo: str) -> None:
    image = cv2.imread(str(IMAGES / photo))
    onnx = Classifier(str(ONNX_MODEL), str(LABELS), threads=1).classify(image)
    tflite = Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1).classify(image)
    assert onnx.top.label == tflite.top.label == EXPECTED_TOP1[photo]
    assert onnx.top.index == tflite.top.index
    assert abs(onnx.top.score - tflite.top.score) < 0.3  # its own kernels: close, not equal


def test_the_onnx_model_reports_its_layout_runtime_and_threads() -> None:
    classifier = Classifier(str(ONNX_MODEL), str(LABELS), threads=2)
    model = classifier._model
    assert model.nchw and model.input_dtype.name == "float32"
    assert classifier.input_size == (224, 224) and len(classifier.labels) == 1001
    assert classifier.runtime.startswith("ONNX Runtime ") and "CPUExecutionProvider" in classifier.runtime
    assert classifier.threads == 2


def test_classify_with_an_onnx_model(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run_edgecam("classify", *(IMAGES / p for p in sorted(EXPECTED_TOP1)), "-c", empty,
                         "--model", ONNX_MODEL, "--labels", LABELS, "--json")
    assert result.returncode == 0, result.stderr
    tops = [line.split('"label": "')[1].split('"')[0] for line in result.stdout.splitlines()]
    assert tops == [EXPECTED_TOP1[p] for p in sorted(EXPECTED_TOP1)]


def test_the_daemon_runs_the_onnx_model_end_to_end(tmp_path: Path, daemons) -> None:
    config = base_config(tmp_path, model={"path": str(ONNX_MODEL), "threads": "auto"},
                         camera={"fps": 10})
    daemon = daemons(config)
    labels = {m["labels"][0]["label"] for m in daemon.client().messages("classification", 6)}
    assert labels == set(EXPECTED_TOP1.values())
    assert daemon.stop() == 0
    log = daemon.log()
    assert "ONNX Runtime" in log and "model.threads: auto:" in log


def test_a_model_file_that_does_not_match_model_backend_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path, model={"backend": "onnx"}))
    result = run_edgecam("check-config", "-c", path)
    assert result.returncode == 78
    assert f"{path}:" in result.stderr and "model.backend: onnx cannot run " \
        "mobilenet_v2_1.0_224_quant.tflite" in result.stderr and "model.backend: litert" in result.stderr


def test_a_provider_this_onnxruntime_lacks_is_one_line_unless_backend_is_auto(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wanted = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    config = base_config(tmp_path, model={"path": str(ONNX_MODEL), "backend": "onnx",
                                          "providers": list(wanted)})
    result = run_edgecam("run", "-c", write_config(tmp_path / "c.yaml", config))
    line = one_line(result)
    assert result.returncode == EX_UNAVAILABLE
    assert "model.providers: TensorrtExecutionProvider, CUDAExecutionProvider not available" in line
    with caplog.at_level(logging.WARNING):
        classifier = Classifier(str(ONNX_MODEL), str(LABELS), threads=1, backend="auto",
                                providers=wanted)
    assert "CPUExecutionProvider" in classifier.runtime  # allowed by auto, and said
    assert any("not available" in r.getMessage() and "running on CPUExecutionProvider" in r.getMessage()
               for r in caplog.records)


def test_a_tflite_file_named_onnx_is_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(DEFAULT_MODEL.read_bytes())
    result = run_edgecam("classify", IMAGES / "cat.bmp", "-c", write_config(tmp_path / "e.yaml", ""),
                         "--model", fake, "--labels", LABELS)
    assert result.returncode == EX_DATAERR
    assert one_line(result).startswith(f"edgecam: {fake}: not a usable ONNX model: ")


def test_learn_and_classify_with_an_onnx_model_as_the_extractor(tmp_path: Path) -> None:
    """`edgecam learn` runs on the CPU back-ends: here ONNX Runtime's output is the embedding."""
    config = write_config(tmp_path / "e.yaml", {"model": {"threads": 1}})
    head = tmp_path / "mine.head"
    for label, photo in (("kitty", "cat.bmp"), ("bird", "parrot.jpg")):
        learned = run_edgecam("learn", "add", label, IMAGES / photo, "--model", ONNX_MODEL,
                              "--head", head, "-c", config)
        assert learned.returncode == 0, learned.stderr
    result = run_edgecam("classify", IMAGES / "parrot.jpg", IMAGES / "cat.bmp", "-c", config,
                         "--model", ONNX_MODEL, "--head", head, "--json")
    assert result.returncode == 0, result.stderr
    tops = [line.split('"label": "')[1].split('"')[0] for line in result.stdout.splitlines()]
    assert tops == ["bird", "kitty"]
