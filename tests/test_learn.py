"""Few-shot learning by weight imprinting, with the real embedding extractor on the real photos.

Each photo in ../shared/images is one class (cat, hopper, parrot). Classes are
learned from at most three training views (crops, mirror images, brightness
changes: tests/learn_views.py) and tested on other, held-out views of the same
photos; a view used for training is never classified in a test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGES, MODELS, run_edgecam
from harness import base_config, wait_for
from learn_views import PHOTOS, TEST, TRAIN, scenes, views, write_views

import edgecam.models.fewshot.head
import edgecam.models.fewshot.learn
from edgecam.common.files import file_sha256
from edgecam.config import Config, ModelConfig, load_config
from edgecam.errors import EdgecamError, MissingFileError, ModelError, SourceError
from edgecam.models.factory import make_classifier, refresh_classifier
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head, HeadError, merge_heads
from edgecam.models.fewshot.imprint import SCALE, UNKNOWN_INDEX, HeadClassifier
from edgecam.sources.base import Source

EXTRACTOR = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
OTHER_MODEL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"  # a [1, 1001] output: another "extractor"
MIN_SIMILARITY = Config().model.head_min_similarity
LABELS = tuple(PHOTOS)  # cat, hopper, parrot
_RUNTIME_NOTICE = re.compile(r"^INFO: Created TensorFlow Lite \S+ delegate for CPU\.$")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """One interpreter for the module, as the daemon keeps one."""
    return Embedder(str(EXTRACTOR), threads=1)


@pytest.fixture(scope="module")
def train(embedder: Embedder) -> dict[str, list[np.ndarray]]:
    """The embeddings of each class's training views."""
    return {label: [embedder.embed(v) for v in views(label, TRAIN)] for label in LABELS}


def make_head(embedder: Embedder, train: dict[str, list[np.ndarray]], labels=LABELS,
              examples: int = 3) -> Head:
    head = Head(embedder.sha256, embedder.dim, EXTRACTOR.name)
    for label in labels:
        head.add(label, train[label][:examples])
    return head


def classifier_for(embedder: Embedder, head: Head, min_similarity: float = MIN_SIMILARITY,
                   top_k: int = 3) -> HeadClassifier:
    return HeadClassifier(embedder, head, min_similarity=min_similarity, top_k=top_k)


def top(classifier: HeadClassifier, image: np.ndarray) -> tuple[int, str]:
    best = classifier.classify(image).top
    return best.index, best.label


def model_config(head: Path | None, **kw) -> ModelConfig:
    return ModelConfig(path=str(EXTRACTOR), head=str(head) if head else None, threads=1, **kw)


# --- the embedder ---------------------------------------------------------------------------------


def test_embeddings_are_unit_vectors_of_the_extractor_width(embedder: Embedder) -> None:
    assert embedder.dim == 1024 and embedder.input_size == (224, 224)
    assert embedder.sha256 == file_sha256(EXTRACTOR)
    for label in LABELS:
        vector = embedder.embed(views(label, TEST)[0])
        assert vector.dtype == np.float32 and vector.shape == (1024,)
        assert abs(float(np.linalg.norm(vector)) - 1) < 1e-5


def test_an_embedding_is_a_value(embedder: Embedder) -> None:
    """The output buffer is reused by the next image; a returned embedding must not change."""
    cat, parrot = views("cat", TEST)[0], views("parrot", TEST)[0]
    first = embedder.embed(cat)
    kept = first.copy()
    embedder.embed(parrot)
    assert np.array_equal(first, kept)
    assert np.array_equal(embedder.embed(cat), kept)


def test_a_two_dimensional_output_is_an_embedding_too() -> None:
    """[1, N] outputs are accepted as well as [1, 1, 1, N]; the input size follows the model."""
    small = Embedder(str(OTHER_MODEL), threads=1)
    assert small.dim == 1001 and small.input_size == (128, 128)
    assert abs(float(np.linalg.norm(small.embed(views("cat", TEST)[0]))) - 1) < 1e-5


def test_a_model_that_fails_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model_invoking_error\.tflite"):
        Embedder(str(MODELS / "model_invoking_error.tflite"))
    with pytest.raises(MissingFileError, match="not found"):
        Embedder(str(tmp_path / "none.tflite"))


# --- learning and recognising -----------------------------------------------------------------


@pytest.mark.parametrize("examples", [1, 2, 3])
def test_each_class_is_recognised_on_held_out_views(embedder: Embedder, train, examples: int) -> None:
    """Learned from 1, 2 or 3 training views, every held-out view of every class is recognised."""
    classifier = classifier_for(embedder, make_head(embedder, train, examples=examples))
    for index, label in enumerate(LABELS):
        for view in views(label, TEST):
            result = classifier.classify(view)
            assert (result.top.index, result.top.label) == (index, label)
            assert result.top.score > 0.9, result


def test_scores_are_a_distribution_over_the_classes_and_unknown(embedder: Embedder, train) -> None:
    classifier = classifier_for(embedder, make_head(embedder, train), top_k=10)
    image = views("parrot", TEST)[1]
    result = classifier.classify(image)
    assert len(result.labels) == len(LABELS) + 1  # every class, and unknown
    scores = [label.score for label in result.labels]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1) < 1e-5
    assert {(label.index, label.label) for label in result.labels} == {
        *enumerate(LABELS), (UNKNOWN_INDEX, "unknown")}
    # The documented formula: softmax(SCALE * cosine), with unknown at the similarity floor.
    logits = SCALE * np.append(classifier.similarities(image), MIN_SIMILARITY)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    by_index = {label.index: label.score for label in result.labels}
    assert np.allclose([by_index[i] for i in (0, 1, 2, UNKNOWN_INDEX)], expected, atol=1e-5)
    assert len(classifier_for(embedder, make_head(embedder, train), top_k=1).classify(image).labels) == 1


def test_results_are_values(embedder: Embedder, train) -> None:
    classifier = classifier_for(embedder, make_head(embedder, train))
    cat = views("cat", TEST)[0]
    result = classifier.classify(cat)
    before = [(label.index, label.score) for label in result.labels]
    classifier.classify(views("hopper", TEST)[0])
    assert [(label.index, label.score) for label in result.labels] == before
    assert classifier.classify(cat).labels == result.labels


def test_adding_a_class_leaves_the_others_unchanged(embedder: Embedder, train) -> None:
    """Imprinting touches only the new class: the others' weights stay bit for bit the same,
    so their similarities to any image and their recognised views do too."""
    head = make_head(embedder, train, labels=("cat", "hopper"))
    before = classifier_for(embedder, head)
    weights = head.prototypes()
    images = [view for label in ("cat", "hopper") for view in views(label, TEST)]
    similarities = [before.similarities(image) for image in images]
    tops = [top(before, image) for image in images]
    head.add("parrot", train["parrot"])
    after = classifier_for(embedder, head)
    assert np.array_equal(head.prototypes()[:2], weights)
    for image, old_similarities, old_top in zip(images, similarities, tops, strict=True):
        assert np.array_equal(after.similarities(image)[:2], old_similarities)
        assert top(after, image) == old_top
    assert all(top(after, image) == (2, "parrot") for image in views("parrot", TEST))


def test_more_examples_of_a_class_go_into_its_running_sum(embedder: Embedder, train) -> None:
    head = make_head(embedder, train, examples=1)
    head.add("cat", train["cat"][1:])
    assert [c.count for c in head.classes] == [3, 1, 1]
    assert np.allclose(head.classes[0].sum, np.sum(np.array(train["cat"], np.float64), axis=0))
    assert head.labels == list(LABELS)  # the class keeps its number


def test_removing_a_class(embedder: Embedder, train) -> None:
    head = make_head(embedder, train)
    head.remove("hopper")
    classifier = classifier_for(embedder, head)
    assert classifier.labels == ["cat", "parrot"]
    assert all(top(classifier, v) == (0, "cat") for v in views("cat", TEST))
    assert all(top(classifier, v) == (1, "parrot") for v in views("parrot", TEST))  # renumbered
    assert all(top(classifier, v) == (UNKNOWN_INDEX, "unknown") for v in views("hopper", TEST))
    with pytest.raises(EdgecamError, match=r"no class 'dog' \(classes: 'cat', 'parrot'\)"):
        head.remove("dog")


def test_unknown_below_the_similarity_floor(embedder: Embedder, train) -> None:
    """A photo of none of the classes, and scenes such as a covered lens, are `unknown`;
    the result is unknown exactly when the best cosine similarity is below the floor."""
    head = make_head(embedder, train, labels=("cat", "parrot"))
    classifier = classifier_for(embedder, head)
    strangers = [*views("hopper", TEST), *scenes().values()]
    for image in strangers:
        result = classifier.classify(image)
        assert (result.top.index, result.top.label) == (UNKNOWN_INDEX, "unknown")
        assert result.top.score > 0.5
        assert classifier.similarities(image).max() < MIN_SIMILARITY
    for label in ("cat", "parrot"):
        for image in views(label, TEST):
            assert top(classifier, image)[1] == label
            assert classifier.similarities(image).max() >= MIN_SIMILARITY
    # A floor of 0 never says unknown; a floor of 1 always does.
    anything = classifier_for(embedder, head, min_similarity=0.0)
    assert all(top(anything, image)[1] in ("cat", "parrot") for image in strangers)
    nothing = classifier_for(embedder, head, min_similarity=1.0)
    assert all(top(nothing, image)[1] == "unknown" for image in views("cat", TEST))


def test_an_all_black_frame_is_unknown_not_an_error(embedder: Embedder, train) -> None:
    classifier = classifier_for(embedder, make_head(embedder, train))
    assert top(classifier, np.zeros((480, 640, 3), np.uint8)) == (UNKNOWN_INDEX, "unknown")


# --- merging heads from several devices ---------------------------------------------------------


def test_merged_heads_equal_one_head_learned_from_all_examples(embedder: Embedder, train) -> None:
    """Two devices learn from disjoint examples; merging their heads gives the head one device
    would have learned from all the examples (up to float rounding), and the same results."""
    one = make_head(embedder, train)
    first = Head(embedder.sha256, embedder.dim, EXTRACTOR.name)
    second = Head(embedder.sha256, embedder.dim, EXTRACTOR.name)
    first.add("cat", train["cat"][:2])
    second.add("cat", train["cat"][2:])
    first.add("hopper", train["hopper"][:1])
    second.add("hopper", train["hopper"][1:])
    second.add("parrot", train["parrot"])  # a class only the second device knows
    merged = merge_heads([("first", first), ("second", second)])
    assert merged.labels == one.labels
    assert [c.count for c in merged.classes] == [c.count for c in one.classes] == [3, 3, 3]
    for mine, theirs in zip(merged.classes, one.classes, strict=True):
        np.testing.assert_allclose(mine.sum, theirs.sum, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.prototypes(), one.prototypes(), rtol=0, atol=1e-6)
    a, b = classifier_for(embedder, merged), classifier_for(embedder, one)
    for label in LABELS:
        for image in views(label, TEST):
            ra, rb = a.classify(image), b.classify(image)
            assert [x.index for x in ra.labels] == [x.index for x in rb.labels]
            np.testing.assert_allclose([x.score for x in ra.labels], [x.score for x in rb.labels],
                                       atol=1e-5)


def test_heads_of_another_extractor_do_not_merge(embedder: Embedder, train) -> None:
    other = Head("0" * 64, embedder.dim, "other.tflite")
    other.add("cat", train["cat"][:1])
    with pytest.raises(HeadError, match="another embedding extractor"):
        merge_heads([("mine.head", make_head(embedder, train)), ("other.head", other)])


# --- the head file --------------------------------------------------------------------------------


def test_a_head_file_reads_back_bit_for_bit(tmp_path: Path, embedder: Embedder, train) -> None:
    head = make_head(embedder, train)
    path = tmp_path / "heads" / "my.head"
    head.save(path)
    again = Head.load(path)
    assert (again.extractor_sha256, again.dim, again.extractor_name) == (
        embedder.sha256, 1024, EXTRACTOR.name)
    assert again.labels == head.labels
    for mine, theirs in zip(again.classes, head.classes, strict=True):
        assert mine.count == theirs.count and np.array_equal(mine.sum, theirs.sum)
    document = json.loads(path.read_text())
    assert (document["format"], document["version"]) == ("edgecam-head", 1)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in path.parent.iterdir()) == ["my.head"]  # no temporary left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _good_document(embedder: Embedder, train) -> dict:
    return make_head(embedder, train, labels=("cat",), examples=2).to_json()


@pytest.mark.parametrize(("spoil", "words"), [
    (lambda d: d.pop("format"), "not an edgecam head file (no \"format\": \"edgecam-head\")"),
    (lambda d: d.update(format="something-else"), "not an edgecam head file"),
    (lambda d: d.update(version=2), "version 2 is newer than this edgecam reads (1)"),
    (lambda d: d.update(version="1"), "bad version"),
    (lambda d: d["extractor"].update(sha256="abc"), "extractor.sha256 is not a sha256"),
    (lambda d: d.pop("classes"), "'classes' is missing"),
    (lambda d: d["classes"][0].update(count=0), "count 0 is not at least 1"),
    (lambda d: d["classes"][0].update(count=1), "longer than 1 normalized embeddings"),
    (lambda d: d["classes"][0]["sum"].pop(), "sum is not 1024 numbers"),
    (lambda d: d["classes"][0]["sum"].__setitem__(5, "x"), "sum is not 1024 numbers"),
    (lambda d: d["classes"][0].update(label=""), "unusable label"),
    (lambda d: d["classes"][0].update(label="unknown"), "unusable label"),
    (lambda d: d["classes"].append(dict(d["classes"][0])), "label 'cat' appears twice"),
])
def test_a_corrupt_head_is_refused_with_one_line(embedder: Embedder, train, spoil, words: str) -> None:
    document = _good_document(embedder, train)
    spoil(document)
    with pytest.raises(HeadError) as caught:
        Head.parse(json.dumps(document).encode(), "x.head")
    message = str(caught.value)
    assert message.startswith("x.head: ") and words in message and "\n" not in message


@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage", b'{"format": "edgecam-head", "vers',
                                  b'{"format": "edgecam-head", "version": 1, "x": NaN}', b"[" * 100000,
                                  "{\"format\": \"\u00e9\"}".encode("latin-1")])
def test_unreadable_bytes_are_a_corrupt_head(data: bytes) -> None:
    with pytest.raises(HeadError, match=r"^x.head: not an edgecam head file, or a corrupt one"):
        Head.parse(data, "x.head")


def test_json_that_is_not_a_head_is_refused() -> None:
    with pytest.raises(HeadError, match=r"^x.head: not an edgecam head file \(no"):
        Head.parse(b'[{"format": "edgecam-head"}]', "x.head")


def test_a_truncated_copy_of_a_real_head_is_refused(tmp_path: Path, embedder: Embedder, train) -> None:
    path = tmp_path / "my.head"
    make_head(embedder, train).save(path)
    data = path.read_bytes()
    for cut in (1, len(data) // 2, len(data) - 2):
        path.write_bytes(data[:cut])
        with pytest.raises(HeadError, match="corrupt"):
            Head.load(path)


def test_a_failed_write_leaves_the_old_head_whole(tmp_path: Path, embedder: Embedder, train,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Atomic writes: a crash or a full disk at the last moment leaves the previous head."""
    path = tmp_path / "my.head"
    make_head(embedder, train, labels=("cat",)).save(path)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(edgecam.models.fewshot.head.os, "replace", full_disk)
    with pytest.raises(EdgecamError, match="No space left on device; the previous file is unchanged"):
        make_head(embedder, train).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.head"]


def test_learning_into_a_file_creates_then_extends_the_head(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "heads" / "default.head"
    config = model_config(path)
    done = edgecam.models.fewshot.learn.learn(config, path, "  cat ", views("cat", TRAIN[:2]), embedder)
    assert (done.created, done.label, done.index, done.added, done.count) == (True, "cat", 0, 2, 2)
    done = edgecam.models.fewshot.learn.learn(config, path, "parrot", views("parrot", TRAIN), embedder)
    assert (done.created, done.index, done.labels) == (False, 1, ["cat", "parrot"])
    done = edgecam.models.fewshot.learn.learn(config, path, "cat", views("cat", TRAIN[2:]), embedder)
    assert (done.index, done.count) == (0, 3)
    assert [(c.label, c.count) for c in Head.load(path).classes] == [("cat", 3), ("parrot", 3)]


# --- the classifier factory and reloading -----------------------------------------------------------


def test_factory_gives_a_head_classifier_only_with_a_head(tmp_path: Path, embedder: Embedder, train) -> None:
    path = tmp_path / "my.head"
    make_head(embedder, train).save(path)
    classifier = make_classifier(model_config(path, top_k=2))
    assert isinstance(classifier, HeadClassifier)
    assert classifier.labels == list(LABELS) and classifier.input_size == (224, 224)
    assert len(classifier.classify(views("cat", TEST)[0]).labels) == 2
    plain = make_classifier(ModelConfig(path=str(MODELS / "mobilenet_v2_1.0_224_quant.tflite"),
                                        labels=str(MODELS / "imagenet_labels.txt"), threads=1))
    assert not isinstance(plain, HeadClassifier)


def test_an_updated_head_file_is_reloaded_with_the_same_extractor(tmp_path: Path, embedder: Embedder,
                                                                  train) -> None:
    path = tmp_path / "my.head"
    make_head(embedder, train, labels=("cat",)).save(path)
    config = model_config(path)
    first = HeadClassifier.from_config(config, embedder)
    assert refresh_classifier(first, config, config) is first  # nothing changed: nothing reloaded
    make_head(embedder, train, labels=("cat", "parrot")).save(path)
    second = refresh_classifier(first, config, config)
    assert second is not first and second.embedder is first.embedder
    assert second.labels == ["cat", "parrot"]
    stricter = ModelConfig(**{**config.__dict__, "head_min_similarity": 0.99})
    third = refresh_classifier(second, config, stricter)
    assert third.embedder is first.embedder and third.min_similarity == 0.99


def test_an_empty_head_cannot_classify(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "empty.head"
    Head(embedder.sha256, embedder.dim, EXTRACTOR.name).save(path)
    with pytest.raises(HeadError, match="no classes yet"):
        HeadClassifier.from_config(model_config(path), embedder)


def test_a_head_is_never_used_with_another_extractor(tmp_path: Path, train, embedder: Embedder) -> None:
    path = tmp_path / "my.head"
    make_head(embedder, train).save(path)
    config = ModelConfig(path=str(OTHER_MODEL), head=str(path), threads=1)
    with pytest.raises(HeadError, match=r"my.head: learned with another embedding extractor .*"
                                        r"mobilenet_v1_0.25_128_quant.tflite"):
        make_classifier(config)


# --- from the camera --------------------------------------------------------------------------------


class _FakeSource(Source):
    """Numbered frames at once; `fail_after` frames, then the camera is lost."""

    name = "fake"

    def __init__(self, fail_after: int | None = None) -> None:
        self.reads = 0
        self.opened = self.closed = False
        self._fail_after = fail_after

    def open(self) -> None:
        self.opened = True

    def read(self, stop: threading.Event) -> np.ndarray | None:
        if self._fail_after is not None and self.reads >= self._fail_after:
            return None
        stop.wait(0.002)  # a camera at 500 fps
        self.reads += 1
        frame = np.zeros((4, 4, 3), np.uint8)
        frame[0, 0, :2] = divmod(self.reads, 256)
        return frame

    def close(self) -> None:
        self.closed = True


def test_frames_from_the_camera_are_spread_and_the_camera_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecam.sources

    source = _FakeSource()
    monkeypatch.setattr(edgecam.sources, "make_source", lambda camera, size: source)
    said: list[str] = []
    frames = edgecam.models.fewshot.learn.capture_frames(Config().camera, (224, 224), 3, countdown_s=0.05,
                                          spread_s=0.05, say=said.append)
    assert len(frames) == 3 and source.opened and source.closed
    assert said[0] == "1…" and said[-3:] == ["frame 1/3", "frame 2/3", "frame 3/3"]
    numbers = [int(frame[0, 0, 0]) * 256 + int(frame[0, 0, 1]) for frame in frames]
    assert numbers == sorted(set(numbers))  # different frames, in order, not one frame thrice
    assert numbers[0] > 1  # frames read during the countdown were not kept


def test_a_lost_camera_is_one_line_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import edgecam.sources

    source = _FakeSource(fail_after=2)
    monkeypatch.setattr(edgecam.sources, "make_source", lambda camera, size: source)
    with pytest.raises(SourceError, match=r"fake: no more frames after 2 of 5 \(nothing was learned\)"):
        edgecam.models.fewshot.learn.capture_frames(Config().camera, (224, 224), 5, countdown_s=0, spread_s=0,
                                     say=lambda text: None)
    assert source.closed


# --- config -----------------------------------------------------------------------------------------


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


# --- the command line -------------------------------------------------------------------------------


def one_error_line(result) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if not _RUNTIME_NOTICE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgecam: "), lines[0]
    return lines[0]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A config with the extractor as model.path and a head beside the config."""
    path = tmp_path / "edgecam.yaml"
    path.write_text(f"model:\n  path: {EXTRACTOR}\n  head: my.head\n  threads: 1\n")
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[Path]]]:
    """Training and test views of each class as image files."""
    folder = tmp_path_factory.mktemp("views")
    return {label: {"train": write_views(folder / "train", label, TRAIN),
                    "test": write_views(folder / "test" / label, label, TEST)} for label in LABELS}


def test_learn_list_classify_remove_from_the_command_line(config_file: Path, photos) -> None:
    head = config_file.parent / "my.head"
    for label in ("cat", "parrot"):
        result = run_edgecam("learn", "add", label, *photos[label]["train"], "-c", config_file)
        assert result.returncode == 0, result.stderr
        assert f"learned 3 example(s) of '{label}'" in result.stdout
    assert head.is_file()
    listed = run_edgecam("learn", "list", "-c", config_file, "--json")
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert document["classes"] == [{"index": 0, "label": "cat", "count": 3},
                                   {"index": 1, "label": "parrot", "count": 3}]
    assert document["extractor"]["sha256"] == file_sha256(EXTRACTOR)
    assert document["extractor"]["is_model_path"] is True
    text = run_edgecam("learn", "list", "-c", config_file).stdout
    assert "2 class(es)" in text and "cat  (3 examples)" in text

    tests = [*photos["cat"]["test"], *photos["parrot"]["test"], *photos["hopper"]["test"]]
    result = run_edgecam("classify", *tests, "-c", config_file, "--json")
    assert result.returncode == 0, result.stderr
    tops = [json.loads(line)["labels"][0] for line in result.stdout.splitlines()]
    assert [t["label"] for t in tops] == ["cat"] * 5 + ["parrot"] * 5 + ["unknown"] * 5
    assert [t["index"] for t in tops] == [0] * 5 + [1] * 5 + [-1] * 5
    assert all(set(t) == {"index", "label", "score"} for t in tops)

    result = run_edgecam("learn", "remove", "cat", "-c", config_file)
    assert result.returncode == 0 and "1 class(es) left: parrot" in result.stdout
    result = run_edgecam("classify", photos["cat"]["test"][0], "-c", config_file, "--json")
    assert json.loads(result.stdout)["labels"][0]["label"] == "unknown"
    other = run_edgecam("learn", "list", "-c", config_file, "--head", head, "--json")
    assert json.loads(other.stdout)["extractor"]["is_model_path"] is True
    config_file.write_text(f"model:\n  path: {OTHER_MODEL}\n  head: my.head\n")
    text = run_edgecam("learn", "list", "-c", config_file).stdout
    assert f"(not model.path {OTHER_MODEL}: classifying with this head needs its own extractor)" in text


def test_classify_takes_a_head_on_the_command_line(tmp_path: Path, photos, embedder: Embedder,
                                                   train) -> None:
    head = tmp_path / "other.head"
    make_head(embedder, train).save(head)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run_edgecam("classify", photos["hopper"]["test"][2], "-c", empty, "--head", head,
                         "--model", EXTRACTOR, "--top-k", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].endswith("  hopper (1)")


def test_learning_from_the_camera(tmp_path: Path, photos) -> None:
    """--from-camera reads the configured source: here a folder of cat views."""
    config = tmp_path / "edgecam.yaml"
    folder = photos["cat"]["test"][0].parent  # only cat views
    config.write_text(f"camera:\n  source: {folder}\n  fps: 30\n"
                      f"model:\n  path: {EXTRACTOR}\n  head: my.head\n  threads: 1\n")
    result = run_edgecam("learn", "add", "cat", "--from-camera", "3", "--countdown", "0.2",
                         "--spread", "0.2", "-c", config)
    assert result.returncode == 0, result.stderr
    assert "frame 3/3" in result.stderr and "learned 3 example(s) of 'cat'" in result.stdout
    assert [(c.label, c.count) for c in Head.load(tmp_path / "my.head").classes] == [("cat", 3)]


def test_merge_from_the_command_line(tmp_path: Path, embedder: Embedder, train) -> None:
    first, second, out = tmp_path / "pi1.head", tmp_path / "pi2.head", tmp_path / "fleet.head"
    make_head(embedder, {k: v[:1] for k, v in train.items()}, labels=("cat", "hopper")).save(first)
    make_head(embedder, {k: v[1:] for k, v in train.items()}, labels=("parrot", "cat")).save(second)
    result = run_edgecam("learn", "merge", out, first, second)
    assert result.returncode == 0, result.stderr
    assert "cat (3), hopper (1), parrot (2)" in result.stdout
    merged = Head.load(out)
    np.testing.assert_allclose(merged.classes[0].sum, np.sum(np.array(train["cat"], np.float64), 0),
                               atol=1e-12)
    # OUT exists and is not an input: refused, unless --force; an input twice: refused.
    before = out.read_bytes()
    line = one_error_line(run_edgecam("learn", "merge", out, first))
    assert "fleet.head exists and is not one of the heads merged" in line and "--force" in line
    line = one_error_line(run_edgecam("learn", "merge", tmp_path / "new.head", first, first))
    assert "listed twice" in line
    assert out.read_bytes() == before and not (tmp_path / "new.head").exists()
    assert run_edgecam("learn", "merge", out, first, "--force").returncode == 0
    assert Head.load(out).labels == ["cat", "hopper"]


def _existing_head(tmp_path: Path, embedder: Embedder, train) -> Path:
    path = tmp_path / "my.head"
    make_head(embedder, train, labels=("cat",)).save(path)
    return path


def _empty_label(tmp_path, head, photos):
    return ["learn", "add", "  ", *photos["cat"]["train"]], "the label is empty"


def _reserved_label(tmp_path, head, photos):
    return ["learn", "add", "Unknown", *photos["cat"]["train"]], "'unknown' is reserved"


def _unreadable_image(tmp_path, head, photos):
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_text("this is not a JPEG\n")
    return ["learn", "add", "cat", photos["cat"]["train"][0], bad], f"{bad}: cannot read image"


def _missing_image(tmp_path, head, photos):
    return ["learn", "add", "cat", tmp_path / "nowhere.jpg"], "nowhere.jpg: no such file"


def _another_extractor(tmp_path, head, photos):
    return (["learn", "add", "parrot", *photos["parrot"]["train"], "--model", OTHER_MODEL],
            "learned with another embedding extractor")


def _corrupt_head(tmp_path, head, photos):
    head.write_bytes(head.read_bytes()[:5000])
    return ["learn", "add", "parrot", *photos["parrot"]["train"]], "not an edgecam head file, or a corrupt"


def _classify_with_another_extractor(tmp_path, head, photos):
    return (["classify", IMAGES / "cat.bmp", "--model", OTHER_MODEL],
            "learned with another embedding extractor")


def _classify_with_a_corrupt_head(tmp_path, head, photos):
    head.write_text('{"format": "edgecam-head", "version": 1, "extractor": {}, "classes": []}')
    return ["classify", IMAGES / "cat.bmp"], "corrupt head file: 'sha256' is missing"


def _remove_an_unknown_class(tmp_path, head, photos):
    return ["learn", "remove", "dog"], "no class 'dog' (classes: 'cat')"


def _neither_images_nor_camera(tmp_path, head, photos):
    return ["learn", "add", "cat"], "give example IMAGE files, or --from-camera N"


@pytest.mark.parametrize("make", [
    _empty_label, _reserved_label, _unreadable_image, _missing_image, _another_extractor,
    _corrupt_head, _classify_with_another_extractor, _classify_with_a_corrupt_head,
    _remove_an_unknown_class, _neither_images_nor_camera,
], ids=lambda make: make.__name__.strip("_"))
def test_mistakes_are_one_clear_line_and_nothing_is_overwritten(tmp_path: Path, config_file: Path,
                                                                photos, embedder: Embedder, train,
                                                                make) -> None:
    head = _existing_head(tmp_path, embedder, train)
    args, words = make(tmp_path, head, photos)
    before = head.read_bytes()
    result = run_edgecam(*args, "-c", config_file)
    line = one_error_line(result)
    assert words in line, line
    assert result.stdout == ""
    assert head.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries


def test_a_missing_head_is_one_line(tmp_path: Path, config_file: Path) -> None:
    for args in (["learn", "list"], ["learn", "remove", "cat"], ["classify", IMAGES / "cat.bmp"]):
        result = run_edgecam(*args, "-c", config_file)
        assert result.returncode == 66
        assert "head file not found" in one_error_line(result)


# --- the daemon -------------------------------------------------------------------------------------


def test_the_daemon_emits_the_learned_labels_and_reloads_an_updated_head(
        tmp_path: Path, daemons, embedder: Embedder, train) -> None:
    """A stream of held-out views of the learned classes gives their labels; after
    `edgecam learn` adds a class and SIGHUP (config unchanged), that class is emitted too."""
    stream = tmp_path / "stream"
    for label in LABELS:
        write_views(stream, label, TEST[:2])
    head = tmp_path / "my.head"
    make_head(embedder, train, labels=("cat", "parrot")).save(head)
    config = base_config(tmp_path, camera={"source": str(stream), "fps": 10},
                         model={"path": str(EXTRACTOR), "head": str(head)})
    del config["model"]["labels"]
    daemon = daemons(config)
    client = daemon.client()
    messages = client.messages("classification", 12)
    assert {m["labels"][0]["label"] for m in messages} == {"cat", "parrot", "unknown"}
    for message in messages:
        best = message["labels"][0]
        assert set(best) == {"index", "label", "score"}
        assert best["index"] == {"cat": 0, "parrot": 1, "unknown": -1}[best["label"]]
    # learn a third class into the same file, then reload: the config itself is unchanged
    result = run_edgecam("learn", "add", "hopper", *write_views(tmp_path / "train", "hopper", TRAIN),
                         "-c", daemon.config_path)
    assert result.returncode == 0, result.stderr
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: model (files on disk)" in daemon.log(), 30, "the head reload")
    for _ in range(1000):  # results queued on the socket before the reload come first
        if client.message().get("labels", [{}])[0].get("label") == "hopper":
            break
    labels = {m["labels"][0]["label"] for m in client.messages("classification", 12)}
    assert labels == {"cat", "parrot", "hopper"}
    # a head from another extractor is refused on reload, and the daemon goes on
    make_head(embedder, train).save(head)
    text = head.read_text().replace(embedder.sha256, "0" * 64)
    head.write_text(text)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in daemon.log(), 30, "the refused reload")
    assert "another embedding extractor" in daemon.log()
    assert {m["labels"][0]["label"] for m in client.messages("classification", 9)} == {
        "cat", "parrot", "hopper"}
    assert daemon.stop() == 0


def test_the_daemon_refuses_a_head_of_another_extractor(tmp_path: Path, daemons, embedder: Embedder,
                                                        train) -> None:
    head = tmp_path / "my.head"
    make_head(embedder, train).save(head)
    config = base_config(tmp_path, model={"path": str(OTHER_MODEL), "head": str(head)})
    daemon = daemons(config)
    assert daemon.proc.wait(60) == 65
    log = daemon.log()
    assert "learned with another embedding extractor" in log and "Traceback" not in log
