"""Few-shot heads for the tests: the real embedding extractor, the training embeddings, heads made from them.

Each photo in ../shared/images is one class (cat, hopper, parrot). Classes are
learned from at most three training views (crops, mirror images, brightness
changes: tests/learn_views.py) and tested on other, held-out views of the same
photos; a view used for training is never classified in a test.

The fixtures `embedder` and `train` are registered by tests/conftest.py (one
interpreter and one set of training embeddings for the whole session, as the
daemon keeps one interpreter); used by tests/unit/test_{embedder,head,imprint,learn}.py
and tests/integration/test_cli_learn.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness import MODELS
from learn_views import PHOTOS, TRAIN, views

from edgecam.config import Config, ModelConfig
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import Head
from edgecam.models.fewshot.imprint import HeadClassifier

EXTRACTOR = MODELS / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
OTHER_MODEL = MODELS / "mobilenet_v1_0.25_128_quant.tflite"  # a [1, 1001] output: another "extractor"
MIN_SIMILARITY = Config().model.head_min_similarity
LABELS = tuple(PHOTOS)  # cat, hopper, parrot


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """One interpreter for the session, as the daemon keeps one."""
    return Embedder(str(EXTRACTOR), threads=1)


@pytest.fixture(scope="session")
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
