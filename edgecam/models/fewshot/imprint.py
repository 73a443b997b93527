"""Classifying with learned classes (a head), and choosing the classifier a config asks for.

HeadClassifier has the interface the pipeline and `edgecam classify` use
(`classify(image) -> Classification`, `input_size`, `labels`, `top_k`):

- the image goes through the embedding extractor (embedder.py) to a unit vector e;
- each class's weight w is its imprinted prototype, normalize(sum of its examples);
  cosine similarity = w · e;
- scores are softmax(SCALE × cosine) over the classes *and* `unknown`, a virtual
  class (result index -1, label "unknown") whose cosine is `model.head_min_similarity`
  for every image. So the result is `unknown` exactly when no class is at least
  that similar, and a class's score is the model's confidence that the image is
  that class rather than another one or none of them. Scores sum to 1 over the
  classes and `unknown`; the top-k of those are reported, best first.

SCALE = 16 turns a cosine lead of 0.1 into 5:1 odds (e^1.6), a lead of 0.2 into
25:1: on this extractor views of one scene score 0.8-1.0 against its prototype
and unrelated scenes 0.2-0.55 (bench/learn.py prints the measured figures), so a
recognised class comes out near 1 and two look-alike classes split the score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from edgecam.common.files import set_aside
from edgecam.config import ModelConfig
from edgecam.core.results import Classification
from edgecam.errors import MissingFileError
from edgecam.models.base import Infers, top_labels
from edgecam.models.fewshot.embedder import Embedder
from edgecam.models.fewshot.head import UNKNOWN, CorruptHeadError, Head, HeadError
from edgecam.models.filesig import file_signature

log = logging.getLogger(__name__)

SCALE = 16.0
UNKNOWN_INDEX = -1


class HeadClassifier(Infers):
    """An embedding extractor plus the classes of a head file, loaded once."""

    def __init__(self, embedder: Embedder, head: Head, *, min_similarity: float, top_k: int = 3,
                 head_path: str = "the head", empty_ok: bool = False) -> None:
        head.check_extractor(embedder.sha256, embedder.model_path, head_path)
        if head.dim != embedder.dim:
            raise HeadError(f"{head_path}: corrupt head file: {head.dim}-wide, the extractor gives "
                            f"{embedder.dim}")
        if not head.classes and not (head.fleet or empty_ok):  # the fleet's merge may wait for its members
            raise HeadError(f"{head_path}: the head has no classes yet: teach it some with "
                            "`edgecam learn add LABEL IMAGE...`")
        self.embedder = embedder
        self.head = head
        self.head_path = head_path
        self.head_signature = file_signature(head_path)
        self.min_similarity = min_similarity
        self.top_k = top_k
        self.labels = head.labels
        self.input_size = embedder.input_size
        self.model_path = embedder.model_path
        self.loaded_files = embedder.loaded_files
        self._weights = head.prototypes()  # (classes, dim) float32, unit rows
        self._names = [*self.labels, UNKNOWN]
        self._indices = [*range(len(self.labels)), UNKNOWN_INDEX]
        self._embedding = np.empty(embedder.dim, np.float32)
        log.info("head %s: %d class(es) (%s), unknown below cosine %.2f", head_path,
                 len(self.labels), ", ".join(self.labels), min_similarity)

    @classmethod
    def from_config(cls, config: ModelConfig, embedder: Embedder | None = None, *,
                    recover: bool = False) -> HeadClassifier:
        """Loads model.head; `embedder` (already loaded, same model settings) is reused.

        `recover` (the daemon's start): a head file a power cut left cut, emptied or garbage is
        set aside as `<head>.corrupt` and every image is `unknown` (no classes) until classes
        are learned again, so the start goes on; so it stays while only the `.corrupt` file is
        there. A reload never recovers: it keeps the running head, as it keeps every part when
        something new fails.
        """
        assert config.head is not None
        embedder = embedder or Embedder.from_config(config)
        path = Path(config.head)
        try:
            head = Head.load(path)
        except (CorruptHeadError, MissingFileError) as exc:
            aside = path.with_name(f"{path.name}.corrupt")
            if not recover or (isinstance(exc, MissingFileError) and not aside.exists()):
                raise
            if isinstance(exc, CorruptHeadError):
                set_aside(path, f"{exc.problem}; every image is {UNKNOWN!r} until classes are "
                          "learned again (edgecam learn add)")
            else:
                log.warning("%s: set aside as %s (it was corrupt); every image is %r until classes "
                            "are learned again (edgecam learn add)", path, aside.name, UNKNOWN)
            head = Head(embedder.sha256, embedder.dim, Path(embedder.model_path).name)
        return cls(embedder, head, min_similarity=config.head_min_similarity, top_k=config.top_k,
                   head_path=config.head, empty_ok=recover)

    def similarities(self, image: np.ndarray) -> np.ndarray:
        """The cosine similarity of an image to each class, in class order (a new array)."""
        self.embedder.embed_into(image, self._embedding)
        return self._weights @ self._embedding

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> Callable[[], Classification]:
        """Embeds a BGR (BGRA, gray) uint8 image now; the call returned gives the top-k of the
        classes and `unknown` (models.base.ImageClassifier.infer; `before_invoke`: see
        ImageModel.infer)."""
        embedding = np.empty(self.embedder.dim, np.float32)
        inference_ms = self.embedder.embed_into(image, embedding, before_invoke)
        return partial(self._labelled, embedding, inference_ms)

    def _labelled(self, embedding: np.ndarray, inference_ms: float) -> Classification:
        started = time.perf_counter()
        logits = np.empty(len(self._names), np.float32)
        np.matmul(self._weights, embedding, out=logits[:-1])
        logits *= np.float32(SCALE)
        logits[-1] = SCALE * self.min_similarity
        scores = np.exp(logits - logits.max())
        scores /= scores.sum()
        labels = top_labels(scores, self.top_k, self._names, self._indices)
        # As for the plain classifier: the model's run (here, the head's few operations too).
        return Classification(labels, inference_ms + (time.perf_counter() - started) * 1000)

    def reloaded(self, config: ModelConfig) -> HeadClassifier:
        """Self if the head file is unchanged since it was loaded, else a classifier on the new
        head that shares this one's extractor (SIGHUP after `edgecam learn`)."""
        signature = file_signature(config.head or "")
        if signature is not None and signature == self.head_signature:
            return self
        return HeadClassifier.from_config(config, self.embedder)
