"""The embedding extractor: a MobileNet without its classifier layer, loaded once.

It turns an image into a point on the unit sphere: the extractor's output
(shape [1, N] or [1, 1, 1, N], quantized or float) is dequantized with the
model's own scale and zero point and L2-normalized, so that the cosine
similarity of two images is the dot product of their embeddings. Loading,
the checks and the preprocessing are the classifier's (classifier.ImageModel).

The extractor's sha256 identifies it: a head (head.py) records the sha256 of
the extractor it was learned with and is never used with another one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecam.common.files import file_sha256
from edgecam.config import ModelConfig
from edgecam.models.classifier import open_image_model
from edgecam.models.filesig import signatures

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _is_embedding(shape: tuple[int, ...]) -> bool:
    """[1, N] or [1, 1, 1, N] (a pooled feature map), N >= 2."""
    return len(shape) in (2, 4) and all(d == 1 for d in shape[:-1]) and shape[-1] >= 2


class Embedder:
    """Image → L2-normalized float32 embedding, on one interpreter reused for every image."""

    def __init__(self, model_path: str, *, threads: int | str = 0, resize: str = "crop",
                 backend: str = "auto", providers: tuple[str, ...] = ()) -> None:
        self.model_path = model_path
        self.loaded_files = signatures(model_path)
        self._model = open_image_model(model_path, threads=threads, resize=resize, backend=backend,
                                       providers=providers, kind="embedding extractor",
                                       output_ok=_is_embedding, expected="[1, N] or [1, 1, 1, N]")
        self.sha256 = file_sha256(model_path)
        self.dim = self._model.outputs
        self.input_size = self._model.input_size
        self.runtime, self.threads = self._model.runtime, self._model.threads
        self._vector = np.empty(self.dim, np.float32)
        width, height = self.input_size
        log.info("embedding extractor %s: %dx%d %s input, %d-wide embedding, %s, %d thread(s)",
                 Path(model_path).name, width, height, self._model.input_dtype.name, self.dim,
                 self.runtime, self.threads)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Embedder:
        """model.path as the extractor, on the back-end and threads the model section names."""
        return cls(config.path, threads=config.threads, resize=config.resize,
                   backend=config.backend, providers=config.providers)

    def embed_into(self, image: np.ndarray, out: np.ndarray,
                   before_invoke: Callable[[], None] | None = None) -> float:
        """Writes the normalized embedding of a BGR (BGRA, gray) uint8 image into `out`.

        Returns invoke()'s milliseconds. An all-zero output (a black frame can give one)
        stays all zero: it is similar to nothing, rather than a division by zero.
        `before_invoke`: see ImageModel.run.
        """
        values, inference_ms = self._model.run(image, before_invoke)
        norm = float(np.sqrt(np.dot(values, values)))
        if norm > 0:
            np.multiply(values, np.float32(1.0 / norm), out=out)
        else:
            out[:] = 0
        return inference_ms

    def embed(self, image: np.ndarray) -> np.ndarray:
        """The normalized embedding of an image, as a new float32 array."""
        out = np.empty(self.dim, np.float32)
        self.embed_into(image, out)
        return out
