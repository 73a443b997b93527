"""`edgecam classify` as a user runs it: right labels, JSON output, and one clear line per mistake."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import IMAGES, MODELS, run_edgecam

from edgecam.outputs.human import RUNNER_UP_FLOOR

PHOTOS = {"cat.bmp": (286, "Egyptian cat"), "grace_hopper.bmp": (653, "military uniform"),
          "parrot.jpg": (89, "macaw")}

# The TensorFlow Lite C++ runtime writes this itself when it creates the interpreter; no
# environment variable silences it. It is the runtime's notice, not edgecam's error report.
_RUNTIME_NOTICE = re.compile(r"^INFO: Created TensorFlow Lite \S+ delegate for CPU\.$")


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    """A config of built-in defaults, so a /etc/edgecam/edgecam.yaml on this machine cannot interfere."""
    path = tmp_path / "empty.yaml"
    path.write_text("")
    return path


def classify(*args: str | Path, config: Path, model: Path | None = None, labels: Path | None = None):
    model = model or MODELS / "mobilenet_v2_1.0_224_quant.tflite"
    labels = labels or MODELS / "imagenet_labels.txt"
    return run_edgecam("classify", *args, "-c", config, "--model", model, "--labels", labels)


def edgecam_lines(stderr: str) -> list[str]:
    """stderr without the runtime's own notice; no traceback allowed."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if not _RUNTIME_NOTICE.match(line)]


def one_error_line(result) -> str:
    assert result.returncode != 0
    lines = edgecam_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecam: "), lines[0]
    return lines[0]


def text_results(stdout: str) -> dict[str, list[tuple[float, str, int]]]:
    """Parses the text output: an image path, then `  SCORE  LABEL (INDEX)` lines."""
    results: dict[str, list[tuple[float, str, int]]] = {}
    current: list[tuple[float, str, int]] = []
    for line in stdout.splitlines():
        match = re.fullmatch(r"  (\d\.\d{3})  (.+) \((\d+)\)", line)
        if match:
            current.append((float(match[1]), match[2], int(match[3])))
        else:
            current = results[line] = []
    return results


def test_prints_the_right_top_label_for_each_photo(empty_config: Path) -> None:
    images = [IMAGES / name for name in sorted(PHOTOS)]
    result = classify(*images, config=empty_config)
    assert result.returncode == 0, result.stderr
    assert edgecam_lines(result.stderr) == []
    results = text_results(result.stdout)
    assert list(results) == [str(image) for image in images]
    for image in images:
        score, label, index = results[str(image)][0]
        assert (index, label) == PHOTOS[image.name]
        # model.top_k's default is 3; runners-up under the floor are not printed (--json has them)
        shown = results[str(image)]
        assert 1 <= len(shown) <= 3
        assert all(runner_up >= RUNNER_UP_FLOOR for runner_up, _label, _index in shown[1:])
        assert 0 < score <= 1
    grace = results[str(IMAGES / "grace_hopper.bmp")]
    assert len(grace) == 3, grace  # its runners-up score over the floor: all three are shown


def test_json_is_one_object_per_image(empty_config: Path) -> None:
    images = [IMAGES / name for name in sorted(PHOTOS)]
    result = classify(*images, "--json", "--top-k", "5", config=empty_config)
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [obj["image"] for obj in objects] == [str(image) for image in images]
    for image, obj in zip(images, objects, strict=True):
        assert len(obj["labels"]) == 5
        assert all(set(item) == {"index", "label", "score"} for item in obj["labels"])
        assert all(isinstance(item["index"], int) and isinstance(item["score"], float)
                   for item in obj["labels"])
        best = obj["labels"][0]
        assert (best["index"], best["label"]) == PHOTOS[image.name]


def test_small_model_from_the_command_line(empty_config: Path) -> None:
    result = classify(IMAGES / "parrot.jpg", "--json", config=empty_config,
                      model=MODELS / "mobilenet_v1_0.25_128_quant.tflite")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["labels"][0]["label"] == "macaw"


def test_bad_images_are_reported_and_the_others_still_classified(tmp_path: Path, empty_config: Path
                                                                 ) -> None:
    """One unreadable photo in a batch must not hide the results of the rest."""
    not_an_image = tmp_path / "x.jpg"
    not_an_image.write_text("this is not a JPEG\n")
    missing = tmp_path / "missing.jpg"
    result = classify(not_an_image, IMAGES / "cat.bmp", missing, IMAGES / "parrot.jpg", config=empty_config)
    assert result.returncode != 0
    errors = edgecam_lines(result.stderr)
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith(f"edgecam: {not_an_image}: ")
    assert errors[1].startswith(f"edgecam: {missing}: ")
    results = text_results(result.stdout)
    assert list(results) == [str(IMAGES / "cat.bmp"), str(IMAGES / "parrot.jpg")]
    assert results[str(IMAGES / "cat.bmp")][0][1] == "Egyptian cat"
    assert results[str(IMAGES / "parrot.jpg")][0][1] == "macaw"


def _invoking_error(tmp_path: Path) -> tuple[Path, Path]:
    return MODELS / "model_invoking_error.tflite", MODELS / "imagenet_labels.txt"


def _truncated(tmp_path: Path) -> tuple[Path, Path]:
    """A download cut short: the first half of the default model."""
    data = (MODELS / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    path = tmp_path / "truncated.tflite"
    path.write_bytes(data[: len(data) // 2])
    return path, MODELS / "imagenet_labels.txt"


def _text_model(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "model.tflite"
    path.write_text("not a model\n")
    return path, MODELS / "imagenet_labels.txt"


def _wrong_label_count(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "labels.txt"
    path.write_text("".join(f"class {i}\n" for i in range(990)))
    return MODELS / "mobilenet_v2_1.0_224_quant.tflite", path


def _missing_model(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "nowhere" / "model.tflite", MODELS / "imagenet_labels.txt"


def _missing_labels(tmp_path: Path) -> tuple[Path, Path]:
    return MODELS / "mobilenet_v2_1.0_224_quant.tflite", tmp_path / "labels.txt"


@pytest.mark.parametrize(("make", "culprit", "words"), [
    (_invoking_error, "model", ""),
    (_truncated, "model", "TensorFlow Lite"),
    (_text_model, "model", "TensorFlow Lite"),
    (_wrong_label_count, "labels", "990 labels but the model has 1001 outputs"),
    (_missing_model, "model", "not found"),
    (_missing_labels, "labels", "not found"),
])
def test_unusable_model_or_labels_is_one_clear_line(tmp_path: Path, empty_config: Path, make, culprit: str,
                                                    words: str) -> None:
    model, labels = make(tmp_path)
    result = classify(IMAGES / "cat.bmp", config=empty_config, model=model, labels=labels)
    line = one_error_line(result)
    assert str(model if culprit == "model" else labels) in line
    assert words in line
    assert result.stdout == ""


def test_embedding_extractor_is_not_an_image_classifier(empty_config: Path) -> None:
    """A model with a 1024-wide embedding instead of class scores must be refused up front."""
    model = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
    result = classify(IMAGES / "cat.bmp", config=empty_config, model=model)
    line = one_error_line(result)
    assert "not an image classifier" in line
    assert str(model) in line


def test_model_from_the_config_file(tmp_path: Path) -> None:
    """Without --model/--labels, model.path and model.labels (relative to the config) are used."""
    shutil.copy(MODELS / "mobilenet_v1_0.25_128_quant.tflite", tmp_path / "small.tflite")
    shutil.copy(MODELS / "imagenet_labels.txt", tmp_path / "labels.txt")
    config = tmp_path / "edgecam.yaml"
    config.write_text("model:\n  path: small.tflite\n  labels: labels.txt\n  top_k: 1\n")
    result = run_edgecam("classify", IMAGES / "parrot.jpg", "-c", config, "--json", cwd="/")
    assert result.returncode == 0, result.stderr
    labels = json.loads(result.stdout)["labels"]
    assert [item["label"] for item in labels] == ["macaw"]
