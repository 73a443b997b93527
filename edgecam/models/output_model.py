"""What the CPU back-ends share: a model whose run() gives its raw output, and their checks.

LiteRT's ImageModel (models.classifier) and ONNX Runtime's OnnxModel (models.onnx)
both build on these; classifier.open_image_model picks one. They live apart from
both so that neither back-end imports the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np


class OutputModel(ABC):
    """run() for a model that implements infer() (ImageModel, models.onnx.OnnxModel)."""

    @abstractmethod
    def infer(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
              ) -> tuple[Callable[[], np.ndarray], float]: ...

    def run(self, image: np.ndarray, before_invoke: Callable[[], None] | None = None
            ) -> tuple[np.ndarray, float]:
        """infer()'s output at once (a new float32 array), and the model's ms."""
        output, inference_ms = self.infer(image, before_invoke)
        return output(), inference_ms


def is_class_scores(shape: tuple[int, ...]) -> bool:
    """Whether an output of this shape is one row of class scores, (1, classes)."""
    return len(shape) == 2 and shape[0] == 1


def first_line(exc: BaseException) -> str:
    """A runtime's error in one line (they span pages): its first, or the exception's name."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
