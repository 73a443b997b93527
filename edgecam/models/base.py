"""What every model back-end gives the pipeline: labels with scores, behind one protocol.

The pipeline knows only `ImageClassifier` and the `Classification` it returns
(core.results, where every output reads it): the seam where another back-end
(an accelerator, a camera that classifies on its sensor, another runtime)
plugs in. A back-end is a class with these attributes; models.factory picks
one from the config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Protocol, TypeGuard

import numpy as np

from edgecam.core.results import Classification, Label
from edgecam.core.sensor import SensorClassifier
from edgecam.models.filesig import Signature


class ImageClassifier(Protocol):
    """A loaded model that labels images; loaded once, reused for every frame."""

    @property
    def input_size(self) -> tuple[int, int]:
        """The (width, height) the capture thread fits frames to."""
        ...

    @property
    def labels(self) -> Sequence[str]:
        """The labels it can report, in output order."""
        ...

    @property
    def loaded_files(self) -> dict[str, Signature | None]:
        """The files it was loaded from and their signatures (a reload re-reads a replaced one)."""
        ...

    def classify(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
                 ) -> Classification:
        """The top-k labels of a BGR (or BGRA, or gray) uint8 image; `before_invoke` is called
        once the input is written, right before the model runs (the inference thread wakes the
        threads waiting on it then, so they run while the model does)."""
        ...

    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> Callable[[], Classification]:
        """Runs the model on `image` now, and returns the call that ranks its output into labels.

        That call holds its own copy of the output, so it may run later and on another thread:
        with the next frame already waiting, the inference thread leaves it to the finisher
        (pipeline.finisher), beside the next invoke. `before_invoke`: as for classify().
        """
        ...


class Infers(ABC):
    """classify() for a back-end that implements infer(): the labels at once."""

    @abstractmethod
    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> Callable[[], Classification]: ...

    def classify(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
                 ) -> Classification:
        return self.infer(image, before_invoke)()


def runs_on_sensor(classifier: ImageClassifier) -> TypeGuard[SensorClassifier]:
    """Whether `classifier` is a network the camera runs on its sensor (the AI Camera's): its
    class says so with `on_sensor = True`, so that no caller names a back-end's class."""
    return bool(getattr(classifier, "on_sensor", False))


def start_progress(classifier: ImageClassifier) -> Callable[[], str | None]:
    """Where a device stands in loading its network before the first result (the AI Camera's
    upload to its sensor: Imx500Classifier.upload_status); None when nothing is loading."""
    status = getattr(classifier, "upload_status", None)
    return status if status is not None else lambda: None


def top_labels(scores: np.ndarray, k: int, names: Sequence[str],
               indices: Sequence[int] | None = None) -> tuple[Label, ...]:
    """The `k` best scores as Labels, best first (ties keep output order)."""
    k = min(k, scores.size)
    best = np.argpartition(scores, -k)[-k:]
    best = best[np.argsort(-scores[best], kind="stable")]
    # tolist(): Python ints and floats in one call each, rather than numpy scalars one by one
    return tuple([Label(indices[i] if indices is not None else i, names[i], score)
                  for i, score in zip(best.tolist(), scores[best].tolist(), strict=True)])
