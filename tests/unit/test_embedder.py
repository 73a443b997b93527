"""The embedding extractor (edgecam/models/fewshot/embedder.py): unit vectors, values, refused models.

The real extractor on held-out views of the real photos (tests/heads.py, tests/learn_views.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS
from heads import EXTRACTOR, LABELS, OTHER_MODEL
from learn_views import TEST, views

from edgecam.common.files import file_sha256
from edgecam.errors import MissingFileError, ModelError
from edgecam.models.fewshot.embedder import Embedder


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
