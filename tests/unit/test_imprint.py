"""Weight imprinting (edgecam/models/fewshot/imprint.py HeadClassifier) and the classifier factory
(edgecam/models/factory.py make_classifier, refresh_classifier), with the real extractor.

Each photo in ../shared/images is one class (cat, hopper, parrot), learned from
at most three training views and tested on other, held-out views (tests/heads.py);
a view used for training is never classified in a test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS
from heads import EXTRACTOR, LABELS, MIN_SIMILARITY, OTHER_MODEL, classifier_for, make_head, model_config, top
from learn_views import TEST, scenes, views

from edgecam.config import ModelConfig
from edgecam.models.factory import make_classifier, refresh_classifier
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head, HeadError
from edgecam.models.fewshot.imprint import SCALE, UNKNOWN_INDEX, HeadClassifier

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
