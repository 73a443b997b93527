"""`edgecam learn` refuses a classifier as the embedding extractor, in one line naming the file to
use, and hints in a checkout name the checkout's files (issue 27)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from conftest import REPO
from harness import IMAGES, MODELS
from heads import EXTRACTOR, OTHER_MODEL

from edgecam.cli.tail import tail
from edgecam.common.checkout import EXTRACTOR as EXTRACTOR_NAME
from edgecam.common.checkout import checkout_root, extractor_hint
from edgecam.config import ModelConfig
from edgecam.errors import MissingFileError, ModelError, SourceError
from edgecam.models.fewshot import learn
from edgecam.models.fewshot.embedder import Embedder

CLASSIFIER = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
IMAGENET = MODELS / "imagenet_labels.txt"


def _learn(tmp_path: Path, model: Path, labels: Path | None = None) -> Path:
    config = ModelConfig(path=str(model), labels=str(labels) if labels else "", threads=1)
    head = tmp_path / "my.head"
    image = cv2.imread(str(IMAGES / "cat.bmp"))
    learn.learn(config, head, "cat", [image], Embedder(str(model), threads=1))
    return head


def test_the_default_classifier_is_refused_and_nothing_is_written(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(ModelError) as caught:
        _learn(tmp_path, CLASSIFIER)
    message = str(caught.value)
    assert "\n" not in message and "is a classifier" in message
    assert f"--model ../shared/models/{EXTRACTOR_NAME}" in message  # the checkout's copy
    assert not (tmp_path / "my.head").exists()


def test_a_classifier_whose_outputs_are_its_labels_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"its 1001 outputs are the scores of the labels in"):
        _learn(tmp_path, OTHER_MODEL, IMAGENET)
    assert not (tmp_path / "my.head").exists()


def test_the_extractor_learns(tmp_path: Path) -> None:
    assert _learn(tmp_path, EXTRACTOR, IMAGENET).is_file()


def test_a_missing_extractor_names_the_file_to_pass(tmp_path: Path) -> None:
    config = ModelConfig(path=str(tmp_path / "none.tflite"))
    expected = f"no embedding extractor at .*: pass --model .*{EXTRACTOR_NAME}"
    with pytest.raises(MissingFileError, match=expected):
        learn.load_embedder(config)


def test_outside_a_checkout_the_hint_names_the_extractor_and_the_readme(tmp_path: Path) -> None:
    assert checkout_root(tmp_path) is None
    assert extractor_hint(tmp_path) == (f"--model /path/to/{EXTRACTOR_NAME} "
                                        '(docs/MODELS.md: "Teaching it your own classes")')
    assert checkout_root(REPO) == REPO


def test_tail_in_a_checkout_points_at_the_demo_socket(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(SourceError, match=r"results are on \.run/results\.sock: edgecam tail -c "
                                          r"config/demo\.yaml\)$"):
        tail(str(tmp_path / "results.sock"), raw_json=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match=r"\(is edgecam running\?\)$"):
        tail(str(tmp_path / "results.sock"), raw_json=False)
