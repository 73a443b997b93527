"""The classifier on the real quantized MobileNets and photos in ../shared."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import IMAGES, MODELS

import edgecam.models.classifier
from edgecam.core.frames import FrameFormatError
from edgecam.core.labels import BACKGROUND, align_labels, read_labels
from edgecam.core.results import Classification
from edgecam.errors import ModelError
from edgecam.models.classifier import Classifier
from edgecam.models.preprocess import Preprocessor

DEFAULT_MODEL = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
SMALL_MODEL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
LABELS = MODELS / "imagenet_labels.txt"

EXPECTED = {  # ../shared/README.md: top-1 of mobilenet_v2_1.0_224_quant
    "cat.bmp": (286, "Egyptian cat"),
    "grace_hopper.bmp": (653, "military uniform"),
    "parrot.jpg": (89, "macaw"),
}


def read_image(name: str) -> np.ndarray:
    image = cv2.imread(str(IMAGES / name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return image


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    """One interpreter for the module, as the daemon keeps one for its whole life."""
    return Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1, top_k=5)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return read_image("cat.bmp")


def top(result: Classification) -> tuple[int, str]:
    return result.top.index, result.top.label


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_default_model_knows_the_photos(classifier: Classifier, name: str) -> None:
    assert top(classifier.classify(read_image(name))) == EXPECTED[name]


def test_small_128px_model_knows_the_parrot() -> None:
    """A model with another input size: the preprocessor must follow the model, not assume 224."""
    small = Classifier(str(SMALL_MODEL), str(LABELS), threads=1)
    assert small.input_size == (128, 128)
    assert top(small.classify(read_image("parrot.jpg"))) == EXPECTED["parrot.jpg"]


def test_stretch_resize_still_gets_the_cat(cat: np.ndarray) -> None:
    stretch = Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1, resize="stretch")
    assert top(stretch.classify(cat)) == EXPECTED["cat.bmp"]


def test_scores_are_dequantized_probabilities_best_first(classifier: Classifier, cat: np.ndarray) -> None:
    labels = classifier.classify(cat).labels
    assert len(labels) == 5
    scores = [label.score for label in labels]
    assert all(type(score) is float and 0.0 <= score <= 1.0 for score in scores)
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0.5  # a confident cat, not a raw uint8 count such as 224
    assert len({label.index for label in labels}) == 5
    assert all(label.label == classifier.labels[label.index] for label in labels)


@pytest.mark.parametrize("top_k", [1, 3, 1001, 5000])
def test_top_k_is_respected(cat: np.ndarray, top_k: int) -> None:
    """Asking for more labels than the model has gives all of them, never an error."""
    result = Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1, top_k=top_k).classify(cat)
    assert len(result.labels) == min(top_k, 1001)
    assert top(result) == EXPECTED["cat.bmp"]


def test_same_image_twice_gives_identical_scores(classifier: Classifier, cat: np.ndarray) -> None:
    """The input tensor and scratch buffers are reused; nothing of a previous frame may leak in."""
    first = classifier.classify(cat)
    classifier.classify(read_image("parrot.jpg"))
    classifier.classify(cv2.cvtColor(cat, cv2.COLOR_BGR2GRAY))
    second = classifier.classify(cat)
    assert first.labels == second.labels


def test_results_do_not_change_after_the_fact(classifier: Classifier, cat: np.ndarray) -> None:
    """A result must be a value: the scores buffer reused by the next frame must not alter it."""
    result = classifier.classify(cat)
    before = [(label.index, label.score) for label in result.labels]
    classifier.classify(read_image("grace_hopper.bmp"))
    assert [(label.index, label.score) for label in result.labels] == before


@pytest.mark.parametrize("make", [
    pytest.param(lambda cat: cv2.cvtColor(cat, cv2.COLOR_BGR2GRAY), id="gray-2d"),
    pytest.param(lambda cat: cv2.cvtColor(cat, cv2.COLOR_BGR2GRAY)[:, :, None], id="gray-hw1"),
    pytest.param(lambda cat: cv2.cvtColor(cat, cv2.COLOR_BGR2BGRA), id="bgra"),
    pytest.param(lambda cat: np.full((1, 1, 3), 127, np.uint8), id="1x1"),
    pytest.param(lambda cat: np.zeros((1, 640, 3), np.uint8), id="1-row"),
    pytest.param(lambda cat: np.zeros((480, 1), np.uint8), id="1-column-gray"),
    pytest.param(lambda cat: cv2.resize(cat, (3840, 2160)), id="4k"),
    pytest.param(lambda cat: cat[10:300, 20:200], id="non-contiguous-view"),
])
def test_odd_frames_classify(classifier: Classifier, cat: np.ndarray, make) -> None:
    frame = make(cat)
    result = classifier.classify(frame)
    assert len(result.labels) == classifier.top_k
    assert all(0.0 <= label.score <= 1.0 for label in result.labels)


def test_gray_and_bgra_cat_is_still_a_cat(classifier: Classifier, cat: np.ndarray) -> None:
    """The channel conversion must be right, not merely not crash: BGRA is the cat in colour."""
    assert top(classifier.classify(cv2.cvtColor(cat, cv2.COLOR_BGR2BGRA))) == EXPECTED["cat.bmp"]
    assert top(classifier.classify(cv2.resize(cat, (3840, 2160)))) == EXPECTED["cat.bmp"]


@pytest.mark.parametrize("frame", [
    pytest.param(np.empty((0, 0, 3), np.uint8), id="0x0x3"),
    pytest.param(np.array([], np.uint8), id="empty-1d"),
    pytest.param(np.empty((480, 0, 3), np.uint8), id="480x0x3"),
])
def test_empty_frame_is_a_frame_format_error(classifier: Classifier, frame: np.ndarray) -> None:
    with pytest.raises(FrameFormatError):
        classifier.classify(frame)


@pytest.mark.parametrize("frame", [
    pytest.param(np.zeros((10, 10, 2), np.uint8), id="2-channels"),
    pytest.param(np.zeros((2, 10, 10, 3), np.uint8), id="4-d"),
    pytest.param(np.zeros((10, 10, 3), np.float32), id="float"),
])
def test_frames_that_are_not_images_are_refused(classifier: Classifier, frame: np.ndarray) -> None:
    with pytest.raises(FrameFormatError):
        classifier.classify(frame)


def test_one_interpreter_for_many_frames(monkeypatch: pytest.MonkeyPatch, cat: np.ndarray) -> None:
    """Re-creating the interpreter per frame is the classic slow-Pi mistake (DESIGN.md)."""
    real_class, runtime = edgecam.models.classifier.interpreter_class()
    created = []

    class CountingInterpreter(real_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:
            created.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(edgecam.models.classifier, "interpreter_class",
                        lambda: (CountingInterpreter, runtime))
    classifier = Classifier(str(DEFAULT_MODEL), str(LABELS), threads=1)
    frames = [cat, read_image("parrot.jpg"), cv2.cvtColor(cat, cv2.COLOR_BGR2GRAY),
              np.zeros((48, 64, 3), np.uint8)] * 10
    results = [classifier.classify(frame) for frame in frames]
    assert len(created) == 1
    assert [top(r) for r in results[:2]] == [EXPECTED["cat.bmp"], EXPECTED["parrot.jpg"]]
    assert [top(r) for r in results[-4:-2]] == [EXPECTED["cat.bmp"], EXPECTED["parrot.jpg"]]


# --- labels ---------------------------------------------------------------------------------------


def test_1001_labels_for_1000_outputs_drop_background() -> None:
    labels = [BACKGROUND, *(f"class {i}" for i in range(1000))]
    aligned = align_labels(labels, 1000, "labels.txt")
    assert len(aligned) == 1000 and aligned[0] == "class 0"


def test_1000_labels_for_1001_outputs_add_background() -> None:
    labels = [f"class {i}" for i in range(1000)]
    aligned = align_labels(labels, 1001, "labels.txt")
    assert len(aligned) == 1001 and aligned[0] == BACKGROUND and aligned[286] == "class 285"


def test_matching_count_is_left_alone() -> None:
    labels = ["a", "b", "c"]
    assert align_labels(labels, 3, "labels.txt") == labels


def test_wrong_label_count_is_a_model_error() -> None:
    with pytest.raises(ModelError, match=r"labels.txt: 10 labels but the model has 1001 outputs"):
        align_labels([f"class {i}" for i in range(10)], 1001, "labels.txt")


def test_coral_numbered_labels_are_read(tmp_path: Path) -> None:
    path = tmp_path / "coral_labels.txt"
    path.write_text("0  background\n1  tench, Tinca tinca\n2:goldfish\n\n3 great white shark\n")
    assert read_labels(path) == ["background", "tench, Tinca tinca", "goldfish", "great white shark"]


def test_coral_numbered_1000_labels_file_lines_up_with_the_model(tmp_path: Path, cat: np.ndarray) -> None:
    """A numbered file without `background` (Coral's imagenet_labels) must still give index 286 = cat."""
    names = LABELS.read_text().splitlines()
    assert names[0] == BACKGROUND and len(names) == 1001
    path = tmp_path / "numbered.txt"
    path.write_text("".join(f"{i}  {name}\n" for i, name in enumerate(names[1:])))
    result = Classifier(str(DEFAULT_MODEL), str(path), threads=1).classify(cat)
    assert top(result) == EXPECTED["cat.bmp"]


def test_1000_line_labels_file_lines_up_with_the_model(tmp_path: Path, cat: np.ndarray) -> None:
    path = tmp_path / "no_background.txt"
    path.write_text("\n".join(LABELS.read_text().splitlines()[1:]) + "\n")
    assert top(Classifier(str(DEFAULT_MODEL), str(path), threads=1).classify(cat)) == EXPECTED["cat.bmp"]


# --- preprocessing for models whose input is not plain 0..255 uint8 -------------------------------


@pytest.mark.parametrize(("dtype", "scale", "zero", "expected"), [
    (np.uint8, 1 / 128, 128, [0, 128, 255]),  # MobileNet uint8: the identity, written directly
    (np.int8, 1 / 128, 0, [-128, 0, 127]),  # int8: pixel - 128
    (np.float32, 0.0, 0, [-1.0, 0.0, 127 / 128]),  # float: (pixel - 128) / 128
])
def test_preprocessor_maps_pixels_through_the_input_quantization(dtype, scale, zero, expected) -> None:
    gray = np.array([[0, 128, 255]], np.uint8)
    tensor = np.zeros((1, 1, 3, 3), dtype)
    Preprocessor(1, 3, np.dtype(dtype), scale, zero, "stretch").write(gray, lambda: tensor)
    np.testing.assert_allclose(tensor[0, 0, :, 0], expected, atol=1e-6)
    assert (tensor[0, 0, :, 0] == tensor[0, 0, :, 2]).all()


def test_preprocessor_writes_rgb_from_bgr() -> None:
    """OpenCV frames are BGR; the model was trained on RGB."""
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 200  # blue
    tensor = np.zeros((1, 4, 4, 3), np.uint8)
    Preprocessor(4, 4, np.dtype(np.uint8), 1 / 128, 128, "crop").write(bgr, lambda: tensor)
    assert (tensor[0, :, :, 2] == 200).all() and (tensor[0, :, :, :2] == 0).all()
